"""One self-contained HTML report from results dicts (the JSON the commands print).

``write_report(results, out_path)`` writes a single file: CSS and a few lines of JS inline, every
chart an inline base64 PNG (``data:`` URL), no network access of any kind. Sections appear for
the kinds present (see :mod:`edgecnn.report.kinds`), in a fixed order, plus an environment
section (versions, CPU, threads) from the results and from the machine writing the report.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from edgecnn.io import atomic_write_text, check_output_path
from edgecnn.report import figures
from edgecnn.report.kinds import validate

ORDER = (
    "demo",
    "profile",
    "compress",
    "simulate",
    "explore",
    "bench",
    "predicted_vs_measured",
    "export",
)
TITLES = {
    "demo": "Demo summary",
    "profile": "Model profile",
    "compress": "Compression",
    "simulate": "Accelerator simulation",
    "explore": "Design-space exploration",
    "bench": "Measured latency (ONNX Runtime)",
    "predicted_vs_measured": "Predicted vs measured latency",
    "export": "ONNX export",
    "environment": "Environment",
}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1f2328;background:#f6f8fa}
header{background:#24292f;color:#fff;padding:14px 24px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;font-size:12px;color:#c9d1d9}nav{padding:6px 24px;background:#eaeef2;font-size:13px}
nav a{margin-right:14px;color:#0969da;text-decoration:none}main{padding:8px 24px 40px}
section{background:#fff;border:1px solid #d0d7de;border-radius:6px;margin:16px 0;padding:12px 18px}
h2{font-size:17px;margin:6px 0 10px}h3{font-size:14px;margin:14px 0 6px;color:#57606a}
table{border-collapse:collapse;font-size:12px;margin:6px 0}th,td{border:1px solid #d0d7de;padding:3px 7px}
th{background:#f6f8fa;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
table.sortable th{cursor:pointer;user-select:none}table.sortable th:after{content:" \\2195";color:#8c959f}
.scroll{max-height:460px;overflow:auto;border:1px solid #eaeef2}img{max-width:100%;margin:6px 8px 6px 0}
.note{font-size:12px;color:#57606a}.kv td:first-child{font-weight:600}
"""

_JS = """
document.querySelectorAll('table.sortable').forEach(function(t){
  t.querySelectorAll('th').forEach(function(th,i){th.addEventListener('click',function(){
    var b=t.tBodies[0],rows=Array.from(b.rows),asc=th.dataset.dir!=='asc';th.dataset.dir=asc?'asc':'desc';
    rows.sort(function(x,y){var a=x.cells[i].dataset.v,c=y.cells[i].dataset.v;
      var p=(a!==undefined&&c!==undefined)?(parseFloat(a)-parseFloat(c)):
        x.cells[i].textContent.localeCompare(y.cells[i].textContent);return asc?p:-p;});
    rows.forEach(function(r){b.appendChild(r);});});});});
"""


def write_report(
    results: Sequence[dict], out_path: str | os.PathLike[str], title: str = "edgecnn report"
) -> Path:
    """Validate ``results``, render them and write the HTML file atomically; return its path."""
    out = check_output_path(out_path)
    return atomic_write_text(out, render_report(results, title=title))


def render_report(results: Sequence[dict], title: str = "edgecnn report") -> str:
    """The report as one HTML string."""
    items = [validate(r, f"result {i}") for i, r in enumerate(results)]
    by_kind: dict[str, list[dict]] = {}
    for r in items:
        by_kind.setdefault(r["kind"], []).append(r)
    sections: list[tuple[str, str, str]] = []  # (anchor, title, body)
    for kind in ORDER:
        group = by_kind.get(kind, [])
        if not group:
            continue
        if kind in ("bench", "predicted_vs_measured", "export"):
            sections.append((kind, TITLES[kind], _RENDER[kind](group)))
        else:
            for j, r in enumerate(group):
                name = r.get("model") or r.get("name") or ""
                sections.append(
                    (
                        f"{kind}-{j}",
                        f"{TITLES[kind]}: {name}" if name else TITLES[kind],
                        _RENDER[kind]([r]),
                    )
                )
    sections.append(("environment", TITLES["environment"], _environment(items)))
    nav = "".join(f'<a href="#{a}">{html.escape(t)}</a>' for a, t, _ in sections)
    body = "".join(
        f'<section id="{a}"><h2>{html.escape(t)}</h2>{b}</section>' for a, t, b in sections
    )
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1><p>generated {stamp} by edgecnn; "
        f"{len(items)} result(s); self-contained (no network)</p></header>"
        f"<nav>{nav}</nav><main>{body}</main><script>{_JS}</script></body></html>"
    )


