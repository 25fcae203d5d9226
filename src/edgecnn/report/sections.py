"""One renderer per results kind: ``render(group) -> HTML`` (the section's body).

Each reads the keys of :mod:`edgecnn.schema`'s kinds; :mod:`edgecnn.report.kinds` maps kinds to
these renderers and titles.
"""

from __future__ import annotations

import html
import json

from edgecnn.report import figures
from edgecnn.report._html import img, kv, note, series, table


def render_profile(group: list[dict]) -> str:
    p = group[0]
    t = p["totals"]
    summary = kv(
        [
            ("model", p.get("model")),
            ("input shape", p.get("input_shape")),
            ("precision", p.get("precision")),
            ("device", p.get("device")),
            ("MACs", t.get("macs")),
            ("FLOPs", t.get("flops")),
            ("parameters", t.get("params")),
            ("weight bytes", t.get("weight_bytes")),
            ("DRAM traffic (bytes)", t.get("dram_bytes")),
            ("peak activation memory (bytes)", t.get("peak_activation_bytes")),
            ("arithmetic intensity (MACs/DRAM byte)", t.get("arithmetic_intensity")),
            ("roofline latency (s)", t.get("latency_s")),
            ("layers / fused groups", f"{t.get('layers', '')} / {t.get('fused_groups', '')}"),
            (
                "unknown ops",
                ", ".join(
                    str(u.get("op", u)) if isinstance(u, dict) else str(u)
                    for u in t.get("unknown_ops") or []
                )
                or "none",
            ),
        ]
    )
    charts = img(figures.compute_vs_traffic(p), "compute vs traffic") + img(
        figures.roofline(p), "roofline"
    )
    cols = [
        "#",
        "name",
        "op",
        "output shape",
        "MACs",
        "FLOPs",
        "params",
        "weight B",
        "DRAM B",
        "MACs/B",
        "bound",
        "latency us",
        "fused into",
    ]
    rows = [
        [
            i,
            r.get("name"),
            r.get("op"),
            r.get("output_shape"),
            r.get("macs"),
            r.get("flops"),
            r.get("params"),
            r.get("weight_bytes"),
            r.get("dram_bytes"),
            r.get("arithmetic_intensity"),
            r.get("bound"),
            r["latency_s"] * 1e6 if isinstance(r.get("latency_s"), (int, float)) else None,
            r.get("fused_into"),
        ]
        for i, r in enumerate(p.get("layers", []))
    ]
    return (
        summary
        + charts
        + "<h3>Per-layer cost (click a column to sort)</h3>"
        + table(cols, rows, sortable=True, scroll=True)
        + note(
            "MACs count conv/linear/matmul multiply-accumulates; FLOPs = 2 x MACs + one per element of other ops. "
            "DRAM bytes assume BN folded and activations fused; fused layers report 0."
        )
    )


def render_compress(group: list[dict]) -> str:
    rep = group[0]
    steps = rep.get("steps", [])
    base = steps[0] if steps else {}
    rows = []
    for s in steps:
        acc, size, lat = s.get("accuracy"), s.get("size_bytes"), s.get("latency_ms")
        rows.append(
            [
                s.get("step"),
                100 * acc if isinstance(acc, (int, float)) else None,
                100 * (acc - base["accuracy"])
                if isinstance(acc, (int, float)) and isinstance(base.get("accuracy"), (int, float))
                else None,
                s.get("macs"),
                s.get("params"),
                size,
                base["size_bytes"] / size if size and base.get("size_bytes") else None,
                lat,
                base["latency_ms"] / lat if lat and base.get("latency_ms") else None,
                s.get("int8_conv_fraction"),
            ]
        )
    cols = [
        "step",
        "accuracy %",
        "change (points)",
        "MACs",
        "params",
        "size B",
        "smaller x",
        "latency ms",
        "faster x",
        "int8 conv fraction",
    ]
    out = table(cols, rows, sortable=False) + img(figures.compress_steps(rep), "compression steps")
    for s in steps:
        out += _step_details(s)
    return out + note(
        "Accuracy on the test split; size is the ONNX file; latency is ONNX Runtime, batch 1, median."
    )


