"""Command ``codesign``: the joint network + accelerator search, registered on the shared app."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from edgecnn.cli.app import app
from edgecnn.cli.common import console, counter, print_json


@app.command()
def codesign(
    space: Path = typer.Option(
        None, "--space", help="Joint space YAML (default: the built-in example space)."
    ),
    data: str = typer.Option("mnist", "--data", help="mnist, digits or an ImageFolder path."),
    budget_latency_ms: float = typer.Option(
        None, "--budget-latency-ms", help="Keep designs at or under this accelerator latency."
    ),
    budget_energy_mj: float = typer.Option(
        None, "--budget-energy-mj", help="Keep designs at or under this energy per inference."
    ),
    out: Path = typer.Option(
        Path("codesign-out"), "--out", help="Output folder (resumes a run found there)."
    ),
    workers: int = typer.Option(
        None, "--workers", min=1, help="Evaluation processes (default: min(2, CPUs))."
    ),
    ray: bool = typer.Option(False, "--ray", help="Evaluate designs on Ray (local by default)."),
    ray_address: str = typer.Option(
        None, "--ray-address", help="Join this Ray cluster (host:port or ray://...); implies --ray."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Search the network (elastic supernet, bits, pruning) and the accelerator together.

    Trains the supernet once, runs NSGA-II on accuracy, latency, energy and area, compares the
    joint front with two sequential baselines by hypervolume, and retrains the chosen designs
    from scratch. Writes codesign.json, front.png and report.html in OUT.

    Example: edgecnn codesign --space examples/codesign.yaml --data mnist --budget-latency-ms 0.05 --out cd
    """
    from edgecnn.io import atomic_write_text, check_output_path
    from edgecnn.studies.codesign import run_codesign
    from edgecnn.studies.codesign_space import load_codesign_space

    check_output_path(out, inputs=[p for p in (space,) if p is not None], directory=True)
    sp = load_codesign_space(space)
    bars = {
        "supernet": counter("supernet epochs", quiet=json_out),
        "search": counter("designs evaluated", quiet=json_out),
        "verify": counter("retraining epochs", quiet=json_out),
    }
    address = ray_address or ("local" if ray else None)
    result = run_codesign(
        sp,
        out,
        data=data,
        budget_latency_ms=budget_latency_ms,
        budget_energy_mj=budget_energy_mj,
        workers=workers,
        ray_address=address,
        progress=lambda stage, done, total: bars[stage](done, total),
    )
    import json

    from edgecnn.cli.common import json_default
    from edgecnn.io import atomic_write_bytes
    from edgecnn.report.figures import codesign_fronts

    d = result.to_dict()
    png = codesign_fronts(json.loads(json.dumps(d, default=json_default)))  # the report's figure
    d["plot"] = str(atomic_write_bytes(out / "front.png", png)) if png else None
    atomic_write_text(
        out / "codesign.json", json.dumps(d, indent=1, default=json_default, allow_nan=False)
    )
    from edgecnn.report.html import write_report

    write_report(
        [json.loads(json.dumps(d, default=json_default))],
        out / "report.html",
        title="edgecnn codesign",
    )
    if json_out:
        print_json(d)
        return
    _print_result(result, out)


def _print_result(result, out: Path) -> None:
    t = Table(
        title=f"joint Pareto front ({len(result.joint_front)} designs, {result.evaluations} evaluated)"
    )
    for col in ("acc %", "latency ms", "energy mJ", "area mm²", "KB", "network", "accelerator"):
        t.add_column(col, justify="left" if col in ("network", "accelerator") else "right")
    for r in sorted(result.joint_front, key=lambda r: -r["accuracy"])[:25]:
        d = r["design"]
        a = d["accelerator"]
        t.add_row(
            f"{r['accuracy'] * 100:.1f}",
            f"{r['latency_ms']:.4f}",
            f"{r['energy_mj']:.5f}",
            f"{r['area_mm2']:.2f}",
            f"{r['model_bytes'] / 1024:.1f}",
            f"d{d['depths']} w{d['widths']} k{d['kernels']} e{d['expands']} r{d['resolution']} "
            f"bits {d['bits_summary']} prune {d['prune_summary']}",
            f"{a['array']} {a['sram_kb']}KB {a['dataflow']} wino={a['winograd']} {d['accel_precisions']}",
        )
    console.print(t)
    hv = result.hypervolume
    console.print(
        f"hypervolume: joint {hv['joint']:.4f}, network-first {hv['network_first']:.4f}, "
        f"hardware-first {hv['hardware_first']:.4f}; joint dominates: {result.joint_dominates}"
    )
    for v in result.verification:
        console.print(
            f"verification ({v.label}): supernet {v.supernet_accuracy * 100:.2f}%, retrained from "
            f"scratch {v.retrained_accuracy * 100:.2f}% ({v.difference_points:+.2f} pt, {v.epochs} epochs)"
        )
    s = result.seconds
    console.print(
        f"time: supernet {s['supernet']:.0f} s{' (reused)' if result.supernet_reused else ''}, "
        f"search {s['joint_search']:.0f} s, baselines {s['baselines']:.0f} s, verification "
        f"{s['verification']:.0f} s, total {s['total']:.0f} s; wrote {out}/codesign.json, front.png, report.html"
    )