# ----------------------------------------------------------------------------- helpers


def _img(png: bytes | None, alt: str) -> str:
    if not png:
        return ""
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _fmt(v: Any) -> tuple[str, str | None]:
    """Display text and numeric sort key of a cell."""
    if v is None:
        return "", None
    if isinstance(v, bool):
        return ("yes" if v else "no"), None
    if isinstance(v, int):
        return f"{v:,}", str(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v), None
        a = abs(v)
        text = f"{v:.3g}" if (a and (a < 1e-2 or a >= 1e6)) else f"{v:,.3f}".rstrip("0").rstrip(".")
        return text, repr(v)
    if isinstance(v, (list, tuple)):
        return "x".join(map(str, v)) if all(isinstance(x, int) for x in v) else ", ".join(
            map(str, v)
        ), None
    if isinstance(v, dict):
        return json.dumps(v, default=str)[:120], None
    return str(v), None


def _table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    sortable: bool = False,
    scroll: bool = False,
) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for v in row:
            text, key = _fmt(v)
            attr = f' class="n" data-v="{key}"' if key is not None else ""
            cells.append(f"<td{attr}>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cls = ' class="sortable"' if sortable else ""
    t = f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return f'<div class="scroll">{t}</div>' if scroll else t


def _kv(pairs: Sequence[tuple[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(_fmt(v)[0])}</td></tr>"
        for k, v in pairs
        if v is not None
    )
    return f'<table class="kv"><tbody>{rows}</tbody></table>'


def _note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def _series(obj: Any) -> list[tuple[str, float]]:
    """Labelled numbers from ``{name: value}`` or ``[{name|layer|step: .., value-like: ..}]``."""
    if isinstance(obj, dict):
        return [(str(k), float(v)) for k, v in obj.items() if isinstance(v, (int, float))]
    out: list[tuple[str, float]] = []
    if isinstance(obj, list):
        for i, e in enumerate(obj):
            if isinstance(e, (int, float)):
                out.append((str(i), float(e)))
            elif isinstance(e, dict):
                label = str(e.get("layer", e.get("name", e.get("ratio", i))))
                val = next(
                    (
                        e[k]
                        for k in ("sqnr_db", "accuracy", "value", "drop", "error")
                        if isinstance(e.get(k), (int, float))
                    ),
                    None,
                )
                if val is not None:
                    out.append((label, float(val)))
    return out


# ----------------------------------------------------------------------------- sections


def _profile(group: list[dict]) -> str:
    p = group[0]
    t = p["totals"]
    summary = _kv(
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
    charts = _img(figures.compute_vs_traffic(p), "compute vs traffic") + _img(
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
        + _table(cols, rows, sortable=True, scroll=True)
        + _note(
            "MACs count conv/linear/matmul multiply-accumulates; FLOPs = 2 x MACs + one per element of other ops. "
            "DRAM bytes assume BN folded and activations fused; fused layers report 0."
        )
    )


def _compress(group: list[dict]) -> str:
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
    out = _table(cols, rows, sortable=False) + _img(
        figures.compress_steps(rep), "compression steps"
    )
    for s in steps:
        for key, label, unit in (
            ("sensitivity", "sensitivity", "accuracy / SQNR"),
            ("sqnr_db", "per-layer SQNR", "dB"),
            ("error_accumulation", "quantization error accumulation through depth", "SQNR dB"),
        ):
            pts = _series(s.get(key))
            if pts:
                out += _img(
                    figures.series_plot(pts, f"{s.get('step')}: {label}", unit),
                    f"{s.get('step')} {label}",
                )
    return out + _note(
        "Accuracy on the test split; size is the ONNX file; latency is ONNX Runtime, batch 1, median."
    )


def _simulate(group: list[dict]) -> str:
    sim = group[0]
    t = sim["totals"]
    acc = sim.get("accelerator", {})
    summary = _kv(
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
    charts = _img(figures.sim_cycles(sim), "cycles per layer") + _img(
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
        + _table(cols, rows, sortable=True, scroll=True)
    )
    pts = sim.get("pareto_front") or sim.get("pareto")
    if isinstance(pts, list) and pts:
        out += "<h3>Pareto front</h3>" + _explore([{"pareto_front": pts}])
    return out


def _explore(group: list[dict]) -> str:
    obj = group[0]
    front = [dict(p, pareto=True) for p in obj.get("pareto_front", []) if isinstance(p, dict)]
    others = (
        [p for p in obj.get("points", []) if isinstance(p, dict)]
        if isinstance(obj.get("points"), list)
        else []
    )
    pts = others + front if front else others
    front = front or [p for p in pts if p.get("pareto")] or pts
    keys = [k for k in ("latency_s", "energy_j", "area_mm2") if any(k in p for p in front)]
    first = front[0] if front else {}
    extra = [
        k
        for k in first
        if k not in keys and k != "pareto" and not isinstance(first[k], (dict, list))
    ][:6]
    table = _table(
        [*extra, *keys],
        [[p.get(k) for k in (*extra, *keys)] for p in front],
        sortable=True,
        scroll=True,
    )
    n_all = obj["points"] if isinstance(obj.get("points"), int) else len(pts)
    return (
        _img(figures.pareto(pts), "pareto front")
        + _note(
            f"{n_all} design points evaluated, {len(front)} Pareto-optimal (lower latency, energy and area)"
        )
        + table
    )


def _bench(group: list[dict]) -> str:
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
                f"{b.get('model')}: session load {b.get('load_time_s', 0) * 1e3:.1f} ms, process peak RSS {b['peak_rss_bytes'] / 2**20:.0f} MiB"
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
        _table(cols, rows, sortable=True)
        + "".join(_note(n) for n in notes)
        + _img(figures.bench_latency(group), "latency")
    )


def _pvm(group: list[dict]) -> str:
    out = ""
    for pvm in group:
        stats = _kv(
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
            for r in pvm.get("rows", [])
        ]
        out += (
            stats
            + _img(figures.predicted_vs_measured(pvm), "predicted vs measured")
            + _table(cols, rows, sortable=True)
        )
        for s in (
            pvm.get("by_precision", {}).values()
            if isinstance(pvm.get("by_precision"), dict)
            else []
        ):
            out += _note(json.dumps(s))
    return out + _note(
        "The roofline estimate assumes every fused layer reaches the probed peak GEMM rate or DRAM "
        "bandwidth of this host; real runtimes lose time to small kernels, memory layout and "
        "framework overhead, so measured/predicted > 1 is expected. The rank correlation shows "
        "whether the estimate still orders models correctly."
    )


def _export(group: list[dict]) -> str:
    cols = ["model", "path", "input", "opset", "size B", "max |ORT - PyTorch|", "time s"]
    return _table(
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


def _demo(group: list[dict]) -> str:
    d = group[0]
    stages = d.get("stages", [])
    keys: list[str] = []
    for s in stages:
        keys += [k for k in s if k not in keys and not isinstance(s[k], (dict, list))]
    out = _table(keys, [[s.get(k) for k in keys] for s in stages])
    for n in d.get("notes", []) or []:
        out += _note(str(n))
    return out


def _environment(items: list[dict]) -> str:
    from edgecnn.runtime.environment import environment_info

    envs: list[tuple[str, dict]] = []
    seen: set[str] = set()
    for r in items:
        env = r if r["kind"] == "environment" else r.get("environment")
        if isinstance(env, dict) and env:
            key = json.dumps(
                {k: v for k, v in env.items() if k != "threads"}, sort_keys=True, default=str
            )
            if key not in seen:
                seen.add(key)
                envs.append((f"measurements ({r.get('model', r['kind'])})", env))
    envs.append(("machine that wrote this report", environment_info()))
    out = ""
    for label, env in envs:
        out += f"<h3>{html.escape(label)}</h3>" + _kv(
            [(k, v) for k, v in env.items() if k != "kind"]
        )
    return out


_RENDER: dict[str, Callable[[list[dict]], str]] = {
    "demo": _demo,
    "profile": _profile,
    "compress": _compress,
    "simulate": _simulate,
    "explore": _explore,
    "bench": _bench,
    "predicted_vs_measured": _pvm,
    "export": _export,
}