def _step_details(step: dict) -> str:
    """Figures of one compression step's details: per-layer SQNR through depth (quantize) and
    accuracy by pruning ratio per layer (prune sensitivity)."""
    det = step.get("details") or {}
    name = step.get("step")
    out = ""
    if isinstance(det.get("gain_points"), (int, float)):
        out += note(
            f"{name}: BatchNorm statistics of {det.get('bn_layers')} layers re-estimated on "
            f"{det.get('samples')} training images: test accuracy "
            f"{100 * det.get('accuracy_before', 0):.2f}% -> {100 * det.get('accuracy_after', 0):.2f}% "
            f"({det['gain_points']:+.2f} points)"
        )
    sqnr = [r for r in det.get("sqnr") or [] if isinstance(r, dict)]
    curves = {
        label: [(r["depth"], r[key]) for r in sqnr if isinstance(r.get(key), (int, float))]
        for key, label in (
            ("accumulated_db", "accumulated (all layers quantized up to here)"),
            ("isolated_db", "isolated (this layer alone)"),
        )
    }
    if any(curves.values()):
        out += img(
            figures.curves_plot(
                curves, f"{name}: SQNR through depth (fake-quant)", "layer depth", "SQNR (dB)"
            ),
            f"{name} SQNR through depth",
        )
    sens = det.get("sensitivity")
    if isinstance(sens, dict) and sens:
        curves = {
            str(k): [tuple(p[:2]) for p in v if isinstance(p, (list, tuple)) and len(p) >= 2]
            for k, v in sens.items()
            if isinstance(v, list)
        }
        if any(curves.values()):
            out += img(
                figures.curves_plot(
                    curves, f"{name}: sensitivity per layer", "pruning ratio", "accuracy"
                ),
                f"{name} sensitivity",
            )
        else:
            pts = series(sens)
            if pts:
                out += img(
                    figures.series_plot(pts, f"{name}: sensitivity per layer", "accuracy drop"),
                    f"{name} sensitivity",
                )
    elif isinstance(sens, list) and sens:
        pts = series(sens)
        if pts:
            out += img(
                figures.series_plot(pts, f"{name}: sensitivity per layer", "accuracy drop"),
                f"{name} sensitivity",
            )
    return out


def render_simulate(group: list[dict]) -> str:
    sim = group[0]
    t = sim["totals"]
    acc = sim.get("accelerator", {})
    summary = kv(
        [
            ("model", sim.get("model")),
            ("accelerator", acc.get("name")),
            ("PEs", t.get("pes", acc.get("pes"))),
            ("clock (Hz)", acc.get("clock_hz")),
            ("cycle model", sim.get("model_cycles")),
            ("precision", sim.get("precision")),
            ("total cycles", t.get("cycles")),
            ("stall cycles", t.get("stall_cycles")),
            ("latency (s)", t.get("latency_s")),
            ("utilisation", t.get("utilization")),
            ("DRAM bytes", t.get("dram_bytes")),
            ("SRAM bytes", t.get("sram_bytes")),
            ("energy (J)", t.get("energy_j")),
        ]
    )
    charts = img(figures.sim_cycles(sim), "cycles per layer") + img(
        figures.energy_breakdown(t.get("energy_breakdown") or {}), "energy breakdown"
    )
    cols = [
        "#",
        "name",
        "op",
        "MACs",
        "cycles",
        "stall cycles",
        "utilisation",
        "SRAM reads",
        "SRAM writes",
        "DRAM B",
        "energy J",
    ]
    rows = [
        [
            i,
            r.get("name"),
            r.get("op"),
            r.get("macs"),
            r.get("cycles"),
            r.get("stall_cycles"),
            r.get("utilization"),
            r.get("sram_reads"),
            r.get("sram_writes"),
            r.get("dram_bytes"),
            r.get("energy_j"),
        ]
        for i, r in enumerate(sim.get("layers", []))
    ]
    out = (
        summary
        + charts
        + "<h3>Per-layer results</h3>"
        + table(cols, rows, sortable=True, scroll=True)
    )
    pts = sim.get("pareto_front") or sim.get("pareto")
    if isinstance(pts, list) and pts:
        out += "<h3>Pareto front</h3>" + render_explore([{"pareto_front": pts}])
    return out


