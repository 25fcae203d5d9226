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

Step names: the keys of :data:`~edgecnn.compress.steps.STEPS`; every step's options are the
fields of its config dataclass (flat keys; ``quantize`` takes every
:class:`~edgecnn.compress.quantize.QuantConfig` field plus ``max_drop``), unknown keys are
rejected with the list of valid ones and out-of-range values with the valid range. Accuracy
budgets (``max_drop``) are in percentage points of test accuracy.

Output directory (written through :func:`edgecnn.io.atomic_dir`, so a failed run leaves nothing):
``model.onnx`` (final), ``model.pt`` (the last PyTorch model, when the input was PyTorch and its
architecture is known), ``step-<i>-<name>.onnx`` (every stage) and ``report.json``
(:meth:`CompressReport.to_dict`, ``"kind": "compress"``): first ``"step": "input"``, then one
entry per step with ``accuracy`` (fraction 0-1 on the test split, ``null`` without data),
``macs`` and ``params`` (``edgecnn.analysis.profile`` of the step's ONNX graph; FP16 and QDQ
weights count like FP32 ones), ``unknown_ops`` (ops the analyser has no MAC count for),
``size_bytes`` (the ONNX file), ``latency_ms`` (ONNX Runtime, 1 thread, batch 1, median of
``measure_runs`` runs), for quantized models ``int8_conv_fraction``, and ``details`` (the step's
typed :mod:`~edgecnn.compress.details`).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from edgecnn.compress._state import StepState as _State
from edgecnn.compress._state import export_compact
from edgecnn.compress.details import InputDetails, StepDetails
from edgecnn.compress.measure import latency_ms, onnx_costs
from edgecnn.compress.steps import (
    STEPS,
    DistillStep,
    FoldStep,
    Fp16Step,
    PruneStep,
    QatStep,
    QuantizeStep,
    StepConfig,
)
from edgecnn.data.loaders import DataSplits, check_input_shape
from edgecnn.errors import ConfigError, EdgecnnError, ModelLoadError

__all__ = [
    "STEPS",
    "CompressReport",
    "DistillStep",
    "FoldStep",
    "Fp16Step",
    "PruneStep",
    "QatStep",
    "QuantizeStep",
    "Recipe",
    "StepReport",
    "load_recipe",
    "parse_recipe",
    "run_recipe",
    "with_max_drop",
]


@dataclass(frozen=True)
class Recipe:
    """An ordered list of step configs."""

    steps: tuple[StepConfig, ...]
    description: str = ""

    def to_dict(self) -> dict:
        d: dict[str, Any] = {
            "steps": [{"step": s.name, **dataclasses.asdict(s)} for s in self.steps]
        }
        if self.description:
            d["description"] = self.description
        return d


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
    if isinstance(default, tuple):
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) for x in v):
            raise ConfigError(
                f"step '{step}': option '{f.name}' must be a list of strings, got {v!r}"
            )
        return tuple(v)
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
    steps: list[StepConfig] = []
    for i, entry in enumerate(raw, 1):
        if not isinstance(entry, dict) or "step" not in entry:
            raise ConfigError(f"recipe step {i} must be a mapping with a 'step' key, got {entry!r}")
        name = entry["step"]
        spec = STEPS.get(name)
        if spec is None:
            raise ConfigError(
                f"recipe step {i}: unknown step '{name}': choose one of {', '.join(STEPS)}"
            )
        fields = {f.name: f for f in dataclasses.fields(spec.config)}
        opts = {k: v for k, v in entry.items() if k != "step"}
        unknown = sorted(set(opts) - set(fields))
        if unknown:
            valid = ", ".join(fields) or "(none)"
            raise ConfigError(
                f"recipe step {i} ('{name}'): unknown key(s) {', '.join(unknown)}; valid keys: {valid}"
            )
        try:
            steps.append(spec.config(**{k: _coerce(name, fields[k], v) for k, v in opts.items()}))
        except ConfigError as e:
            msg = str(e).removeprefix(f"step '{name}': ")
            raise ConfigError(f"recipe step {i} ('{name}'): {msg}") from None
    for i, s in enumerate(steps[:-1]):
        if s.terminal and any(t.needs_torch for t in steps[i + 1 :]):
            raise ConfigError(
                f"step '{s.name}' produces an ONNX-only model, so later PyTorch steps cannot run: "
                "put quantize/fp16/qat last"
            )
    desc = obj.get("description") or ""
    if not isinstance(desc, str):
        raise ConfigError(f"recipe 'description' must be a string, got {desc!r}")
    return Recipe(tuple(steps), desc)


