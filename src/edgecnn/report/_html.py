"""HTML building blocks of the report: cells, tables, key-value lists, notes, inline images."""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np


def img(png: bytes | None, alt: str) -> str:
    if not png:
        return ""
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def fmt(v: Any) -> tuple[str, str | None]:
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
        if a >= 1e6:  # large: grouped digits, never 7e+08
            text = f"{v:,.0f}"
        elif a and a < 1e-2:  # small: three significant digits, positional
            text = np.format_float_positional(
                v, precision=3, unique=False, fractional=False, trim="-"
            )
            text = text.rstrip(".")
        else:
            text = f"{v:,.3f}".rstrip("0").rstrip(".")
        return text, repr(v)
    if isinstance(v, (list, tuple)):
        return "x".join(map(str, v)) if all(isinstance(x, int) for x in v) else ", ".join(
            map(str, v)
        ), None
    if isinstance(v, dict):
        return json.dumps(v, default=str)[:120], None
    return str(v), None


def table(
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
            text, key = fmt(v)
            attr = f' class="n" data-v="{key}"' if key is not None else ""
            cells.append(f"<td{attr}>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cls = ' class="sortable"' if sortable else ""
    t = f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return f'<div class="scroll">{t}</div>' if scroll else t


def kv(pairs: Sequence[tuple[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(fmt(v)[0])}</td></tr>"
        for k, v in pairs
        if v is not None
    )
    return f'<table class="kv"><tbody>{rows}</tbody></table>'


def note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def series(obj: Any) -> list[tuple[str, float]]:
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