def render_explore(group: list[dict]) -> str:
    """The Pareto front as a table whose first columns are the design parameters."""
    obj = group[0]
    front = [dict(p, pareto=True) for p in obj.get("pareto_front", []) if isinstance(p, dict)]
    others = (
        [p for p in obj.get("points", []) if isinstance(p, dict)]
        if isinstance(obj.get("points"), list)
        else []
    )
    pts = others + front if front else others
    front = front or [p for p in pts if p.get("pareto")] or pts
    params: list[str] = []
    for p in front:
        params += [k for k in p.get("params") or {} if k not in params]
    metrics = [
        k
        for k in ("latency_s", "energy_j", "area_mm2", "dram_bytes", "utilization", "pes")
        if any(k in p for p in front)
    ]
    front_table = table(
        [*params, *metrics],
        [
            [(p.get("params") or {}).get(k) for k in params] + [p.get(k) for k in metrics]
            for p in front
        ],
        sortable=True,
        scroll=True,
    )
    n_all = obj["points"] if isinstance(obj.get("points"), int) else len(pts)
    return (
        img(figures.pareto(pts), "pareto front")
        + note(
            f"{n_all} design points evaluated, {len(front)} Pareto-optimal (lower latency, energy and area)"
        )
        + front_table
    )


def render_bench(group: list[dict]) -> str:
    labels = {"ort": "ONNX Runtime", "torch": "PyTorch eager", "baseline": "baseline"}
    rows = []
    notes = []
    for b in group:
        for cand, s in (b.get("latency") or {}).items():
            prec = (
                b.get("baseline_precision")
                if cand == "baseline"
                else (b.get("precision") if cand == "ort" else "fp32")
            )
            rows.append(
                [
                    b.get("model"),
                    labels.get(cand, cand),
                    prec,
                    b.get("batch"),
                    b.get("threads"),
                    s.get("median_ms"),
                    s.get("p90_ms"),
                    s.get("p99_ms"),
                    s.get("min_ms"),
                    s.get("throughput_per_s"),
                    s.get("runs"),
                ]
            )
        if b.get("speed_ratio_vs_baseline") is not None:
            notes.append(
                f"{b.get('model')}: {b.get('precision')} is {b['speed_ratio_vs_baseline']:.2f}x the speed of its "
                f"{b.get('baseline_precision')} baseline (medians, measured interleaved)"
            )
        if b.get("speed_ratio_ort_vs_torch") is not None:
            notes.append(
                f"{b.get('model')}: ONNX Runtime is {b['speed_ratio_ort_vs_torch']:.2f}x the speed of PyTorch eager (interleaved)"
            )
        if b.get("peak_rss_bytes"):
            notes.append(
                f"{b.get('model')}: session load {b.get('load_time_s', 0) * 1e3:.1f} ms, process peak RSS {b['peak_rss_bytes'] / 1e6:.0f} MB"
            )
    cols = [
        "model",
        "runtime",
        "precision",
        "batch",
        "threads",
        "median ms",
        "p90 ms",
        "p99 ms",
        "min ms",
        "items/s",
        "runs",
    ]
    return (
        table(cols, rows, sortable=True)
        + "".join(note(n) for n in notes)
        + img(figures.bench_latency(group), "latency")
    )


