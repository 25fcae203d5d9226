"""One self-contained HTML report from results dicts (the JSON the commands print).

``write_report(results, out_path)`` writes a single file: CSS and a few lines of JS inline, every
chart an inline base64 PNG (``data:`` URL), no network access of any kind. Sections appear for
the kinds present (see :mod:`edgecnn.report.kinds`), in a fixed order, plus an environment
section (versions, CPU, threads) from the results and from the machine writing the report.
"""

from __future__ import annotations

import datetime as _dt
import html
import os
from collections.abc import Sequence
from pathlib import Path

from edgecnn.errors import EdgecnnError
from edgecnn.io import atomic_write_text, check_output_path
from edgecnn.report.kinds import SECTIONS, validate
from edgecnn.schema import ResultKind

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
    by_kind: dict[ResultKind, list[dict]] = {}
    for r in items:
        by_kind.setdefault(ResultKind(r["kind"]), []).append(r)
    by_kind[ResultKind.ENVIRONMENT] = items  # one environment section, from every result
    sections: list[tuple[str, str, str]] = []  # (anchor, title, body)
    for kind, sec in SECTIONS.items():
        group = by_kind.get(kind, [])
        if not group:
            continue
        if sec.merged:
            sections.append((kind.value, sec.title, _render(sec, group)))
            continue
        for j, r in enumerate(group):
            name = r.get("model") or r.get("name") or ""
            heading = f"{sec.title}: {name}" if name else sec.title
            sections.append((f"{kind.value}-{j}", heading, _render(sec, [r])))
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


def _render(sec, group: list[dict]) -> str:
    """A section's body; a results file whose values have the wrong types is a user error."""
    try:
        return sec.render(group)
    except (KeyError, TypeError, AttributeError, ValueError, IndexError, ZeroDivisionError) as e:
        src = ", ".join(sorted({str(r.get("_source", "input")) for r in group}))
        raise EdgecnnError(
            f"cannot render the '{sec.title}' section from {src}: malformed value "
            f"({type(e).__name__}: {e}); regenerate the file with the edgecnn command that wrote it"
        ) from None
