"""The recipe steps: one table :data:`STEPS` of ``name -> StepSpec(config type, implementation)``.

A step is a frozen config dataclass (subclass of :class:`StepConfig`; its fields are the recipe
keys, validated on construction) plus its implementation, registered together with
:func:`implements`, so a step cannot have one without the other. An implementation takes
``(config, state, data, reference, dst, work)``, updates ``state.module`` when it changes the
PyTorch model, writes the step's ONNX model to ``dst`` and returns its typed
:mod:`~edgecnn.compress.details`.

Ranges (checked on construction, :class:`~edgecnn.errors.ConfigError` naming step, key, value and
valid range): learning rates finite > 0; ``epochs`` 1 to :data:`MAX_EPOCHS`
(``finetune_epochs`` 0 to :data:`MAX_EPOCHS`); ``max_drop`` finite >= 0 points; ``temperature``
finite > 0; ``alpha`` in [0, 1]; fractions as documented per step.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import onnx
import torch
from torch import nn

from edgecnn.compress._state import StepState, export_compact
from edgecnn.compress.details import (
    BnReestimateDetails,
    DistillDetails,
    FoldDetails,
    Fp16Details,
    PruneDetails,
    QatDetails,
    QuantizeDetails,
    StepDetails,
)
from edgecnn.compress.prune import IMPORTANCES
from edgecnn.compress.quantize import QuantConfig, compact_onnx
from edgecnn.data.loaders import DataSplits
from edgecnn.errors import ConfigError, EdgecnnError

MAX_EPOCHS = 1000
"""Upper bound on any epoch count in a recipe (a typo such as 100000000 would run for months)."""


def _check(
    step: str,
    key: str,
    value: Any,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
) -> None:
    """Raise ConfigError unless ``value`` is a finite number within the given bounds."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and lo is not None:
        ok = value > lo if lo_open else value >= lo
    if ok and hi is not None:
        ok = value < hi if hi_open else value <= hi
    if not ok:
        if lo is not None and hi is not None:
            rng = f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        elif lo is not None:
            rng = f"{'>' if lo_open else '>='} {lo:g}"
        else:
            rng = f"{'<' if hi_open else '<='} {hi:g}"
        raise ConfigError(f"step '{step}': {key} must be a finite number {rng}, got {value!r}")


