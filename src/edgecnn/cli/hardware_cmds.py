"""Commands of the hardware group: ``simulate``, ``export-topology``, ``casestudy``, ``explore``."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import typer

from edgecnn.cli.app import app
from edgecnn.cli.common import console, parse_shape, print_json


def _fmt_bytes(n: float) -> str:
    """Bytes with decimal SI prefixes (kB = 1000 B), the convention of every edgecnn table."""
    from edgecnn.analysis.profile import human

    return human(n, "B")


@app.command()
def simulate(
    model: str = typer.Argument(
        ..., help="SCALE-Sim topology .csv, torchvision name, .onnx, .pt or module:factory."
    ),
    accel: str | None = typer.Option(
        None,
        "--accel",
        help="Preset (seed-chip, tpu-32x32, tpu-128x128, eyeriss, edge-tpu) or a .toml/.yaml/.cfg file. Default: seed-chip.",
    ),
    model_cycles: str = typer.Option(
        "tiled",
        "--model-cycles",
        help="Cycle model: tiled (search) or scalesim (SCALE-Sim v3 exact).",
    ),
    precision: str | None = typer.Option(
        None, "--precision", help="int8, fp16 or fp32 (default: the accelerator's)."
    ),
    input_shape: str | None = typer.Option(None, "--input-shape", help="e.g. 1x3x224x224."),
    objective: str = typer.Option(
        "latency", "--objective", help="Tiling search objective: latency, energy or dram."
    ),
    fuse: bool = typer.Option(
        True, "--fuse/--no-fuse", help="Fold BatchNorm and fuse activations."
    ),
    winograd: bool = typer.Option(
        True, "--winograd/--no-winograd", help="Use the accelerator's Winograd unit."
    ),
    reuse: bool = typer.Option(
        True, "--reuse/--no-reuse", help="Keep feature maps on chip when they fit."
    ),
    sparsity: float | None = typer.Option(
        None, "--sparsity", help="Weight sparsity of every layer (needs zero_skipping)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    csv_out: Path | None = typer.Option(None, "--csv", help="Write the per-layer table as CSV."),
) -> None:
    """Simulate MODEL on an accelerator: per-layer cycles, SRAM/DRAM traffic and energy.

    Example: edgecnn simulate resnet50 --accel tpu-32x32 --json
    """
    from edgecnn.hardware.config import load_accelerator
    from edgecnn.hardware.loading import load_model_graph
    from edgecnn.hardware.simulate import SimOptions
    from edgecnn.hardware.simulate import simulate as run

    opts = SimOptions(
        model_cycles=model_cycles,
        precision=precision,
        objective=objective,
        fuse=fuse,
        winograd=winograd,
        fmap_reuse=reuse,
        sparsity=sparsity,
    )
    config = load_accelerator(accel)
    if csv_out is not None:
        from edgecnn.io import check_output_path

        check_output_path(csv_out, inputs=[model], option="--csv")
    graph = load_model_graph(model, parse_shape(input_shape))
    result = run(graph, config, opts)
    if csv_out is not None:
        _write_csv(result, csv_out)
    if as_json:
        print_json(result.to_dict())
        return
    _print_table(result)


_CSV_FIELDS = (
    "name",
    "op",
    "unit",
    "macs",
    "cycles",
    "compute_cycles",
    "stall_cycles",
    "utilization",
    "sram_reads",
    "sram_writes",
    "dram_bytes",
    "energy_j",
    "winograd",
)


def _write_csv(result, path: Path) -> None:
    from edgecnn.io import atomic_write_text

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(_CSV_FIELDS + ("tiling",))
    for r in result.layers:
        d = r.to_dict()
        w.writerow([d[k] for k in _CSV_FIELDS] + [d["tiling"] or ""])
    atomic_write_text(path, buf.getvalue())


def _print_table(result) -> None:
    from rich.table import Table

    table = Table(
        title=f"{result.model} on {result.accelerator['name']} ({result.model_cycles}, {result.precision})"
    )
    for col in ("layer", "op", "MACs", "cycles", "stall", "util", "DRAM", "energy µJ", "tiling"):
        table.add_column(col, justify="left" if col in ("layer", "op", "tiling") else "right")
    for r in result.layers:
        t = r.tiling or {}
        tiling = (f"{t['tm']},{t['tn']},{t['tr']},{t['tc']} {t['order']}" if "tm" in t else "") + (
            " wino" if r.winograd else ""
        )
        table.add_row(
            r.name,
            r.op,
            f"{r.macs:,}",
            f"{r.cycles:,}",
            f"{r.stall_cycles:,}",
            f"{r.utilization:.2f}",
            _fmt_bytes(r.dram_bytes),
            f"{r.energy_j * 1e6:.1f}",
            tiling,
        )
    console.print(table)
    tot = result.totals
    console.print(
        f"total: {tot['cycles']:,} cycles = {tot['latency_s'] * 1e3:.3f} ms at "
        f"{result.accelerator['clock_hz'] / 1e6:.0f} MHz, {tot['macs']:,} MACs on {tot['pes']} PEs, "
        f"utilization {tot['utilization']:.2f}, DRAM {_fmt_bytes(tot['dram_bytes'])}, "
        f"SRAM {_fmt_bytes(tot['sram_bytes'])}, energy {tot['energy_j'] * 1e3:.3f} mJ"
    )
    parts = ", ".join(f"{k} {v * 1e3:.3f}" for k, v in tot["energy_breakdown"].items())
    console.print(f"energy by component (mJ): {parts}")
    if result.unknown_ops:
        console.print(
            f"[yellow]unmodelled ops (costed as vector passes): {', '.join(result.unknown_ops)}[/]"
        )


@app.command("export-topology")
def export_topology(
    model: str = typer.Argument(
        ..., help="Torchvision name, .onnx, .pt, module:factory or a topology .csv."
    ),
    out: Path = typer.Option(..., "--out", help="Output topology CSV."),
    input_shape: str | None = typer.Option(
        None, "--input-shape", help="e.g. 1x3x224x224 (batch must be 1)."
    ),
    fuse: bool = typer.Option(
        True, "--fuse/--no-fuse", help="Fold BatchNorm (no effect on the rows)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Write MODEL's conv/GEMM layers as a SCALE-Sim topology CSV.

    Example: edgecnn export-topology resnet18 --out resnet18.csv
    """
    from edgecnn.hardware.loading import load_model_graph
    from edgecnn.hardware.topology import topology_csv, topology_rows
    from edgecnn.hardware.workload import build_workload
    from edgecnn.io import atomic_write_text, check_output_path

    check_output_path(out, inputs=[model])
    graph = load_model_graph(model, parse_shape(input_shape))
    workload = build_workload(graph, fuse=fuse)
    atomic_write_text(out, topology_csv(workload))
    rows = topology_rows(workload)
    if as_json:
        print_json({"model": graph.name, "out": str(out), "rows": len(rows)})
    else:
        console.print(f"wrote {len(rows)} layers to {out}")