def render_pvm(group: list[dict]) -> str:
    out = ""
    for pvm in group:
        stats = kv(
            [
                ("device profile", pvm.get("device")),
                ("models", len(pvm.get("rows", []))),
                ("Spearman rank correlation", pvm.get("spearman")),
                ("median measured / predicted", pvm.get("median_ratio")),
                ("threads", pvm.get("threads")),
            ]
        )
        cols = [
            "model",
            "precision",
            "input",
            "MACs",
            "predicted ms",
            "measured ms",
            "measured / predicted",
            "bound",
        ]
        calibrated = any(r.get("calibrated_ms") is not None for r in pvm.get("rows", []))
        if calibrated:
            cols += ["calibrated ms", "calibrated error %"]
        rows = [
            [
                r.get("model"),
                r.get("precision"),
                r.get("input_shape"),
                r.get("macs"),
                r.get("predicted_ms"),
                r.get("measured_ms"),
                r.get("ratio"),
                r.get("bound"),
            ]
            + ([r.get("calibrated_ms"), r.get("calibrated_error_pct")] if calibrated else [])
            for r in pvm.get("rows", [])
        ]
        out += (
            stats
            + img(figures.predicted_vs_measured(pvm), "predicted vs measured")
            + table(cols, rows, sortable=True)
        )
        for s in (
            pvm.get("by_precision", {}).values()
            if isinstance(pvm.get("by_precision"), dict)
            else []
        ):
            out += note(json.dumps(s))
    return out + note(
        "The roofline estimate assumes every fused layer reaches the probed peak GEMM rate or DRAM "
        "bandwidth of this host; real runtimes lose time to small kernels, memory layout and "
        "framework overhead, so measured/predicted > 1 is expected. The rank correlation shows "
        "whether the estimate still orders models correctly."
    )


def render_calibration(group: list[dict]) -> str:
    """Calibrated per-kernel predictors: the host, overheads and the fit of each kernel type."""
    out = ""
    for cal in group:
        out += kv(
            [
                ("runtime", cal.get("runtime")),
                ("precision", cal.get("precision")),
                ("device", f"{cal.get('device')} ({cal.get('cpu')})"),
                ("kernels measured", cal.get("samples")),
                ("calibration time s", cal.get("seconds")),
                ("overhead per inference ms", cal.get("per_inference_ms")),
                ("overhead per kernel ms", cal.get("per_kernel_ms")),
                ("predictor file", cal.get("path")),
            ]
        )
        types = cal.get("types") if isinstance(cal.get("types"), dict) else {}
        rows = [
            [k, v.get("samples"), v.get("fit_median_abs_rel_error")]
            for k, v in types.items()
            if isinstance(v, dict)
        ]
        out += table(["kernel type", "samples", "median relative error of fit"], rows)
    return out


def render_export(group: list[dict]) -> str:
    cols = ["model", "path", "input", "opset", "size B", "max |ORT - PyTorch|", "time s"]
    return table(
        cols,
        [
            [
                e.get("model"),
                e.get("path"),
                e.get("input_shape"),
                e.get("opset"),
                e.get("size_bytes"),
                e.get("max_abs_error"),
                e.get("export_time_s"),
            ]
            for e in group
        ],
    )


def render_demo(group: list[dict]) -> str:
    d = group[0]
    stages = d.get("stages", [])
    keys: list[str] = []
    for s in stages:
        keys += [k for k in s if k not in keys and not isinstance(s[k], (dict, list))]
    out = table(keys, [[s.get(k) for k in keys] for s in stages])
    for n in d.get("notes", []) or []:
        out += note(str(n))
    return out


def render_environment(items: list[dict]) -> str:
    """Each distinct environment once: those the measurements recorded, then this machine's
    (unless it is one of them). Thread counts do not make an environment distinct."""
    from edgecnn.runtime.environment import environment_info

    def key(env: dict) -> str:
        drop = ("threads", "kind")
        return json.dumps(
            {k: v for k, v in env.items() if k not in drop}, sort_keys=True, default=str
        )

    envs: dict[str, tuple[list[str], dict]] = {}
    for r in items:
        env = r if r["kind"] == "environment" else r.get("environment")
        if isinstance(env, dict) and env:
            who = str(r.get("model") or r["kind"])
            envs.setdefault(key(env), ([], env))[0].append(who)
    here = environment_info()
    if key(here) in envs:
        envs[key(here)][0].append("this report")
    else:
        envs[key(here)] = (["this report"], here)
    out = ""
    for users, env in envs.values():
        label = "environment of " + ", ".join(dict.fromkeys(users))
        out += f"<h3>{html.escape(label)}</h3>" + kv(
            [(k, v) for k, v in env.items() if k != "kind"]
        )
    return out


