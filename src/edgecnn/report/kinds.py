"""The report's one registry of results kinds, and loading of results JSON files.

:data:`SECTIONS` maps every :class:`~edgecnn.schema.ResultKind` to its section: title,
renderer and whether results of that kind share one section (``merged``) or get one each. Its
order is the order of the report. The keys each kind needs come from :mod:`edgecnn.schema`.
Anything else is rejected with an :class:`~edgecnn.errors.EdgecnnError` naming the file and
saying which files fit.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecnn.errors import EdgecnnError
from edgecnn.report import sections as s
from edgecnn.schema import ResultKind, detect_kind, missing_keys


@dataclass(frozen=True)
class Section:
    """How one kind appears in the report."""

    title: str
    render: Callable[[list[dict]], str]
    merged: bool = False  #: all results of the kind in one section (tables across models)


SECTIONS: dict[ResultKind, Section] = {
    ResultKind.DEMO: Section("Demo summary", s.render_demo),
    ResultKind.PROFILE: Section("Model profile", s.render_profile),
    ResultKind.ZOO: Section("CNN zoo: compute vs bandwidth", s.render_zoo),
    ResultKind.COMPRESS: Section("Compression", s.render_compress),
    ResultKind.SIMULATE: Section("Accelerator simulation", s.render_simulate),
    ResultKind.CASESTUDY: Section("Accelerator case study", s.render_casestudy),
    ResultKind.EXPLORE: Section("Design-space exploration", s.render_explore),
    ResultKind.KERNELS_COMPARE: Section(
        "Convolution algorithms", s.render_kernels_compare, merged=True
    ),
    ResultKind.KERNELS_BENCH: Section(
        "Convolution algorithm timings", s.render_kernels_bench, merged=True
    ),
    ResultKind.BENCH: Section("Measured latency (ONNX Runtime)", s.render_bench, merged=True),
    ResultKind.PREDICTED_VS_MEASURED: Section(
        "Predicted vs measured latency", s.render_pvm, merged=True
    ),
    ResultKind.EXPORT: Section("ONNX export", s.render_export, merged=True),
    ResultKind.ENVIRONMENT: Section("Environment", s.render_environment, merged=True),
    ResultKind.VALIDATE: Section("Predictions vs published hardware figures", s.render_validate),
    ResultKind.CODESIGN: Section("Co-design: network and accelerator together", s.render_codesign),
    ResultKind.DEPLOY: Section("Deployment (runtime conversions)", s.render_deploy, merged=True),
    ResultKind.RUNTIME_BENCH: Section(
        "Measured latency across runtimes", s.render_runtime_bench, merged=True
    ),
    ResultKind.CALIBRATION: Section(
        "Calibrated latency predictors", s.render_calibration, merged=True
    ),
}

PRODUCERS = (
    "edgecnn profile/zoo/simulate/casestudy/explore/kernels/bench/export/"
    "predicted-vs-measured/validate/deploy/calibrate/codesign --json, or a compress/demo output directory's JSON files"
)


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
            f"{', '.join(k.value for k in ResultKind)}; give JSON from {PRODUCERS}"
        )
    bad = _non_finite(obj)
    if bad:
        raise EdgecnnError(
            f"{where} holds a non-finite number at {bad}: a report never shows NaN or infinity; "
            "regenerate the result (and report the bug if edgecnn wrote it)"
        )
    missing = missing_keys(kind, obj)
    if missing:
        raise EdgecnnError(
            f"{where} looks like a '{kind.value}' result but lacks "
            f"{', '.join(map(repr, missing))}: regenerate it with the matching edgecnn command "
            "and --json"
        )
    return {**obj, "kind": kind.value}


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
            data = json.loads(p.read_text(encoding="utf-8"), parse_constant=_refuse_constant)
        except ValueError as e:
            if "non-finite" not in str(e):
                raise _unreadable(p, e) from None
            raise EdgecnnError(
                f"results file '{p}' holds {e}: a report never shows NaN or infinity; "
                "regenerate the file with the edgecnn command that wrote it"
            ) from None
        except (OSError, UnicodeDecodeError, RecursionError) as e:
            raise _unreadable(p, e) from None
        items = data if isinstance(data, list) else [data]
        if not items:
            raise EdgecnnError(f"results file '{p}' holds an empty list: nothing to report")
        for i, item in enumerate(items):
            where = f"results file '{p}'" + (f" (item {i})" if isinstance(data, list) else "")
            res = validate(item, where)
            res.setdefault("_source", str(p))
            out.append(res)
    return out


def _refuse_constant(name: str) -> float:
    raise ValueError(f"a non-finite number ({name})")


def _unreadable(p: Path, e: Exception) -> EdgecnnError:
    return EdgecnnError(
        f"cannot read results file '{p}' as JSON ({type(e).__name__}): give JSON from {PRODUCERS}"
    )


def _non_finite(obj: Any, path: str = "") -> str | None:
    """The key path of the first NaN/infinity in ``obj``, or None."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return path or "top level"
    items = (
        obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    )
    for k, v in items:
        found = _non_finite(v, f"{path}.{k}" if path else str(k))
        if found:
            return found
    return None
