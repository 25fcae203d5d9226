"""Compression recipes: typed step configs loaded from YAML, run in order by :func:`run_recipe`.

Recipe file::

    steps:
      - step: fold
      - step: prune          # structured, to half the MACs, fine-tuned
        target_macs_reduction: 0.5
      - step: distill        # fine-tune against the input model as teacher
        epochs: 3
      - step: quantize       # INT8 static PTQ, U8S8 QDQ
        calibration: minmax

Step names: see :data:`STEP_TYPES`; every step's options are the fields of its dataclass and
unknown keys are rejected with the list of valid ones. Accuracy budgets (``max_drop``) are in
percentage points of test accuracy.

Output directory (written through :func:`edgecnn.io.atomic_dir`, so a failed run leaves nothing):
``model.onnx`` (final), ``model.pt`` (the last PyTorch model, when the input was PyTorch and its
architecture is known), ``step-<i>-<name>.onnx`` (every stage) and ``report.json``
``{"steps": [...]}``: first ``"step": "input"``, then one entry per step with ``accuracy``
(fraction 0-1 on the test split, ``null`` without data), ``macs``, ``params`` (conv/linear
weights and biases counted on the ONNX graph), ``size_bytes`` (the ONNX file), ``latency_ms``
(ONNX Runtime, 1 thread, batch 1, median of 100 runs) and, for quantized models,
``int8_conv_fraction``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from torch import nn

from edgecnn.compress._cost import onnx_macs_params
from edgecnn.compress.quantize import QuantConfig, compact_onnx
from edgecnn.data.loaders import DataSplits, check_input_shape
from edgecnn.errors import ConfigError, EdgecnnError, ModelLoadError

# ----------------------------------------------------------------------------- step configs


@dataclass(frozen=True)
class FoldStep:
    """Fold BatchNorm into the preceding conv/linear (PyTorch module or ONNX graph)."""

    name = "fold"
    needs_torch = False
    needs_data = False


@dataclass(frozen=True)
class QuantizeStep:
    """INT8 static PTQ through ONNX Runtime (see :class:`~edgecnn.compress.quantize.QuantConfig`).

    ``max_drop`` (percentage points): when set, layers are kept in float, most sensitive first,
    until the INT8 model is within the budget (mixed precision).
    """

    activation_type: str = "uint8"
    weight_type: str = "int8"
    per_channel: bool = True
    symmetric_activations: bool = False
    symmetric_weights: bool = True
    calibration: str = "minmax"
    percentile: float = 99.999
    calib_samples: int = 200
    max_drop: float | None = None

    name = "quantize"
    needs_torch = False
    needs_data = True

    def quant_config(self, exclude: tuple[str, ...] = ()) -> QuantConfig:
        kw = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(QuantConfig)
            if hasattr(self, f.name)
        }
        kw["nodes_to_exclude"] = exclude
        return QuantConfig(**kw)

    def __post_init__(self) -> None:
        self.quant_config()  # validates (refuses Distribution calibration, bad types)


@dataclass(frozen=True)
class Fp16Step:
    """Convert weights and compute to FP16 (float32 inputs/outputs kept)."""

    name = "fp16"
    needs_torch = False
    needs_data = False


@dataclass(frozen=True)
class PruneStep:
    """Structured channel pruning to a MACs target with fine-tuning, or unstructured magnitude.

    ``method``: ``structured`` (removes channels; ``target_macs_reduction`` fraction 0-1,
    ``importance`` l1/l2/bn/taylor) or ``unstructured`` (``sparsity`` fraction 0-1, ``scope``
    layer/global; MACs unchanged). ``finetune_epochs`` per pruning round; ``max_drop`` in points
    is reported against (``within_budget`` in the report entry). ``round_to`` keeps channel
    counts multiples of 8 (odd widths make ORT's blocked kernels slower than the dense model).
    ``sensitivity_scan`` records accuracy vs prune ratio per conv (on 300 test images, no
    fine-tuning) in the report entry's ``details["sensitivity"]`` (``{layer: [[ratio, acc]]}``).
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
        if self.method not in ("structured", "unstructured"):
            raise ConfigError(
                f"prune method must be structured or unstructured, got '{self.method}'"
            )


@dataclass(frozen=True)
class DistillStep:
    """Fine-tune the current model with the input model (or a checkpoint) as teacher.

    ``teacher``: ``input`` or a checkpoint path. Hinton loss with ``temperature`` and ``alpha``;
    ``hint_weight > 0`` adds feature distillation through a learned 1x1 adapter.
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


@dataclass(frozen=True)
class QatStep:
    """Quantization-aware training (fake-quant, STE, BN folded) then INT8 QDQ export via ORT."""

    epochs: int = 2
    lr: float = 2e-4  # small: QAT fine-tunes a converged float model
    per_channel: bool = True
    seed: int = 0

    name = "qat"
    needs_torch = True
    needs_data = True


STEP_TYPES: dict[str, type] = {
    c.name: c for c in (FoldStep, PruneStep, DistillStep, QuantizeStep, Fp16Step, QatStep)
}
_TERMINAL = ("quantize", "fp16", "qat")


@dataclass(frozen=True)
class Recipe:
    """An ordered list of step configs."""

    steps: tuple[Any, ...]

    def to_dict(self) -> dict:
        return {"steps": [{"step": s.name, **asdict(s)} for s in self.steps]}


def _coerce(step: str, f: dataclasses.Field, v: Any) -> Any:
    default = f.default
    if default is None or v is None:
        if v is not None and not isinstance(v, (int, float)) or isinstance(v, bool):
            raise ConfigError(f"step '{step}': option '{f.name}' must be a number, got {v!r}")
        return float(v) if isinstance(v, int) else v
    if isinstance(default, bool):
        if not isinstance(v, bool):
            raise ConfigError(f"step '{step}': option '{f.name}' must be true or false, got {v!r}")
        return v
    if isinstance(default, int):
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(f"step '{step}': option '{f.name}' must be an integer, got {v!r}")
        return v
    if isinstance(default, float):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ConfigError(f"step '{step}': option '{f.name}' must be a number, got {v!r}")
        return float(v)
    if isinstance(default, str) and not isinstance(v, str):
        raise ConfigError(f"step '{step}': option '{f.name}' must be a string, got {v!r}")
    return v


def parse_recipe(obj: Any) -> Recipe:
    """Build a :class:`Recipe` from a dict ``{"steps": [...]}``, rejecting unknown keys."""
    if isinstance(obj, Recipe):
        return obj
    if not isinstance(obj, dict) or set(obj) - {"steps", "description"}:
        extra = sorted(set(obj) - {"steps", "description"}) if isinstance(obj, dict) else obj
        raise ConfigError(
            f"recipe must be a mapping with keys 'steps' (and optional 'description'); "
            f"unknown: {extra}"
        )
    raw = obj.get("steps")
    if not isinstance(raw, list) or not raw:
        raise ConfigError("recipe 'steps' must be a non-empty list of {step: NAME, ...options}")
    steps = []
    for i, entry in enumerate(raw, 1):
        if not isinstance(entry, dict) or "step" not in entry:
            raise ConfigError(f"recipe step {i} must be a mapping with a 'step' key, got {entry!r}")
        name = entry["step"]
        cls = STEP_TYPES.get(name)
        if cls is None:
            raise ConfigError(
                f"recipe step {i}: unknown step '{name}': choose one of {', '.join(STEP_TYPES)}"
            )
        fields = {f.name: f for f in dataclasses.fields(cls)}
        opts = {k: v for k, v in entry.items() if k != "step"}
        unknown = sorted(set(opts) - set(fields))
        if unknown:
            valid = ", ".join(fields) or "(none)"
            raise ConfigError(
                f"recipe step {i} ('{name}'): unknown key(s) {', '.join(unknown)}; valid keys: {valid}"
            )
        steps.append(cls(**{k: _coerce(name, fields[k], v) for k, v in opts.items()}))
    for i, s in enumerate(steps[:-1]):
        if s.name in _TERMINAL and any(t.needs_torch for t in steps[i + 1 :]):
            raise ConfigError(
                f"step '{s.name}' produces an ONNX-only model, so later PyTorch steps cannot run: "
                "put quantize/fp16/qat last"
            )
    return Recipe(tuple(steps))


def with_max_drop(recipe: Recipe, max_drop: float) -> Recipe:
    """A copy of ``recipe`` whose quantize steps use mixed precision with ``max_drop`` points."""
    if max_drop < 0:
        raise ConfigError(f"--max-drop must be >= 0 points, got {max_drop}")
    if not any(isinstance(s, QuantizeStep) for s in recipe.steps):
        raise ConfigError("--max-drop applies to quantize steps but the recipe has none")
    return Recipe(
        tuple(
            dataclasses.replace(s, max_drop=float(max_drop)) if isinstance(s, QuantizeStep) else s
            for s in recipe.steps
        )
    )


def load_recipe(path: str | os.PathLike[str]) -> Recipe:
    """Read a YAML recipe file (see the module docstring)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"recipe file '{p}' does not exist: see recipes/int8.yaml for an example")
    try:
        obj = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(
            f"recipe '{p}' is not valid YAML: {' '.join(str(e).split())[:200]}"
        ) from None
    try:
        return parse_recipe(obj)
    except ConfigError as e:
        raise ConfigError(f"recipe '{p}': {e}") from None