@app.command()
def casestudy(
    model: str = typer.Argument("resnet50", help="Model of the case (the seeds use resnet50)."),
    accel: str | None = typer.Option(None, "--accel", help="Accelerator (default: seed-chip)."),
    input_shape: str | None = typer.Option(None, "--input-shape", help="e.g. 1x3x224x224."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Reproduce the seeds' ResNet-50 accelerator case step by step and check its claims.

    Example: edgecnn casestudy resnet50
    """
    from rich.table import Table

    from edgecnn.hardware.config import load_accelerator
    from edgecnn.hardware.loading import load_model_graph
    from edgecnn.studies.casestudy import run_casestudy

    graph = load_model_graph(model, parse_shape(input_shape))
    study = run_casestudy(graph, load_accelerator(accel))
    if as_json:
        print_json(study.to_dict())
        return
    base = study.steps[0]
    table = Table(title=f"{study.model} on {study.accelerator} ({study.precision})")
    for col in (
        "step",
        "latency ms",
        "vs baseline",
        "DRAM MB",
        "vs baseline",
        "3x3 mults (M)",
        "energy mJ",
    ):
        table.add_column(col, justify="left" if col == "step" else "right")
    for s in study.steps:
        table.add_row(
            s.step,
            f"{s.latency_s * 1e3:.2f}",
            f"{s.latency_s / base.latency_s - 1:+.0%}",
            f"{s.dram_bytes / 1e6:.1f}",
            f"{s.dram_bytes / base.dram_bytes - 1:+.0%}",
            f"{s.mults_3x3 / 1e6:.0f}",
            f"{s.energy_j * 1e3:.1f}",
        )
    console.print(table)
    for c in study.claims:
        verdict = "[green]agrees[/]" if c.agrees else "[red]does not agree[/]"
        console.print(f"- seed: {c.claim} ({c.seed}); ours: {c.ours} -> {verdict}. {c.why}")


@app.command()
def explore(
    model: str = typer.Argument(..., help="Model to simulate at every point (as in simulate)."),
    space: Path = typer.Option(
        ..., "--space", help="Space YAML: base accelerator and values to sweep."
    ),
    ray: bool = typer.Option(
        False, "--ray", help="Run the points as Ray tasks (local Ray by default)."
    ),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="Join this Ray cluster (host:port or ray://...); implies --ray."
    ),
    out: Path = typer.Option(
        Path("results.jsonl"), "--out", help="JSON-lines results (appended; resumes)."
    ),
    plot: Path | None = typer.Option(
        None, "--plot", help="Pareto plot PNG (default: OUT with .png)."
    ),
    workers: int | None = typer.Option(
        None, "--workers", help="Local worker processes (default: CPUs)."
    ),
    input_shape: str | None = typer.Option(None, "--input-shape", help="e.g. 1x3x224x224."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Sweep accelerator designs for MODEL and show the latency/energy/area Pareto front.

    The space YAML names a base accelerator and lists values for array, sram_kb, dataflow,
    precision, winograd and bandwidth; see edgecnn/hardware/presets/space-example.yaml.

    Example: edgecnn explore resnet18 --space space.yaml --out results.jsonl --ray
    """
    from rich.table import Table

    from edgecnn.cli.common import counter
    from edgecnn.hardware.explore import explore as run_explore
    from edgecnn.hardware.explore import load_space, plot_front
    from edgecnn.hardware.loading import load_model_graph
    from edgecnn.hardware.workload import build_workload
    from edgecnn.io import check_output_path

    png_path = plot or out.with_suffix(".png")
    check_output_path(out, inputs=[model, space])
    check_output_path(png_path, inputs=[model, space, out], option="--plot")
    sp = load_space(space)
    workload = build_workload(load_model_graph(model, parse_shape(input_shape)))

    progress = counter("design points", quiet=as_json)

    address = ray_address or ("local" if ray else None)
    result = run_explore(workload, sp, out, ray_address=address, workers=workers, progress=progress)
    png = plot_front(result, png_path)
    if as_json:
        d = result.to_dict()
        d["plot"] = str(png)
        print_json(d)
        return
    table = Table(title=f"Pareto front ({len(result.front)} of {len(result.points)} points)")
    for col in ("point", "latency ms", "energy mJ", "area mm²", "DRAM MB", "util"):
        table.add_column(col, justify="left" if col == "point" else "right")
    for r in result.front:
        table.add_row(
            ", ".join(f"{k}={v}" for k, v in r["params"].items()),
            f"{r['latency_s'] * 1e3:.3f}",
            f"{r['energy_j'] * 1e3:.3f}",
            f"{r['area_mm2']:.2f}",
            f"{r['dram_bytes'] / 1e6:.1f}",
            f"{r['utilization']:.2f}",
        )
    console.print(table)
    console.print(
        f"{result.computed} points computed, {result.skipped} already in {out}; plot: {png}"
    )
