"""Typed step-specific results of the recipe steps (``StepReport.details``).

One frozen dataclass per step kind; ``to_dict()`` is the ``details`` object of that step's entry
in ``report.json``. Accuracies are fractions 0-1 on the test split, drops and budgets in
percentage points, SQNR in dB.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, kw_only=True)
class StepDetails:
    """Base of the per-step details: ``to_dict()``, and ``get(key, default)`` on that dict."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class InputDetails(StepDetails):
    """The input model's entry has no details (``{}``)."""


@dataclass(frozen=True, kw_only=True)
class FoldDetails(StepDetails):
    """BatchNorm counts before/after; ``folded`` [producer, bn] pairs, ``fused`` groups
    (conv, bn[, activation]), ``unfoldable`` notes (BN without a conv/linear producer)."""

    bn_before: int
    bn_after: int
    folded: list[list[str]] = field(default_factory=list)
    fused: list[list[str]] = field(default_factory=list)
    unfoldable: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class Fp16Details(StepDetails):
    """FP16 weights and compute (float32 inputs/outputs)."""

    precision: str = "fp16"


@dataclass(frozen=True, kw_only=True)
class QuantizeDetails(StepDetails):
    """INT8 PTQ: fraction of convs ORT runs as integer kernels, quantizer warnings, per-layer
    ``sqnr`` rows (``name``, ``depth``, ``isolated_db``, ``accumulated_db``; PyTorch inputs only,
    else empty) and, with ``max_drop`` (points), the nodes kept in float and every layer's
    sensitivity ``{node: accuracy drop in points}`` (empty without ``max_drop``);
    ``excluded_nodes`` also lists the step's own ``nodes_to_exclude``."""

    int8_conv_fraction: float
    warnings: list[str] = field(default_factory=list)
    sqnr: list[dict[str, Any]] = field(default_factory=list)
    max_drop: float | None = None
    excluded_nodes: list[str] = field(default_factory=list)
    sensitivity: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class PruneDetails(StepDetails):
    """Pruning: ``method``, ``target`` (the configured fraction: MACs reduction when structured,
    weight sparsity when unstructured), MACs/params before and after (``edgecnn.analysis``), the fraction of
    MACs removed, accuracy before, ``within_budget`` (drop <= the step's ``max_drop`` points),
    structured ``rounds`` (``{step, macs, accuracy}``), unstructured per-layer ``sparsity``
    (``{name, weights, zeros, sparsity}``) and the ``sensitivity`` scan
    ``{layer: [[ratio, accuracy], ...]}`` (empty when ``sensitivity_scan`` is off)."""

    method: str
    target: float
    macs_before: int
    macs_after: int
    params_before: int
    params_after: int
    macs_reduction: float
    accuracy_before: float
    within_budget: bool
    rounds: list[dict[str, Any]] = field(default_factory=list)
    sparsity: list[dict[str, Any]] = field(default_factory=list)
    sensitivity: dict[str, list[list[float]]] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class BnReestimateDetails(StepDetails):
    """Adaptive BatchNorm: layers re-estimated, images used, test accuracy before and after, and
    the gain in percentage points (after - before)."""

    bn_layers: int
    samples: int
    accuracy_before: float
    accuracy_after: float
    gain_points: float


@dataclass(frozen=True, kw_only=True)
class DistillDetails(StepDetails):
    """Distillation: the student's accuracy before, the teacher's, and which teacher."""

    accuracy_before: float
    teacher_accuracy: float
    teacher: str


@dataclass(frozen=True, kw_only=True)
class QatDetails(StepDetails):
    """QAT then INT8 export: integer-conv fraction, quantizer warnings, epochs trained."""

    int8_conv_fraction: float
    epochs: int
    warnings: list[str] = field(default_factory=list)