def render_casestudy(group: list[dict]) -> str:
    c = group[0]
    cols = ["step", "cycles", "latency s", "DRAM B", "3x3 multiplications", "energy J"]
    rows = [
        [
            s.get("step"),
            s.get("cycles"),
            s.get("latency_s"),
            s.get("dram_bytes"),
            s.get("mults_3x3"),
            s.get("energy_j"),
        ]
        for s in c.get("steps", [])
    ]
    claims = table(
        ["claim", "seed", "ours", "agrees", "why"],
        [
            [k.get("claim"), k.get("seed"), k.get("ours"), k.get("agrees"), k.get("why")]
            for k in c.get("claims", [])
        ],
    )
    return (
        kv(
            [
                ("model", c.get("model")),
                ("accelerator", c.get("accelerator")),
                ("precision", c.get("precision")),
            ]
        )
        + table(cols, rows)
        + img(figures.casestudy_steps(c), "case-study steps")
        + "<h3>Claims</h3>"
        + claims
    )


def render_zoo(group: list[dict]) -> str:
    z = group[0]
    keys = [
        "model",
        "input_size",
        "macs",
        "params",
        "weight_bytes",
        "activation_traffic_bytes",
        "dram_bytes",
        "peak_activation_bytes",
        "arithmetic_intensity",
        "latency_s",
    ]
    labels = [
        "model",
        "input",
        "MACs",
        "params",
        "weight B",
        "activation traffic B",
        "DRAM B",
        "peak activation B",
        "MACs/B",
        "roofline latency s",
    ]
    rows = [[r.get(k) for k in keys] for r in z.get("rows", [])]
    return (
        kv([("precision", z.get("precision")), ("device", z.get("device") or "none (no roofline)")])
        + img(figures.zoo_scatter(z), "compute vs traffic")
        + table(labels, rows, sortable=True, scroll=True)
    )


def render_kernels_compare(group: list[dict]) -> str:
    out = ""
    for c in group:
        lay = c.get("layer") or {}
        algos = c.get("algorithms") or []
        keys: list[str] = []
        for a in algos:
            keys += [k for k in a if k not in keys and not isinstance(a[k], (dict, list))]
        out += kv([("layer", json.dumps(lay)), ("MACs", c.get("macs"))])
        out += table(keys, [[a.get(k) for k in keys] for a in algos], sortable=True)
    return out


def render_kernels_bench(group: list[dict]) -> str:
    out = ""
    for b in group:
        rows = b.get("rows") or []
        keys = [
            "layer",
            "spec",
            "batch",
            "algorithm",
            "time_s",
            "gflops",
            "ratio_to_onednn",
            "note",
        ]
        out += kv([("threads", b.get("threads")), ("repeats", b.get("repeats"))])
        out += table(keys, [[r.get(k) for k in keys] for r in rows], sortable=True, scroll=True)
    return out


def render_validate(group: list[dict]) -> str:
    out = ""
    for v in group:
        summary = v.get("summary") or {}
        band = v.get("band") or [0.67, 1.5]
        stats = []
        for part in ("all", "calibration", "held_out"):
            s = summary.get(part) or {}
            stats.append(
                (
                    f"{part}: within {band[0]}x-{band[1]}x / geomean error",
                    f"{s.get('within_share')} / {s.get('geomean_error')} (n = {s.get('n')})",
                )
            )
        out += kv(stats)
        for n in v.get("notes") or []:
            out += note(str(n))
        cols = ["reference", "metric", "target", "model", "batch", "published", "predicted"]
        cols += ["predicted / published", "calibration", "source"]
        rows = [
            [
                r.get("name"),
                r.get("metric"),
                r.get("target"),
                r.get("model"),
                r.get("batch"),
                r.get("published"),
                r.get("predicted"),
                r.get("ratio"),
                "yes" if r.get("calibration") else "",
                r.get("source"),
            ]
            for r in v.get("rows") or []
        ]
        out += table(cols, rows, sortable=True, scroll=True)
    return out


