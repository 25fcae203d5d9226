"""Commands ``export``, ``bench`` and ``predicted-vs-measured``, registered on the shared app."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from edgecnn.cli.app import app
from edgecnn.cli.common import console, device_max_batch, parse_shape, print_json, track


@app.command()
def export(
    model: str = typer.Argument(
        ..., help="torchvision/edge model name, .pt checkpoint or module:factory."
    ),
    out: Path = typer.Option(..., "--out", help="ONNX file to write."),
    opset: int = typer.Option(17, "--opset", help="ONNX opset (11-21)."),
    input_shape: str = typer.Option(
        None, "--input-shape", help="Input shape, e.g. 1x3x224x224 (default: the model's own)."
    ),
    dynamic_batch: bool = typer.Option(
        False, "--dynamic-batch", help="Make the batch dimension symbolic."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Export a model to ONNX, checking ONNX Runtime's output against PyTorch before writing.

    Example: edgecnn export resnet18 --out resnet18.onnx --opset 17
    """
    from edgecnn.io import check_output_path
    from edgecnn.runtime.export import export_model

    check_output_path(out, inputs=[model])
    res = export_model(
        model, out, input_shape=parse_shape(input_shape), opset=opset, dynamic_batch=dynamic_batch
    )
    if json_out:
        print_json(res.to_dict())
        return
    console.print(
        f"{res.model}: wrote {res.path} ({res.size_bytes / 1e6:.2f} MB, opset {res.opset}, "
        f"input {'x'.join(map(str, res.input_shape))}); ORT matches PyTorch within {res.max_abs_error:.2g}"
    )