def with_max_drop(recipe: Recipe, max_drop: float) -> Recipe:
    """A copy of ``recipe`` whose quantize steps use mixed precision with ``max_drop`` points."""
    if not isinstance(max_drop, (int, float)) or not math.isfinite(max_drop) or max_drop < 0:
        raise ConfigError(f"--max-drop must be a finite number >= 0 points, got {max_drop}")
    if not any(isinstance(s, QuantizeStep) for s in recipe.steps):
        raise ConfigError("--max-drop applies to quantize steps but the recipe has none")
    return Recipe(
        tuple(
            dataclasses.replace(s, max_drop=float(max_drop)) if isinstance(s, QuantizeStep) else s
            for s in recipe.steps
        ),
        recipe.description,
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
    """One row of report.json (accuracy fraction 0-1, size in bytes, latency in ms).

    ``unknown_ops``: ``{layer, op}`` of ops the analyser has no MAC count for (normally empty).
    """

    step: str
    accuracy: float | None
    macs: int
    params: int
    size_bytes: int
    latency_ms: float | None  #: None when the runner was asked not to time (measure_runs=0)
    int8_conv_fraction: float | None = None
    details: StepDetails = field(default_factory=InputDetails)
    unknown_ops: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = {
            "step": self.step,
            "accuracy": self.accuracy,
            "macs": self.macs,
            "params": self.params,
            "size_bytes": self.size_bytes,
            "latency_ms": self.latency_ms,
            "int8_conv_fraction": self.int8_conv_fraction,
            "details": self.details.to_dict(),
            "unknown_ops": [dict(u) for u in self.unknown_ops],
        }
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


def _measure(
    step: str,
    path: Path,
    st: _State,
    data: DataSplits | None,
    details: StepDetails,
    runs: int = 100,
) -> StepReport:
    from edgecnn.compress.quantize import onnx_accuracy

    costs = onnx_costs(path)
    acc = onnx_accuracy(path, data.x_test, data.y_test) if data is not None else None
    return StepReport(
        step,
        acc,
        costs.macs,
        costs.params,
        path.stat().st_size,
        latency_ms(path, st.input_shape, runs) if runs > 0 else None,
        getattr(details, "int8_conv_fraction", None),
        details,
        list(costs.unknown_ops),
    )


def _resolve_input(model: Any, input_shape: tuple[int, ...] | None, work: Path) -> _State:
    from edgecnn.models.resolve import is_onnx_path, resolve_model

    p = Path(str(model))
    if is_onnx_path(model) and not p.is_dir():  # a directory: resolve_model says so
        if not p.is_file():
            raise ModelLoadError(f"ONNX file '{p}' does not exist: check the path")
        from edgecnn.graph.from_onnx import read_onnx

        proto = read_onnx(p)  # empty, truncated or garbage files: ModelLoadError
        inits = {t.name for t in proto.graph.initializer}
        inp = next((i for i in proto.graph.input if i.name not in inits), None)
        if inp is None:
            raise ModelLoadError(f"ONNX model '{p}' has no graph input: re-export it with one")
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
    on_step: Callable[[str], None] | None = None,
) -> CompressReport:
    """Run ``recipe`` on ``model`` (module, checkpoint/ONNX path or torchvision name).

    ``data``: :class:`DataSplits`, a ``--data`` spec (``mnist``, ``digits``, a folder) or None
    (then accuracy is ``null`` and steps needing data are refused). ``progress`` wraps the step
    iterable (e.g. ``lambda it: track(it, "compress", total=n)``); ``on_step`` is called with
    the step's name and position (``"prune 2/4"``) before the step runs. ``measure_runs``: ORT
    runs per latency median (1 thread, batch 1); 0 skips timing (``latency_ms`` is None), for
    callers that time the steps themselves. The input model is never modified; the output directory appears
    only if every step succeeds.
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
            export_compact(st.module, st.onnx_path, st.input_shape)
        with _atomic_out(out_dir) as out:
            rows = [_measure("input", st.onnx_path, st, splits, InputDetails(), measure_runs)]
            shutil.copyfile(st.onnx_path, out / "step-0-input.onnx")
            n = len(rec.steps)
            iterable: Iterable = list(enumerate(rec.steps, 1))
            if progress is not None:
                iterable = progress(iterable)
            for i, s in iterable:
                if on_step is not None:
                    on_step(f"{s.name} {i}/{n}")
                dst = out / f"step-{i}-{s.name}.onnx"
                details = STEPS[s.name].run(s, st, splits, reference, dst, work)
                rows.append(_measure(s.name, dst, st, splits, details, measure_runs))
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
