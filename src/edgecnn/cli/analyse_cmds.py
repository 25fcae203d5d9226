"""Commands of the analysis group: ``profile``, ``zoo``, ``devices``, ``version``."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import typer
from rich.table import Table

from edgecnn.cli.app import app
from edgecnn.cli.common import (
    console,
    device_max_batch,
    err_console,
    parse_shape,
    print_json,
    track,
)
from edgecnn.errors import ConfigError
from edgecnn.io import check_output_path

PRECISION_HELP = "Numeric precision of weights and activations: fp32, fp16 or int8."


@app.command()
def version(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Print the edgecnn version.

    Example: edgecnn version --json
    """
    from edgecnn import __version__

    if json_out:
        print_json({"kind": "version", "version": __version__})
        return
    print(__version__)


@app.command()
def profile(
    model: str = typer.Argument(
        ..., help="torchvision name (resnet50), .onnx file, .pt checkpoint, or module:factory."
    ),
    input_shape: str = typer.Option(
        None, "--input-shape", help="Input shape NxCxHxW, e.g. 1x3x224x224 (default: the model's)."
    ),
    precision: str = typer.Option("fp32", help=PRECISION_HELP),
    device: str = typer.Option(
        None, help="Device profile for the roofline (see 'edgecnn devices')."
    ),
    onchip_bytes: int = typer.Option(
        None,
        "--onchip-bytes",
        help="On-chip buffer in bytes (default: the device's on-chip memory, else 0).",
    ),
    runtime: str = typer.Option(
        None,
        "--runtime",
        help="Also predict latency in this runtime (ort) with the predictor 'edgecnn calibrate' "
        "fitted on this host (--device host).",
    ),
    predictor_path: Path = typer.Option(
        None, "--predictor", help="Calibrated predictor JSON (default: this host's cached one)."
    ),
    anchor: bool = typer.Option(
        True,
        "--anchor/--no-anchor",
        help="With --runtime: time the predictor's speed anchor now (about 1 s) and scale the "
        "prediction by how much slower or faster the host is than at calibration.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
    csv_path: Path = typer.Option(None, "--csv", help="Also write the per-layer table as CSV."),
    all_layers: bool = typer.Option(False, "--all", help="Show every layer, not only the top 40."),
    max_batch_flag: bool = typer.Option(
        False,
        "--max-batch",
        help="Also find the largest batch whose weights plus peak activations fit the device's memory.",
    ),
) -> None:
    """Per-layer and total MACs, FLOPs, parameters, DRAM traffic, peak memory and roofline latency.

    With --max-batch (needs --device): the largest batch whose weights plus peak activation
    memory fit the device's memory (an upper bound: runtime workspace is not counted).

    With --runtime ort (and --device host), the calibrated per-kernel predictor of this host
    (see 'edgecnn calibrate') predicts each fused kernel and the whole model, scaled by the
    host's speed now against the calibration's (a reference workload timed at both, about 1 s;
    --no-anchor: as calibrated).

    Example: edgecnn profile resnet50 --precision int8 --device rpi5 --onchip-bytes 2097152

    Example: edgecnn profile resnet18 --device host --runtime ort --precision int8
    """
    from edgecnn.analysis import profile as run_profile
    from edgecnn.models.resolve import load_graph

    shape = parse_shape(input_shape)
    if precision not in ("fp32", "fp16", "int8"):
        raise ConfigError(f"unknown --precision '{precision}': choose fp32, fp16 or int8")
    if csv_path is not None:
        check_output_path(csv_path, inputs=[model], option="--csv")
    if max_batch_flag and device is None:
        raise ConfigError("--max-batch needs --device (whose memory the batch must fit)")
    predictor = None
    if runtime is not None:
        from edgecnn.analysis.latency_predictor import RUNTIMES, load_predictor

        if runtime not in RUNTIMES:
            raise ConfigError(f"unknown --runtime '{runtime}': choose one of {', '.join(RUNTIMES)}")
        if device not in (None, "host"):
            raise ConfigError(
                f"--runtime predicts on the calibrated host, not '{device}': use --device host"
            )
        if precision not in ("fp32", "int8"):
            raise ConfigError(f"--runtime {runtime} predicts fp32 or int8, not {precision}")
        device = "host"
        predictor = load_predictor(runtime, precision, predictor_path)
    if predictor is not None:  # profiled and predicted on the graph ORT runs
        from edgecnn.runtime.export import onnx_graph

        graph = onnx_graph(model, shape)
    else:
        graph = load_graph(model, shape)
    result = run_profile(graph, precision, device, onchip_bytes)
    if max_batch_flag:
        result.max_batch = device_max_batch(model, shape, device, precision)
    if predictor is not None:
        from edgecnn.analysis.latency_predictor import predict_graph
        from edgecnn.analysis.profile import attach_prediction

        speed = 1.0
        if anchor and predictor.meta.get("anchor_ms"):
            from edgecnn.runtime.anchor import anchor_ms, speed_factor

            speed = speed_factor(predictor.meta["anchor_ms"], anchor_ms(predictor.precision))
        attach_prediction(result, predict_graph(predictor, graph, speed=speed))
    if csv_path is not None:
        _write_layers_csv(result, csv_path)
    if json_out:
        print_json(result.to_dict())
        return
    _print_profile(result, all_layers)


def _write_layers_csv(result, path: Path) -> None:
    from edgecnn.io import atomic_write_text

    buf = io.StringIO()
    fields = [
        "name",
        "op",
        "macs",
        "flops",
        "params",
        "weight_bytes",
        "input_bytes",
        "output_bytes",
        "dram_bytes",
        "arithmetic_intensity",
        "fused_into",
        "latency_s",
        "bound",
        "predicted_ms",
    ]
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    w.writeheader()
    for row in result.layers:
        w.writerow(row.__dict__)
    atomic_write_text(path, buf.getvalue())


def _print_profile(result, all_layers: bool) -> None:
    from edgecnn.analysis.profile import human

    t = result.totals
    table = Table(
        title=f"{result.model}  {'x'.join(map(str, result.input_shape))}  {result.precision}"
    )
    for col in ("layer", "op", "out shape", "MACs", "params", "DRAM", "MAC/B"):
        table.add_column(col, justify="left" if col in ("layer", "op", "out shape") else "right")
    if result.device:
        table.add_column("latency", justify="right")
        table.add_column("bound")
    if result.runtime:
        table.add_column(f"{result.runtime} ms", justify="right")
    rows = [r for r in result.layers if r.fused_into is None and (r.dram_bytes or r.macs)]
    if not all_layers and len(rows) > 40:
        rows = sorted(rows, key=lambda r: r.macs, reverse=True)[:40]
        table.caption = "top 40 layers by MACs (--all for every layer)"
    for r in rows:
        cells = [
            r.name,
            r.op,
            "x".join(map(str, r.output_shape)),
            human(r.macs),
            human(r.params),
            human(r.dram_bytes, "B"),
            f"{r.arithmetic_intensity:.1f}",
        ]
        if result.device:
            cells += [f"{(r.latency_s or 0) * 1e3:.3f} ms", r.bound or ""]
        if result.runtime:
            cells.append(f"{r.predicted_ms:.3f}" if r.predicted_ms is not None else "")
        table.add_row(*cells)
    console.print(table)
    summary = Table(show_header=False, title="totals")
    summary.add_row("MACs", f"{t.macs:,}")
    summary.add_row("FLOPs", f"{t.flops:,}")
    summary.add_row("params", f"{t.params:,}")
    summary.add_row("weights", human(t.weight_bytes, "B"))
    summary.add_row(
        "DRAM traffic", f"{human(t.dram_bytes, 'B')} ({human(t.dram_weight_bytes, 'B')} weights)"
    )
    summary.add_row("peak activations", human(t.peak_activation_bytes, "B"))
    summary.add_row("arithmetic intensity", f"{t.arithmetic_intensity:.2f} MAC/byte")
    if result.device:
        summary.add_row(f"roofline latency ({result.device})", f"{t.latency_s * 1e3:.3f} ms")
    if t.cpu_model_latency_s is not None:
        summary.add_row(
            f"CPU model latency ({result.device}, all cores, fp32, direct conv)",
            f"{t.cpu_model_latency_s * 1e3:.3f} ms",
        )
    if result.max_batch is not None:
        mb = result.max_batch
        summary.add_row(
            f"max batch ({result.device})",
            f"{mb.batch}{'+' if mb.capped else ''}: {human(mb.needed_bytes, 'B')} of "
            f"{human(mb.memory_bytes, 'B')} (weights + peak activations)",
        )
    if result.runtime and t.predicted_ms is not None:
        summary.add_row(
            f"calibrated {result.runtime} latency ({result.device}, 1 thread)",
            f"{t.predicted_ms:.3f} ms"
            + (
                f" (x{result.predicted_speed:.2f}: the host's speed anchor now vs at calibration)"
                if result.predicted_speed not in (None, 1.0)
                else ""
            ),
        )
    summary.add_row("unknown ops", str(len(t.unknown_ops)))
    console.print(summary)
    if t.unknown_ops:
        names = sorted({u["op"] for u in t.unknown_ops})
        err_console.print(
            f"warning: {len(t.unknown_ops)} layers with unknown ops, not counted: {', '.join(names)}"
        )


@app.command()
def devices(
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
    refresh_host: bool = typer.Option(
        False,
        "--refresh-host",
        help="Measure this machine again (the host probe is cached under ~/.cache/edgecnn).",
    ),
) -> None:
    """List the edge device profiles (peak ops per precision, DRAM bandwidth, on-chip memory).

    Example: edgecnn devices --refresh-host --json
    """
    from edgecnn.analysis.devices import load_catalog, probe_host
    from edgecnn.analysis.profile import human

    devs = [probe_host(refresh=refresh_host), *load_catalog().values()]
    if json_out:
        print_json({"kind": "devices", "devices": [d.to_dict() for d in devs]})
        return
    table = Table(title="device profiles: peak ops/s per precision (1 MAC = 2 ops), SI units")
    for col in ("name", "fp32", "fp16", "int8", "DRAM bandwidth", "on-chip", "description"):
        table.add_column(col)
    for d in devs:

        def ops(p: str, d=d) -> str:
            v = d.peak_ops_per_s.get(p)
            return human(v, "OP/s") if v else "-"

        table.add_row(
            d.name,
            ops("fp32"),
            ops("fp16"),
            ops("int8"),
            human(d.dram_bytes_per_s, "B/s"),
            human(d.onchip_bytes, "B") if d.onchip_bytes else "-",
            d.description,
        )
    console.print(table)
    console.print("sources: src/edgecnn/analysis/devices.toml (every figure names its datasheet)")


@app.command()
def zoo(
    out: Path = typer.Option(
        Path("zoo-out"), help="Directory for zoo.csv, zoo.json and the plots."
    ),
    precision: str = typer.Option("fp32", help=PRECISION_HELP),
    device: str = typer.Option(None, help="Device profile for roofline latency."),
    json_out: bool = typer.Option(False, "--json", help="Print the study as JSON."),
) -> None:
    """The compute-vs-bandwidth study of the CNN zoo (AlexNet to EfficientNet), tables and plots.

    Example: edgecnn zoo --out zoo-out --device rpi5
    """
    from edgecnn.analysis.profile import human
    from edgecnn.io import atomic_write_text
    from edgecnn.report.zoo_plots import plot_macs_vs_traffic, plot_traffic_bars
    from edgecnn.studies.zoo import ZOO_STUDY_MODELS, run_zoo_study

    if precision not in ("fp32", "fp16", "int8"):
        raise ConfigError(f"unknown --precision '{precision}': choose fp32, fp16 or int8")
    check_output_path(out, directory=True)
    models = list(track(ZOO_STUDY_MODELS, "profiling the zoo", quiet=json_out))
    study = run_zoo_study(tuple(models), precision, device)
    out.mkdir(exist_ok=True)
    buf = io.StringIO()
    fields = list(study.rows[0].__dict__)
    w = csv.DictWriter(buf, fieldnames=fields)
    w.writeheader()
    for r in study.rows:
        w.writerow(r.__dict__)
    atomic_write_text(out / "zoo.csv", buf.getvalue())
    import json

    atomic_write_text(out / "zoo.json", json.dumps(study.to_dict(), indent=2))
    plot_macs_vs_traffic(study, out / "zoo_macs_vs_traffic.png")
    plot_traffic_bars(study, out / "zoo_traffic_bars.png")
    if json_out:
        print_json(study.to_dict())
        return
    table = Table(title=f"CNN zoo, {precision}, batch 1, BN folded + activations fused")
    for col in ("model", "size", "GMACs", "params", "weights", "feature maps", "DRAM", "MAC/B"):
        table.add_column(col, justify="left" if col == "model" else "right")
    if device:
        table.add_column(f"latency ({device})", justify="right")
    for r in study.rows:
        cells = [
            r.model,
            str(r.input_size),
            f"{r.macs / 1e9:.3f}",
            human(r.params),
            human(r.weight_bytes, "B"),
            human(r.activation_traffic_bytes, "B"),
            human(r.dram_bytes, "B"),
            f"{r.arithmetic_intensity:.1f}",
        ]
        if device:
            cells.append(f"{r.latency_s * 1e3:.2f} ms")
        table.add_row(*cells)
    console.print(table)
    console.print(f"wrote {out}/zoo.csv, zoo.json, zoo_macs_vs_traffic.png, zoo_traffic_bars.png")