@app.command()
def bench(
    model: str = typer.Argument(
        ..., help="An .onnx file, or a torchvision/edge name, .pt checkpoint or module:factory."
    ),
    batch: int = typer.Option(None, "--batch", min=1, help="Batch size (default: the model's)."),
    max_batch_flag: bool = typer.Option(
        False,
        "--max-batch",
        help="Use the largest batch whose weights plus peak activations fit the memory of "
        "--device (default host: available memory / 2, as PyTorch and ORT each hold a copy).",
    ),
    device: str = typer.Option(
        None, "--device", help="With --max-batch: the device whose memory the batch must fit."
    ),
    threads: list[int] = typer.Option(
        None,
        "--threads",
        min=1,
        help="Intra-op threads (default 1). With --runtime: repeat for several counts "
        "(default: 1 and all CPUs).",
    ),
    runtime: str = typer.Option(
        None,
        "--runtime",
        help="all, or a comma-separated list of ort, openvino, tflite, ncnn, tvm: convert and "
        "time them interleaved (installed ones: pip install -e '.[runtimes]').",
    ),
    runs: int = typer.Option(50, "--runs", min=1, help="Timed runs per candidate."),
    warmup: int = typer.Option(5, "--warmup", min=0, help="Untimed warm-up runs per candidate."),
    input_shape: str = typer.Option(
        None, "--input-shape", help="Input shape for models with symbolic dims, e.g. 1x3x224x224."
    ),
    baseline: Path = typer.Option(
        None,
        "--baseline",
        help="Another .onnx (e.g. the fp32 model of an int8 one) timed interleaved.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Measure latency (median/p90/p99/min), throughput, load time and peak RSS in ONNX Runtime.

    For a PyTorch source, PyTorch eager runs interleaved with ORT; with --baseline, the baseline
    ONNX runs interleaved and the speed ratio (baseline median / model median) is reported.

    Example: edgecnn bench model-int8.onnx --baseline model-fp32.onnx --runs 100 --json
    """
    from edgecnn.errors import ConfigError
    from edgecnn.models.resolve import is_onnx_path
    from edgecnn.runtime.benchmark import bench_onnx, bench_source

    shape = parse_shape(input_shape)
    if device is not None and not max_batch_flag:
        raise ConfigError("--device goes with --max-batch (the latency is measured on this host)")
    if max_batch_flag:
        if batch is not None:
            raise ConfigError("give --batch or --max-batch, not both")
        batch = device_max_batch(model, shape, device).batch
        if not json_out:
            console.print(f"--max-batch: batch {batch} fits {device or 'this host'}")
    if runtime is not None:
        if baseline is not None or is_onnx_path(model):
            raise ConfigError(
                "--runtime converts a PyTorch source (name, checkpoint or module:factory): "
                "give MODEL as one and drop --baseline"
            )
        _bench_runtimes(model, runtime, threads, batch, runs, warmup, shape, json_out)
        return
    if threads and len(threads) > 1:
        raise ConfigError("several --threads values need --runtime: give one thread count")
    threads = threads[0] if threads else 1
    ticks = iter(track(range(runs), "benchmarking", total=runs, quiet=json_out))
    step = lambda _r: next(ticks, None)  # noqa: E731
    if is_onnx_path(model):
        res = bench_onnx(
            model,
            batch=batch,
            threads=threads,
            runs=runs,
            warmup=warmup,
            input_shape=shape,
            baseline=baseline,
            on_round=step,
        )
    else:
        if baseline is not None:
            from edgecnn.errors import ConfigError

            raise ConfigError(
                "--baseline compares two .onnx files: give MODEL as an .onnx file too"
            )
        res = bench_source(
            model,
            batch=batch,
            threads=threads,
            runs=runs,
            warmup=warmup,
            input_shape=shape,
            on_round=step,
        )
    for _ in ticks:
        pass
    if json_out:
        print_json(res.to_dict())
        return
    t = Table(
        title=f"{res.model} ({res.precision}, input {'x'.join(map(str, res.input_shape))}, {res.threads} thread(s))"
    )
    for col in ("candidate", "median ms", "p90 ms", "p99 ms", "min ms", "items/s"):
        t.add_column(col, justify="right" if col != "candidate" else "left")
    for name, s in res.latency.items():
        label = {
            "ort": "ONNX Runtime",
            "torch": "PyTorch eager",
            "baseline": f"baseline ({res.baseline_precision})",
        }[name]
        t.add_row(
            label,
            f"{s.median_ms:.3f}",
            f"{s.p90_ms:.3f}",
            f"{s.p99_ms:.3f}",
            f"{s.min_ms:.3f}",
            f"{s.throughput_per_s:.1f}",
        )
    console.print(t)
    console.print(
        f"session load {res.load_time_s * 1e3:.1f} ms, peak RSS {res.peak_rss_bytes / 1e6:.0f} MB, {res.runs} runs interleaved"
    )
    if res.speed_ratio_vs_baseline is not None:
        console.print(
            f"speed ratio {res.precision}/{res.baseline_precision}: {res.speed_ratio_vs_baseline:.2f}x (baseline median / model median)"
        )
    if res.speed_ratio_ort_vs_torch is not None:
        console.print(
            f"ORT vs PyTorch eager: {res.speed_ratio_ort_vs_torch:.2f}x (torch median / ORT median)"
        )


def _bench_runtimes(model, runtime, threads, batch, runs, warmup, shape, json_out) -> None:
    """``bench --runtime``: every named (or installed) runtime, interleaved per thread count."""
    from edgecnn.cli.common import announcer
    from edgecnn.studies.runtimes import bench_runtimes, default_thread_counts

    names = "all" if runtime == "all" else [r.strip() for r in runtime.split(",") if r.strip()]
    counts = sorted(set(threads)) if threads else default_thread_counts()
    total = runs * len(counts)
    ticks = iter(track(range(total), "benchmarking", total=total, quiet=json_out))
    res = bench_runtimes(
        model,
        names,
        thread_counts=counts,
        runs=runs,
        warmup=warmup,
        input_shape=shape,
        batch=batch,
        on_step=announcer("bench", quiet=json_out),
        on_round=lambda _r: next(ticks, None),
    )
    for _ in ticks:
        pass
    if json_out:
        print_json(res.to_dict())
        return
    from edgecnn.runtime.backends import BACKENDS

    for t, per in res.latency.items():
        tab = Table(
            title=f"{res.model} (fp32, input {'x'.join(map(str, res.input_shape))}, {t} thread(s), {res.runs} runs interleaved)"
        )
        for col in ("runtime", "median ms", "p90 ms", "min ms", "items/s", "max rel. error"):
            tab.add_column(col, justify="left" if col == "runtime" else "right")
        for name, st in sorted(per.items(), key=lambda kv: kv[1].median_ms):
            tab.add_row(
                BACKENDS[name].label + (" (fastest)" if name == res.fastest[t] else ""),
                f"{st.median_ms:.3f}",
                f"{st.p90_ms:.3f}",
                f"{st.min_ms:.3f}",
                f"{st.throughput_per_s:.1f}",
                f"{res.checks[name].relative_error:.1e}",
            )
        console.print(tab)
        console.print(f"fastest at {t} thread(s): {res.fastest[t]}")
    for sk in res.skipped:
        console.print(f"skipped {sk['runtime']}: {sk['reason']}")


@app.command("predicted-vs-measured")
def predicted_vs_measured_cmd(
    models: list[str] = typer.Argument(None, help="Model names (default: 13 torchvision CNNs)."),
    precision: list[str] = typer.Option(
        ["fp32"], "--precision", help="fp32 and/or int8 (repeat the option)."
    ),
    threads: int = typer.Option(1, "--threads", min=1, help="Threads for ORT and the host probe."),
    runs: int = typer.Option(10, "--runs", min=1, help="Timed ORT runs per model."),
    out: Path = typer.Option(
        None, "--out", help="Directory to write predicted_vs_measured.json and .png."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Roofline latency on the measured 'host' profile beside measured ONNX Runtime latency.

    Reports Spearman's rank correlation and the median measured/predicted ratio.

    Example: edgecnn predicted-vs-measured --threads 1 --runs 10 --out pvm
    """
    from edgecnn.io import atomic_dir
    from edgecnn.studies.predicted import DEFAULT_MODELS, predicted_vs_measured

    names = list(models) if models else list(DEFAULT_MODELS)
    if out is not None:
        from edgecnn.io import check_output_path

        check_output_path(out)  # fail before measuring when the parent directory is missing
    ticks = iter(track(range(len(names)), "models", total=len(names), quiet=json_out))
    res = predicted_vs_measured(
        names,
        precisions=precision,
        threads=threads,
        runs=runs,
        on_model=lambda _n: next(ticks, None),
    )
    for _ in ticks:
        pass
    d = res.to_dict()
    if out is not None:
        import json

        from edgecnn.report.figures import predicted_vs_measured as pvm_figure

        with atomic_dir(out) as tmp:
            (tmp / "predicted_vs_measured.json").write_text(json.dumps(d, indent=2))
            png = pvm_figure(d)
            if png:
                (tmp / "predicted_vs_measured.png").write_bytes(png)
    if json_out:
        print_json(d)
        return
    t = Table(title=f"roofline on host vs ONNX Runtime ({threads} thread(s), median of {runs})")
    for col in (
        "model",
        "precision",
        "GMACs",
        "predicted ms",
        "measured ms",
        "measured/predicted",
        "bound",
    ):
        t.add_column(col, justify="left" if col in ("model", "precision", "bound") else "right")
    calibrated = any(r.calibrated_ms is not None for r in res.rows)
    if calibrated:
        t.add_column("calibrated ms", justify="right")
        t.add_column("calibrated error", justify="right")
    for r in res.rows:
        cells = [
            r.model,
            r.precision,
            f"{r.macs / 1e9:.3f}",
            f"{r.predicted_ms:.2f}",
            f"{r.measured_ms:.2f}",
            f"{r.ratio:.2f}",
            r.bound,
        ]
        if calibrated:
            cells += (
                [f"{r.calibrated_ms:.2f}", f"{r.calibrated_error_pct:+.1f}%"]
                if r.calibrated_ms is not None and r.calibrated_error_pct is not None
                else ["", ""]
            )
        t.add_row(*cells)
    console.print(t)
    console.print(
        f"Spearman rank correlation {res.spearman:.3f}; median measured/predicted {res.median_ratio:.2f}x"
    )
    for p, st in res.by_precision.items():
        if "calibrated_spearman" in st:
            console.print(
                f"calibrated ORT predictor ({p}): {100 * st['calibrated_share_within_10pct']:.0f}% "
                f"of models within +-10%, Spearman {st['calibrated_spearman']:.3f}"
            )
    for s in res.skipped:
        console.print(f"skipped {s['model']} {s['precision']}: {s['reason']}")
    if out is not None:
        console.print(f"wrote {out}/predicted_vs_measured.json and .png")


@app.command()
def calibrate(
    runtime: str = typer.Option("ort", "--runtime", help="Runtime to calibrate (ort)."),
    device: str = typer.Option("host", "--device", help="Device (only this host: host)."),
    precision: str = typer.Option("fp32", "--precision", help="fp32, int8 or both."),
    samples: int = typer.Option(
        300, "--samples", min=1, help="Kernels to measure per precision (split by kernel type)."
    ),
    chains: int = typer.Option(
        60,
        "--chains",
        min=0,
        help="Random networks whose kernels are also measured in context (0: single kernels only).",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampled kernel shapes."),
    networks: str = typer.Option(
        "default",
        "--networks",
        help="Comma-separated models (zoo names, module:function factories or ONNX files) whose "
        "kernels are also measured inside the whole network (int8: quantized like the "
        "kernels); they count as used in calibration. 'default': one small torchvision model "
        "per family (DEFAULT_NETWORKS); 'none': no network.",
    ),
    out: Path = typer.Option(
        None,
        "--out",
        help="Predictor JSON to write (default ~/.cache/edgecnn/predictors/ort-<precision>-<cpu>.json; "
        "with --precision both, '-fp32'/'-int8' is added before the suffix).",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Fit a per-kernel latency predictor for ONNX Runtime (1 thread) on this host.

    Samples conv (plain, fused with BN/activation/residual add), depthwise and grouped conv,
    linear, pooling, elementwise, activation, concat, matmul and memory-bound kernels as tiny
    single-kernel ONNX models and inside --chains random networks (CNN and transformer-like),
    times them with ORT's profiler and fits one non-negative linear model per kernel type;
    'edgecnn profile MODEL --device host --runtime ort' then predicts.

    Example: edgecnn calibrate --runtime ort --precision both --samples 300
    """
    from edgecnn.analysis.latency_predictor import RUNTIMES
    from edgecnn.errors import ConfigError
    from edgecnn.io import check_output_path
    from edgecnn.runtime.calibrate import calibrate as run_calibrate

    if runtime not in RUNTIMES:
        raise ConfigError(f"unknown --runtime '{runtime}': choose one of {', '.join(RUNTIMES)}")
    if device != "host":
        raise ConfigError(f"calibration measures this machine: use --device host, not '{device}'")
    if precision not in ("fp32", "int8", "both"):
        raise ConfigError(f"unknown --precision '{precision}': choose fp32, int8 or both")
    precs = ["fp32", "int8"] if precision == "both" else [precision]
    from edgecnn.runtime.calibrate import DEFAULT_NETWORKS

    if networks.strip() == "default":
        nets = list(DEFAULT_NETWORKS)
    elif networks.strip() == "none":
        nets = []
    else:
        nets = [n.strip() for n in networks.split(",") if n.strip()]
    outs: dict[str, Path | None] = {}
    for p in precs:
        target = out
        if out is not None and len(precs) > 1:
            target = out.with_name(f"{out.stem}-{p}{out.suffix or '.json'}")
        if target is not None:
            check_output_path(target)
        outs[p] = target
    results = []
    for p in precs:
        plan_total = None
        ticks = None

        def step(i: int, n: int, p=p) -> None:
            nonlocal plan_total, ticks
            if ticks is None:
                plan_total = n
                ticks = iter(track(range(n), f"calibrating ort/{p}", total=n, quiet=json_out))
            next(ticks, None)

        _, res = run_calibrate(
            p,
            samples=samples,
            seed=seed,
            out=outs[p],
            on_sample=step,
            chains=chains,
            networks=nets,
        )
        if ticks is not None:
            for _ in ticks:
                pass
        results.append(res)
    if json_out:
        print_json(results[0].to_dict() if len(results) == 1 else [r.to_dict() for r in results])
        return
    for res in results:
        t = Table(title=f"ort/{res.precision} predictor on {res.cpu} (1 thread)")
        for col in ("kernel type", "samples", "median |error| of fit"):
            t.add_column(col, justify="left" if col == "kernel type" else "right")
        for k, v in res.types.items():
            t.add_row(k, str(int(v["samples"])), f"{v['fit_median_abs_rel_error'] * 100:.1f}%")
        console.print(t)
        for net in res.networks:
            console.print(
                f"network {net['network']}: {net['kernels']} kernels, "
                f"{net['kernel_sum_ms']:.2f} ms profiled of {net['wall_ms']:.2f} ms wall, "
                f"{net['unattributed_ms']:.3f} ms attributed to no kernel"
            )
        console.print(
            f"{res.samples} kernels in {res.seconds:.0f} s; overhead {res.per_inference_ms:.4f} ms "
            f"per inference, {res.per_kernel_ms:.4f} ms per kernel; wrote {res.path}"
        )