# ----------------------------------------------------------------------------- pipeline


@dataclass
class StepReport:
    """One row of report.json (accuracy fraction 0-1, size in bytes, latency in ms)."""

    step: str
    accuracy: float | None
    macs: int
    params: int
    size_bytes: int
    latency_ms: float
    int8_conv_fraction: float | None = None
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["int8_conv_fraction"] is None:
            del d["int8_conv_fraction"]
        return d


@dataclass
class CompressReport:
    """The whole run: ``steps`` (input first), the recipe and the output directory."""

    steps: list[StepReport]
    recipe: dict
    out_dir: str
    data: str | None

    def to_dict(self) -> dict:
        return {
            "kind": "compress",
            "steps": [s.to_dict() for s in self.steps],
            "recipe": self.recipe,
            "out_dir": self.out_dir,
            "data": self.data,
        }


@dataclass
class _State:
    module: nn.Module | None
    arch: str | None
    arch_kwargs: dict
    input_shape: tuple[int, ...]
    onnx_path: Path
    name: str


def _export(module: nn.Module, path: Path, input_shape: tuple[int, ...]) -> Path:
    try:
        from edgecnn.runtime.export import export_onnx_bytes
    except ImportError:  # pragma: no cover - the runtime package ships with edgecnn
        raise EdgecnnError("ONNX export is unavailable (edgecnn.runtime missing)") from None
    data = export_onnx_bytes(module, input_shape)
    path.write_bytes(compact_onnx(onnx.load_from_string(data)).SerializeToString())
    return path