def _check_choice(step: str, key: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(
            f"step '{step}': {key} must be one of {', '.join(choices)}, got {value!r}"
        )


# ----------------------------------------------------------------------------- step configs


class StepConfig:
    """Base of the step configs: ``name`` (the recipe's ``step:``), whether the step needs the
    PyTorch model (``needs_torch``) and data (``needs_data``), and whether its output is
    ONNX-only (``terminal``: no PyTorch step may follow)."""

    name: ClassVar[str]
    needs_torch: ClassVar[bool] = False
    needs_data: ClassVar[bool] = False
    terminal: ClassVar[bool] = False


@dataclass(frozen=True)
class FoldStep(StepConfig):
    """Fold BatchNorm into the preceding conv/linear (PyTorch module or ONNX graph)."""

    name = "fold"


@dataclass(frozen=True)
class QuantizeStep(QuantConfig, StepConfig):
    """INT8 static PTQ through ONNX Runtime: every :class:`~edgecnn.compress.quantize.QuantConfig`
    field is a recipe key, plus ``max_drop``.

    ``max_drop`` (percentage points): when set, layers are kept in float, most sensitive first,
    until the INT8 model is within the budget (mixed precision); ``nodes_to_exclude`` are always
    kept in float.
    """

    max_drop: float | None = None

    name = "quantize"
    needs_data = True
    terminal = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_drop is not None:
            _check(self.name, "max_drop", self.max_drop, lo=0)

    def quant_config(self) -> QuantConfig:
        """The :class:`QuantConfig` part of this step (without ``max_drop``)."""
        return QuantConfig(
            **{f.name: getattr(self, f.name) for f in dataclasses.fields(QuantConfig)}
        )


@dataclass(frozen=True)
class Fp16Step(StepConfig):
    """Convert weights and compute to FP16 (float32 inputs/outputs kept)."""

    name = "fp16"
    terminal = True


@dataclass(frozen=True)
class PruneStep(StepConfig):
    """Structured channel pruning to a MACs target with fine-tuning, or unstructured magnitude.

    ``method``: ``structured`` (removes channels; ``target_macs_reduction`` fraction in (0, 1),
    ``importance`` l1/l2/bn/taylor) or ``unstructured`` (``sparsity`` fraction in [0, 1),
    ``scope`` layer/global; MACs unchanged). ``rounds`` (1-100) of pruning with
    ``finetune_epochs`` each; ``max_drop`` in points is reported against (``within_budget``).
    ``round_to`` keeps channel counts multiples of 8 (odd widths make ORT's blocked kernels
    slower than the dense model; 0 = no rounding, at most 1024). ``sensitivity_scan`` records accuracy vs prune
    ratio per conv (300 test images, no fine-tuning) in ``details["sensitivity"]``.
    """

    method: str = "structured"
    target_macs_reduction: float = 0.5
    importance: str = "l1"
    rounds: int = 2
    finetune_epochs: int = 2
    lr: float = 5e-3
    sparsity: float = 0.5
    scope: str = "layer"
    max_drop: float = 1.0
    round_to: int = 8
    sensitivity_scan: bool = True
    seed: int = 0

    name = "prune"
    needs_torch = True
    needs_data = True

    def __post_init__(self) -> None:
        n = self.name
        _check_choice(n, "method", self.method, ("structured", "unstructured"))
        _check_choice(n, "importance", self.importance, IMPORTANCES)
        _check_choice(n, "scope", self.scope, ("layer", "global"))
        _check(n, "target_macs_reduction", self.target_macs_reduction, 0, 1, True, True)
        _check(n, "sparsity", self.sparsity, 0, 1, hi_open=True)
        _check(n, "rounds", self.rounds, 1, 100)
        _check(n, "finetune_epochs", self.finetune_epochs, 0, MAX_EPOCHS)
        _check(n, "lr", self.lr, lo=0, lo_open=True)
        _check(n, "max_drop", self.max_drop, lo=0)
        _check(n, "round_to", self.round_to, 0, 1024)


@dataclass(frozen=True)
class DistillStep(StepConfig):
    """Fine-tune the current model with the input model (or a checkpoint) as teacher.

    ``teacher``: ``input`` or a checkpoint path. Hinton loss with ``temperature`` (> 0) and
    ``alpha`` (in [0, 1]); ``hint_weight > 0`` adds feature distillation through a learned 1x1
    adapter.
    """

    teacher: str = "input"
    epochs: int = 3
    temperature: float = 4.0
    alpha: float = 0.7
    hint_weight: float = 0.0
    lr: float = 2e-3
    seed: int = 0

    name = "distill"
    needs_torch = True
    needs_data = True

    def __post_init__(self) -> None:
        n = self.name
        _check(n, "epochs", self.epochs, 1, MAX_EPOCHS)
        _check(n, "temperature", self.temperature, lo=0, lo_open=True)
        _check(n, "alpha", self.alpha, 0, 1)
        _check(n, "hint_weight", self.hint_weight, lo=0)
        _check(n, "lr", self.lr, lo=0, lo_open=True)


@dataclass(frozen=True)
class BnReestimateStep(StepConfig):
    """Adaptive BatchNorm: recompute every BatchNorm's running statistics from ``samples``
    (1-100000) training images in batches of ``batch_size`` (forward passes only), e.g. after
    ``prune`` without (or with little) fine-tuning. Must run before ``fold``."""

    samples: int = 300
    batch_size: int = 100
    seed: int = 0

    name = "bn_reestimate"
    needs_torch = True
    needs_data = True

    def __post_init__(self) -> None:
        _check(self.name, "samples", self.samples, 1, 100_000)
        _check(self.name, "batch_size", self.batch_size, 1, 100_000)


@dataclass(frozen=True)
class QatStep(StepConfig):
    """Quantization-aware training (fake-quant, STE, BN folded) then INT8 QDQ export via ORT."""

    epochs: int = 2
    lr: float = 2e-4  # small: QAT fine-tunes a converged float model
    per_channel: bool = True
    seed: int = 0

    name = "qat"
    needs_torch = True
    needs_data = True
    terminal = True

    def __post_init__(self) -> None:
        _check(self.name, "epochs", self.epochs, 1, MAX_EPOCHS)
        _check(self.name, "lr", self.lr, lo=0, lo_open=True)


# ----------------------------------------------------------------------------- the table

StepImpl = Callable[[Any, StepState, DataSplits | None, nn.Module | None, Path, Path], StepDetails]


@dataclass(frozen=True)
class StepSpec:
    """A recipe step: its config dataclass and its implementation."""

    config: type[StepConfig]
    run: StepImpl

    @property
    def name(self) -> str:
        return self.config.name


STEPS: dict[str, StepSpec] = {}


def implements(config: type[StepConfig]) -> Callable[[StepImpl], StepImpl]:
    """Register ``fn`` as the implementation of the step ``config`` (once per step name)."""

    def register(fn: StepImpl) -> StepImpl:
        if config.name in STEPS:
            raise EdgecnnError(f"duplicate recipe step '{config.name}'")
        STEPS[config.name] = StepSpec(config, fn)
        return fn

    return register


def _export(st: StepState, dst: Path) -> None:
    export_compact(st.module, dst, st.input_shape)


# ----------------------------------------------------------------------------- implementations


@implements(FoldStep)
def run_fold(cfg: FoldStep, st: StepState, data, reference, dst: Path, work: Path) -> FoldDetails:
    from edgecnn.compress.fold import (
        count_batchnorm,
        count_onnx_ops,
        fold_batchnorm,
        fold_batchnorm_onnx,
    )

    if st.module is not None:
        before = count_batchnorm(st.module)
        st.module, res = fold_batchnorm(st.module)
        _export(st, dst)
        after = count_batchnorm(st.module)
    else:
        proto = onnx.load(str(st.onnx_path))
        before = count_onnx_ops(proto, "BatchNormalization")
        folded, res = fold_batchnorm_onnx(proto)
        after = count_onnx_ops(folded, "BatchNormalization")
        dst.write_bytes(compact_onnx(folded).SerializeToString())
    return FoldDetails(bn_before=before, bn_after=after, **res.to_dict())


@implements(Fp16Step)
def run_fp16(cfg: Fp16Step, st: StepState, data, reference, dst: Path, work: Path) -> Fp16Details:
    from edgecnn.compress.quantize import convert_fp16

    convert_fp16(st.onnx_path, dst)
    return Fp16Details()


@implements(QuantizeStep)
def run_quantize(
    cfg: QuantizeStep, st: StepState, data, reference, dst: Path, work: Path
) -> QuantizeDetails:
    from edgecnn.compress.quantize import quantize_int8

    sqnr = _sqnr_rows(st, data)
    if cfg.max_drop is not None:
        from edgecnn.compress.sensitivity import mixed_precision

        res, excluded, sens = mixed_precision(
            st.onnx_path, dst, data, cfg.quant_config(), cfg.max_drop
        )
        return QuantizeDetails(
            int8_conv_fraction=res.int8_conv_fraction,
            warnings=list(res.warnings),
            sqnr=sqnr,
            max_drop=cfg.max_drop,
            excluded_nodes=[*cfg.nodes_to_exclude, *excluded],
            sensitivity=dict(sens),
        )
    res = quantize_int8(st.onnx_path, dst, data.x_calib, cfg.quant_config())
    return QuantizeDetails(
        int8_conv_fraction=res.int8_conv_fraction,
        warnings=list(res.warnings),
        sqnr=sqnr,
        excluded_nodes=list(cfg.nodes_to_exclude),
    )


def _sqnr_rows(st: StepState, data) -> list[dict]:
    """Per-layer SQNR through depth from the fake-quant simulator (PyTorch models only)."""
    if st.module is None:
        return []
    from edgecnn.compress.fakequant import sqnr_by_layer

    return [r.to_dict() for r in sqnr_by_layer(st.module, data.x_calib[:200])]


def _finetune(data, epochs: int, lr: float, seed: int):
    from edgecnn.models.edge import evaluate, train_model

    def ft(m: nn.Module, r: int) -> float:
        train_model(m, data.x_train, data.y_train, epochs=epochs, lr=lr, seed=seed + r)
        return evaluate(m, data.x_test, data.y_test)

    return ft


@implements(PruneStep)
def run_prune(
    cfg: PruneStep, st: StepState, data, reference, dst: Path, work: Path
) -> PruneDetails:
    from edgecnn.compress.measure import module_costs
    from edgecnn.compress.prune import layer_sensitivity, magnitude_prune, structured_prune
    from edgecnn.models.edge import evaluate

    before = evaluate(st.module, data.x_test, data.y_test)
    scan: dict[str, list[list[float]]] = {}
    if cfg.sensitivity_scan:
        xs, ys = data.x_test[:300], data.y_test[:300]
        raw = layer_sensitivity(st.module, lambda m: evaluate(m, xs, ys))
        scan = {k: [list(r) for r in v] for k, v in raw.items()}
    rounds: list[dict] = []
    sparsity: list[dict] = []
    if cfg.method == "unstructured":
        c0 = module_costs(st.module, st.input_shape)
        st.module, stats = magnitude_prune(st.module, cfg.sparsity, cfg.scope)
        c1 = module_costs(st.module, st.input_shape)
        sparsity = [s.to_dict() for s in stats]
        macs0, macs1, params0, params1 = c0.macs, c1.macs, c0.params, c1.params
    else:
        st.module, res = structured_prune(
            st.module,
            st.input_shape,
            cfg.target_macs_reduction,
            cfg.importance,
            cfg.rounds,
            finetune=_finetune(data, cfg.finetune_epochs, cfg.lr, cfg.seed),
            calib=(data.x_train[:256], data.y_train[:256]),
            round_to=cfg.round_to or None,
        )
        rounds = list(res.rounds)
        macs0, macs1 = res.macs_before, res.macs_after
        params0, params1 = res.params_before, res.params_after
    after = evaluate(st.module, data.x_test, data.y_test)
    _export(st, dst)
    return PruneDetails(
        method=cfg.method,
        target=cfg.sparsity if cfg.method == "unstructured" else cfg.target_macs_reduction,
        macs_before=macs0,
        macs_after=macs1,
        params_before=params0,
        params_after=params1,
        macs_reduction=1.0 - macs1 / macs0 if macs0 else 0.0,
        accuracy_before=before,
        within_budget=(before - after) * 100 <= cfg.max_drop,
        rounds=rounds,
        sparsity=sparsity,
        sensitivity=scan,
    )


@implements(DistillStep)
def run_distill(
    cfg: DistillStep, st: StepState, data, reference, dst: Path, work: Path
) -> DistillDetails:
    from edgecnn.compress.distill import distill
    from edgecnn.models.edge import evaluate

    if cfg.teacher == "input":
        teacher = copy.deepcopy(reference)
    else:
        from edgecnn.models.checkpoint import load_checkpoint

        teacher, _ = load_checkpoint(cfg.teacher)
    if teacher is None:
        raise EdgecnnError("distill needs a PyTorch teacher: the input model is ONNX-only")
    before = evaluate(st.module, data.x_test, data.y_test)
    distill(
        teacher,
        st.module,
        data.x_train,
        data.y_train,
        cfg.epochs,
        cfg.temperature,
        cfg.alpha,
        cfg.hint_weight,
        cfg.seed,
        lr=cfg.lr,
    )
    _export(st, dst)
    return DistillDetails(
        accuracy_before=before,
        teacher_accuracy=evaluate(teacher, data.x_test, data.y_test),
        teacher=cfg.teacher,
    )


@implements(BnReestimateStep)
def run_bn_reestimate(
    cfg: BnReestimateStep, st: StepState, data, reference, dst: Path, work: Path
) -> BnReestimateDetails:
    from edgecnn.compress.adabn import reestimate_batchnorm
    from edgecnn.models.edge import evaluate

    gen = torch.Generator().manual_seed(cfg.seed)
    idx = torch.randperm(len(data.x_train), generator=gen)[: cfg.samples]
    before = evaluate(st.module, data.x_test, data.y_test)
    n_bn = reestimate_batchnorm(st.module, data.x_train[idx], cfg.batch_size)
    if n_bn == 0:
        raise EdgecnnError(
            "step 'bn_reestimate': the model has no BatchNorm layers (already folded?): "
            "put bn_reestimate before fold, or drop it"
        )
    after = evaluate(st.module, data.x_test, data.y_test)
    _export(st, dst)
    return BnReestimateDetails(
        bn_layers=n_bn,
        samples=len(idx),
        accuracy_before=before,
        accuracy_after=after,
        gain_points=100 * (after - before),
    )


@implements(QatStep)
def run_qat(cfg: QatStep, st: StepState, data, reference, dst: Path, work: Path) -> QatDetails:
    from edgecnn.compress.fakequant import qat_to_onnx

    res = qat_to_onnx(
        st.module,
        data,
        dst,
        st.input_shape,
        epochs=cfg.epochs,
        lr=cfg.lr,
        per_channel=cfg.per_channel,
        seed=cfg.seed,
    )
    torch.manual_seed(cfg.seed)
    return QatDetails(
        int8_conv_fraction=res.int8_conv_fraction, warnings=list(res.warnings), epochs=cfg.epochs
    )
