"""Command ``report``: one self-contained HTML page from results JSON files."""

from __future__ import annotations

from pathlib import Path

import typer

from edgecnn.cli.app import app
from edgecnn.cli.common import console, print_json


@app.command()
def report(
    results: list[Path] = typer.Argument(
        ...,
        help="Results JSON files (from profile/simulate/bench/... --json, compress report.json).",
    ),
    out: Path = typer.Option(Path("report.html"), "--out", help="HTML file to write."),
    title: str = typer.Option("edgecnn report", "--title", help="Page title."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Write one self-contained HTML report (inline charts, sortable tables, no network).

    Example: edgecnn report profile.json sim.json out/report.json --out report.html
    """
    from edgecnn.io import check_output_path
    from edgecnn.report.html import write_report
    from edgecnn.report.kinds import load_results

    check_output_path(out, inputs=results)
    items = load_results(list(results))
    path = write_report(items, out, title=title)
    kinds = sorted({r["kind"] for r in items})
    if json_out:
        print_json(
            {
                "kind": "report",
                "path": str(path),
                "results": len(items),
                "kinds": kinds,
                "size_bytes": path.stat().st_size,
            }
        )
        return
    console.print(
        f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB) from {len(items)} result(s): {', '.join(kinds)}"
    )