def _latency_ms(path: Path, input_shape: tuple[int, ...], runs: int = 100) -> float:
    from edgecnn.runtime.bench import measure_latency
    from edgecnn.runtime.session import make_session

    sess = make_session(path, threads=1)
    feed = {
        sess.get_inputs()[0].name: np.random.default_rng(0)
        .standard_normal(input_shape)
        .astype(np.float32)
    }
    return measure_latency(lambda: sess.run(None, feed), runs=runs, warmup=10).median_ms


def _costs(path: Path) -> tuple[int, int]:
    """``(MACs, params)``: the analyser's profile of the ONNX graph, cross-checked by our counter.

    ``edgecnn.analysis.profile`` counts MACs; its parameter count covers float initializers only,
    so for quantized (QDQ) graphs the params come from :func:`onnx_macs_params`, which looks
    through DequantizeLinear. If the analyser cannot read a graph, our counter is used alone.
    """
    own_macs, own_params = onnx_macs_params(onnx.load(str(path)))
    try:
        from edgecnn.analysis import profile
        from edgecnn.models.resolve import load_graph

        totals = profile(load_graph(str(path))).totals
    except Exception:  # the analyser's ONNX frontend may not know every QDQ/contrib op
        return own_macs, own_params
    quantized = own_params != totals.params
    return int(totals.macs), own_params if quantized else int(totals.params)


def _measure(step: str, path: Path, st: _State, data: DataSplits | None, **extra) -> StepReport:
    from edgecnn.compress.quantize import onnx_accuracy

    macs, params = _costs(path)
    acc = onnx_accuracy(path, data.x_test, data.y_test) if data is not None else None
    frac = extra.pop("int8_conv_fraction", None)
    return StepReport(
        step, acc, macs, params, path.stat().st_size, _latency_ms(path, st.input_shape), frac, extra
    )


