"""The ``validate`` command: our predictions against published hardware figures."""

from __future__ import annotations

import typer

from edgecnn.cli.app import app
from edgecnn.cli.common import console, print_json


@app.command()
def validate(
    only: list[str] | None = typer.Option(
        None, "--only", help="Run only this reference (repeatable); see references.toml."
    ),
    no_fit: bool = typer.Option(
        False, "--no-fit", help="Skip the calibration fits (raw model predictions)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Predict published figures (Coral Edge TPU, Eyeriss, Raspberry Pi 4) and compare.

    Prints predicted / published per reference and, for all, calibration and held-out
    references, the share within 0.67x-1.5x and the geometric-mean error.

    Example: edgecnn validate --json
    """
    from edgecnn.studies.validate import run_validate

    result = run_validate(only=only or None, fit=not no_fit)
    if as_json:
        print_json(result.to_dict())
        return
    from rich.table import Table

    t = Table(title="predicted vs published")
    for c in ("reference", "metric", "target", "published", "predicted", "ratio", "cal"):
        t.add_column(c)
    for r in result.rows:
        t.add_row(
            r.name,
            r.metric,
            r.target,
            f"{r.published:.4g}",
            f"{r.predicted:.4g}",
            f"{r.ratio:.2f}" + ("" if r.within else " !"),
            "yes" if r.calibration else "",
        )
    console.print(t)
    lo, hi = result.band
    for part, s in result.summary.items():
        if not s["n"]:
            continue
        console.print(
            f"{part}: {s['within_share']:.0%} within {lo}x-{hi}x, "
            f"geomean error {s['geomean_error']:.1%} (n = {s['n']})"
        )
    for n in result.notes:
        console.print(f"fitted: {n}")