def render_codesign(group: list[dict]) -> str:
    """Hypervolumes, the verification of the chosen designs, and the joint front."""
    obj = group[0]
    hv = obj["hypervolume"]
    cov = obj.get("coverage_of_baselines") or {}
    secs = obj["seconds"]
    out = img(figures.codesign_fronts(obj), "co-design fronts")
    out += kv(
        [
            ("budget", obj.get("budget") or "none"),
            ("designs evaluated", obj.get("evaluations")),
            ("hypervolume: joint", hv.get("joint")),
            ("hypervolume: network first", hv.get("network_first")),
            ("hypervolume: hardware first", hv.get("hardware_first")),
            ("joint front dominates (hypervolume)", obj.get("joint_dominates")),
            ("share of network-first front covered by joint", cov.get("network_first")),
            ("share of hardware-first front covered by joint", cov.get("hardware_first")),
            (
                "seconds (supernet / search / baselines / verification / total)",
                " / ".join(
                    f"{secs.get(k, 0):.0f}"
                    for k in ("supernet", "joint_search", "baselines", "verification", "total")
                ),
            ),
        ]
    )
    ver = obj.get("verification") or []
    if ver:
        out += table(
            [
                "design",
                "supernet estimate %",
                "retrained from scratch %",
                "difference (pt)",
                "epochs",
            ],
            [
                [
                    v.get("label"),
                    v["supernet_accuracy"] * 100,
                    v["retrained_accuracy"] * 100,
                    v["difference_points"],
                    v.get("epochs"),
                ]
                for v in ver
            ],
        )
    rows = []
    for r in obj["joint_front"]:
        d = r.get("design") or {}
        a = d.get("accelerator") or {}
        rows.append(
            [
                r["accuracy"] * 100,
                r["latency_ms"],
                r["energy_mj"],
                r["area_mm2"],
                r.get("model_bytes"),
                f"d{d.get('depths')} w{d.get('widths')} k{d.get('kernels')} e{d.get('expands')} "
                f"r{d.get('resolution')} bits {d.get('bits_summary')} prune {d.get('prune_summary')}",
                f"{a.get('array')} {a.get('sram_kb')}KB {a.get('dataflow')} "
                f"wino={a.get('winograd')} {d.get('accel_precisions')}",
            ]
        )
    out += table(
        [
            "accuracy %",
            "latency ms",
            "energy mJ",
            "area mm²",
            "weight bytes",
            "network",
            "accelerator",
        ],
        rows,
        sortable=True,
        scroll=True,
    )
    return out


def render_deploy(group: list[dict]) -> str:
    cols = [
        "model",
        "runtime",
        "precision",
        "threads",
        "artifact",
        "size B",
        "max |error|",
        "error / output range",
        "allowed",
        "median ms",
        "top-1 agreement",
    ]
    rows = []
    for d in group:
        c = d.get("check") or {}
        lat = d.get("latency") or {}
        ev = d.get("int8_eval") or {}
        rows.append(
            [
                d.get("model"),
                d.get("runtime"),
                d.get("precision"),
                d.get("threads"),
                d.get("artifact"),
                sum((d.get("artifacts") or {}).values()),
                c.get("max_abs_error"),
                c.get("relative_error"),
                c.get("relative_tolerance"),
                lat.get("median_ms"),
                ev.get("top1_agreement"),
            ]
        )
    return table(cols, rows, sortable=True)


def render_runtime_bench(group: list[dict]) -> str:
    cols = ["model", "threads", "runtime", "median ms", "p90 ms", "min ms", "fastest"]
    rows = []
    notes = []
    for b in group:
        for t, per in (b.get("latency") or {}).items():
            for name, st in per.items():
                rows.append(
                    [
                        b.get("model"),
                        t,
                        name,
                        st.get("median_ms"),
                        st.get("p90_ms"),
                        st.get("min_ms"),
                        "yes" if (b.get("fastest") or {}).get(t) == name else "",
                    ]
                )
        for sk in b.get("skipped") or []:
            notes.append(f"{b.get('model')}: skipped {sk.get('runtime')}: {sk.get('reason')}")
    return table(cols, rows, sortable=True) + "".join(note(n) for n in notes)