def _resolve_input(model: Any, input_shape: tuple[int, ...] | None, work: Path) -> _State:
    from edgecnn.models.resolve import is_onnx_path, resolve_model

    p = Path(str(model))
    if is_onnx_path(model) and not p.is_dir():  # a directory: resolve_model says so
        if not p.is_file():
            raise ModelLoadError(f"ONNX file '{p}' does not exist: check the path")
        proto = onnx.load(str(p))
        inits = {t.name for t in proto.graph.initializer}
        inp = next(i for i in proto.graph.input if i.name not in inits)
        dims = tuple(d.dim_value for d in inp.type.tensor_type.shape.dim)
        shape = tuple(input_shape or tuple(d if d > 0 else 1 for d in dims))
        dst = work / "in.onnx"
        shutil.copyfile(p, dst)
        return _State(None, None, {}, shape, dst, p.stem)
    # a module is copied: the input model is never modified
    rm = resolve_model(copy.deepcopy(model) if isinstance(model, nn.Module) else model, input_shape)
    return _State(rm.module, rm.arch, rm.arch_kwargs, rm.input_shape, work / "in.onnx", rm.name)


def _load_data_arg(data: Any) -> DataSplits | None:
    if data is None or isinstance(data, DataSplits):
        return data
    from edgecnn.data.loaders import load_data

    return load_data(data)


def run_recipe(
    model: Any,
    recipe: Recipe | dict | str | os.PathLike[str],
    data: DataSplits | str | None,
    out_dir: str | os.PathLike[str],
    progress: Callable[[Iterable], Iterable] | None = None,
    input_shape: tuple[int, ...] | None = None,
    measure_runs: int = 100,
) -> CompressReport:
    """Run ``recipe`` on ``model`` (module, checkpoint/ONNX path or torchvision name).

    ``data``: :class:`DataSplits`, a ``--data`` spec (``mnist``, ``digits``, a folder) or None
    (then accuracy is ``null`` and steps needing data are refused). ``progress`` wraps the step
    iterable (e.g. ``lambda it: track(it, "compress", total=n)``). The input model is never
    modified; the output directory appears only if every step succeeds.
    """
    rec = (
        recipe
        if isinstance(recipe, Recipe)
        else (parse_recipe(recipe) if isinstance(recipe, dict) else load_recipe(recipe))
    )
    splits = _load_data_arg(data)
    with tempfile.TemporaryDirectory(prefix="edgecnn-compress-") as tmp:
        work = Path(tmp)
        st = _resolve_input(model, input_shape, work)
        for s in rec.steps:
            if s.needs_torch and st.module is None:
                raise EdgecnnError(
                    f"step '{s.name}' needs a PyTorch model but '{st.name}' is ONNX-only: "
                    "pass a checkpoint (.pt) or a torchvision name, or drop the step"
                )
            if s.needs_data and splits is None:
                raise EdgecnnError(
                    f"step '{s.name}' needs data (training or calibration): pass --data"
                )
        if splits is not None:
            check_input_shape(st.input_shape, splits)
        reference = copy.deepcopy(st.module) if st.module is not None else None
        if st.module is not None:
            _export(st.module, st.onnx_path, st.input_shape)
        with _atomic_out(out_dir) as out:
            rows = [_measure("input", st.onnx_path, st, splits)]
            shutil.copyfile(st.onnx_path, out / "step-0-input.onnx")
            iterable: Iterable = list(enumerate(rec.steps, 1))
            if progress is not None:
                iterable = progress(iterable)
            for i, s in iterable:
                dst = out / f"step-{i}-{s.name}.onnx"
                extra = _run_step(s, st, splits, reference, dst, work)
                rows.append(_measure(s.name, dst, st, splits, **extra))
                st.onnx_path = dst
            shutil.copyfile(st.onnx_path, out / "model.onnx")
            if st.module is not None and st.arch is not None:
                from edgecnn.models.checkpoint import save_checkpoint

                save_checkpoint(
                    st.module, out / "model.pt", st.arch, st.arch_kwargs, {"recipe": rec.to_dict()}
                )
            report = CompressReport(
                rows, rec.to_dict(), str(Path(out_dir)), splits.name if splits else None
            )
            (out / "report.json").write_text(json.dumps(report.to_dict(), indent=2))
    return report


def _atomic_out(out_dir: str | os.PathLike[str]):
    from edgecnn.io import atomic_dir

    return atomic_dir(out_dir)


def _run_step(
    s: Any, st: _State, data: DataSplits | None, reference: nn.Module | None, dst: Path, work: Path
) -> dict:
    from edgecnn.compress import steps as impl

    return impl.STEP_IMPLS[s.name](s, st, data, reference, dst, work)
