"""Command ``demo``: the end-to-end run a new user starts with."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from edgecnn.cli.app import app
from edgecnn.cli.common import console, err_console, json_default, print_json


@app.command()
def demo(
    out: Path = typer.Option(
        Path("edgecnn-demo"), "--out", help="Output directory (replaced atomically)."
    ),
    epochs: int = typer.Option(8, "--epochs", min=1, help="Training epochs of the built-in model."),
    threads: int = typer.Option(
        2, "--threads", min=1, help="Training threads (ORT timing uses 1)."
    ),
    runs: int = typer.Option(100, "--runs", min=1, help="Timed ORT runs per stage."),
    seed: int = typer.Option(0, "--seed", help="Seed for initialisation and training."),
    recipe: Path = typer.Option(
        None, "--recipe", help="Compression recipe YAML (default: prune, distil, fold, INT8)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Train the built-in model on MNIST-5k, profile, compress, simulate, benchmark; write a report.

    Writes OUT/ with the ONNX models, JSON results and report.html. No downloads.

    Example: edgecnn demo --out edgecnn-demo
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from edgecnn.io import atomic_dir, check_output_path
    from edgecnn.studies.demo import DemoConfig, run_demo

    check_output_path(out)
    cfg = DemoConfig(
        epochs=epochs,
        threads=threads,
        bench_runs=runs,
        seed=seed,
        recipe=str(recipe) if recipe is not None else None,
    )
    progress = Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        disable=json_out,
    )
    tasks: dict[str, int] = {}

    def tick(task: str, done: int, total: int) -> None:
        if task not in tasks:
            tasks[task] = progress.add_task(task, total=total)
        progress.update(tasks[task], completed=done, total=total)

    with atomic_dir(out) as tmp, progress:
        res = run_demo(cfg, tmp, progress=tick)
        write_demo_outputs(res, Path(tmp))
    if json_out:
        print_json(res.to_dict())
        return
    t = Table(title=f"edgecnn demo: {cfg.arch} on MNIST-5k ({res.timings_s.get('total', 0):.0f} s)")
    cols = ("stage", "acc %", "size kB", "MMACs", "ORT ms", "sim cycles", "sim us", "sim uJ")
    for c in cols:
        t.add_column(c, justify="left" if c == "stage" else "right")
    for s in (st.to_dict() for st in res.stages):
        t.add_row(
            s["stage"],
            f"{100 * s['accuracy']:.2f}",
            f"{s['size_bytes'] / 1e3:.1f}",
            f"{s['macs'] / 1e6:.2f}",
            f"{s['latency_ms']:.3f}",
            f"{s['sim_cycles']:,}",
            f"{s['sim_latency_ms'] * 1e3:.1f}",
            f"{s['sim_energy_uj']:.1f}",
        )
    console.print(t)
    if res.int8_speed_ratio is not None:
        console.print(
            f"INT8 vs FP32 in ONNX Runtime (interleaved, 1 thread): {res.int8_speed_ratio:.2f}x"
        )
    for n in res.notes:
        console.print(f"note: {n}")
    console.print(f"report: {out / 'report.html'}")


def write_demo_outputs(res, d: Path) -> None:
    """The demo's JSON results and report.html, into the (temporary) output directory ``d``::

    profile.json  compress/report.json  simulate-<stage>.json  bench.json (INT8 vs FP32)  demo.json  report.html

    (``model.pt`` and ``compress/`` are written by the study itself.)
    """
    from edgecnn.report.html import write_report

    def dump(name: str, obj: dict) -> None:
        (d / name).write_text(json.dumps(obj, indent=2, default=json_default, allow_nan=False))

    dump("profile.json", res.profile.to_dict())
    dump("compress/report.json", res.compress.to_dict())  # with the interleaved latencies
    for st in res.stages:
        dump(f"simulate-{st.name}.json", st.sim.to_dict())
    if res.bench is not None:
        dump("bench.json", res.bench.to_dict())
    dump("demo.json", res.to_dict())
    write_report(res.results(), d / "report.html", title=f"edgecnn demo: {res.arch} on {res.data}")
