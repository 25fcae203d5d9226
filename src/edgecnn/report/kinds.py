"""Recognise and load results JSON files (what ``edgecnn ... --json`` prints).

Each results object has a kind: its ``"kind"`` field when present, otherwise inferred from its
keys. Known kinds and the keys they need are in :data:`REQUIRED_KEYS`. Anything else is rejected
with an :class:`~edgecnn.errors.EdgecnnError` naming the file and saying which files fit.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from edgecnn.errors import EdgecnnError

REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "profile": ("model", "layers", "totals"),
    "simulate": ("model", "layers", "totals"),
    "compress": ("steps",),
    "bench": ("model", "latency"),
    "predicted_vs_measured": ("rows",),
    "explore": ("pareto_front",),
    "environment": ("python",),
    "export": ("model", "path", "size_bytes"),
    "demo": ("stages",),
}

PRODUCERS = (
    "edgecnn profile/simulate/bench/export/predicted-vs-measured --json, "
    "or a compress/demo output directory's JSON files"
)


def detect_kind(obj: Any) -> str | None:
    """The kind of a results object, or ``None`` when it is not one edgecnn writes."""
    if not isinstance(obj, dict):
        return None
    kind = obj.get("kind")
    if isinstance(kind, str):
        return kind if kind in REQUIRED_KEYS else None
    keys = set(obj)
    if "steps" in keys and isinstance(obj["steps"], list):
        return "compress"
    if {"layers", "totals"} <= keys and isinstance(obj["totals"], dict):
        totals = obj["totals"]
        if "cycles" in totals:
            return "simulate"
        if "flops" in totals or "arithmetic_intensity" in totals:
            return "profile"
    if {"latency", "model"} <= keys:
        return "bench"
    if "pareto_front" in keys and isinstance(obj["pareto_front"], list):
        return "explore"
    if "rows" in keys and "spearman" in keys:
        return "predicted_vs_measured"
    return None


def validate(obj: Any, where: str) -> dict:
    """Return ``obj`` with its ``kind`` set, or raise ``EdgecnnError`` naming ``where``."""
    kind = detect_kind(obj)
    if kind is None:
        what = (
            f"kind '{obj.get('kind')}'"
            if isinstance(obj, dict) and "kind" in obj
            else (
                f"keys {sorted(obj)[:8]}"
                if isinstance(obj, dict)
                else f"a JSON {type(obj).__name__}"
            )
        )
        raise EdgecnnError(
            f"{where} is not an edgecnn results file ({what}); known kinds: "
            f"{', '.join(REQUIRED_KEYS)}; give JSON from {PRODUCERS}"
        )
    missing = [k for k in REQUIRED_KEYS[kind] if k not in obj]
    if missing:
        raise EdgecnnError(
            f"{where} looks like a '{kind}' result but lacks {', '.join(map(repr, missing))}: "
            "regenerate it with the matching edgecnn command and --json"
        )
    return {**obj, "kind": kind}


def load_results(paths: list[str | os.PathLike[str]]) -> list[dict]:
    """Read and validate results JSON files (each holding one object, or a list of objects)."""
    if not paths:
        raise EdgecnnError("no results files given: pass one or more JSON files")
    out: list[dict] = []
    for p in map(Path, paths):
        if not p.is_file():
            raise EdgecnnError(
                f"results file '{p}' does not exist or is not a file: check the path"
            )
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise EdgecnnError(
                f"cannot read results file '{p}' as JSON ({type(e).__name__}: {e}): "
                f"give JSON from {PRODUCERS}"
            ) from None
        items = data if isinstance(data, list) else [data]
        if not items:
            raise EdgecnnError(f"results file '{p}' holds an empty list: nothing to report")
        for i, item in enumerate(items):
            where = f"results file '{p}'" + (f" (item {i})" if isinstance(data, list) else "")
            res = validate(item, where)
            res.setdefault("_source", str(p))
            out.append(res)
    return out
