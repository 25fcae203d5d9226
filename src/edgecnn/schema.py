"""The results schema: every kind of results object edgecnn writes, and the keys it must carry.

A results object is the ``to_dict()`` of a result dataclass (what a command prints with
``--json`` and what ``edgecnn report`` reads back). Each carries ``"kind"`` (a
:class:`ResultKind` value); older files without it are recognised by their keys
(:func:`detect_kind`). Producers name their kind through :class:`ResultKind`, the report looks
its sections up by the same member, and ``tests/test_schema.py`` checks that every producer's
output carries the required keys below, so a renamed key fails a test instead of emptying a
report section.

This module imports nothing from edgecnn: every package may use it.
"""

from __future__ import annotations

from enum import Enum
from typing import Any


class ResultKind(str, Enum):
    """The kinds of results objects (``"kind"`` in their JSON)."""

    DEMO = "demo"
    PROFILE = "profile"
    ZOO = "zoo"
    COMPRESS = "compress"
    SIMULATE = "simulate"
    CASESTUDY = "casestudy"
    EXPLORE = "explore"
    KERNELS_COMPARE = "kernels_compare"
    KERNELS_BENCH = "kernels_bench"
    BENCH = "bench"
    PREDICTED_VS_MEASURED = "predicted_vs_measured"
    EXPORT = "export"
    ENVIRONMENT = "environment"
    VALIDATE = "validate"
    CODESIGN = "codesign"
    DEPLOY = "deploy"
    RUNTIME_BENCH = "runtime_bench"
    CALIBRATION = "calibration"


#: Top-level keys each kind must carry (besides ``kind``).
REQUIRED_KEYS: dict[ResultKind, tuple[str, ...]] = {
    ResultKind.DEMO: ("stages", "notes", "timings_s"),
    ResultKind.CODESIGN: (
        "joint_front",
        "baseline_fronts",
        "hypervolume",
        "verification",
        "seconds",
    ),
    ResultKind.PROFILE: ("model", "input_shape", "precision", "layers", "totals"),
    ResultKind.ZOO: ("precision", "device", "rows"),
    ResultKind.COMPRESS: ("steps", "recipe"),
    ResultKind.SIMULATE: ("model", "accelerator", "layers", "totals"),
    ResultKind.CASESTUDY: ("model", "accelerator", "precision", "steps", "claims"),
    ResultKind.EXPLORE: ("pareto_front",),
    ResultKind.KERNELS_COMPARE: ("layer", "macs", "algorithms"),
    ResultKind.KERNELS_BENCH: ("threads", "repeats", "rows"),
    ResultKind.BENCH: ("model", "precision", "latency"),
    ResultKind.PREDICTED_VS_MEASURED: ("rows", "spearman", "median_ratio"),
    ResultKind.EXPORT: ("model", "path", "size_bytes"),
    ResultKind.ENVIRONMENT: ("python",),
    ResultKind.VALIDATE: ("rows", "summary", "fitted"),
    ResultKind.DEPLOY: ("model", "runtime", "precision", "artifact", "check", "latency"),
    ResultKind.RUNTIME_BENCH: ("model", "runtimes", "thread_counts", "latency", "fastest"),
    ResultKind.CALIBRATION: ("runtime", "precision", "samples", "types"),
}

#: Keys of one compression step (``compress.steps[i]``); ``details`` holds the step's own
#: typed fields (SQNR series, pruning sensitivity, ...).
COMPRESS_STEP_KEYS: tuple[str, ...] = ("step", "accuracy", "macs", "params", "size_bytes")


def kind_named(name: str) -> ResultKind | None:
    """The member whose value is ``name``, or None."""
    try:
        return ResultKind(name)
    except ValueError:
        return None


def detect_kind(obj: Any) -> ResultKind | None:
    """The kind of a results object: its ``kind`` field, else inferred from its keys."""
    if not isinstance(obj, dict):
        return None
    kind = obj.get("kind")
    if isinstance(kind, str):
        return kind_named(kind)
    keys = set(obj)
    if {"layers", "totals"} <= keys and isinstance(obj["totals"], dict):
        totals = obj["totals"]
        if "cycles" in totals:
            return ResultKind.SIMULATE
        if "flops" in totals or "arithmetic_intensity" in totals:
            return ResultKind.PROFILE
    if "claims" in keys and "steps" in keys:
        return ResultKind.CASESTUDY
    if "steps" in keys and isinstance(obj["steps"], list):
        return ResultKind.COMPRESS
    if {"latency", "model"} <= keys:
        return ResultKind.BENCH
    if "pareto_front" in keys and isinstance(obj["pareto_front"], list):
        return ResultKind.EXPLORE
    if "rows" in keys and "spearman" in keys:
        return ResultKind.PREDICTED_VS_MEASURED
    return None


def missing_keys(kind: ResultKind, obj: dict) -> list[str]:
    """Required keys of ``kind`` that ``obj`` lacks."""
    return [k for k in REQUIRED_KEYS[kind] if k not in obj]
