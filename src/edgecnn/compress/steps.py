"""Implementations of the recipe steps (one function per step, keyed by step name).

Each takes ``(config, state, data, reference, dst, work)``, updates ``state.module`` when it
changes the PyTorch model, writes the step's ONNX model to ``dst`` and returns extra report
fields (``int8_conv_fraction`` for quantized models, plus step-specific details).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

from edgecnn.compress.quantize import compact_onnx
from edgecnn.errors import EdgecnnError

StepImpl = Callable[..., dict]
STEP_IMPLS: dict[str, StepImpl] = {}


def step_impl(name: str) -> Callable[[StepImpl], StepImpl]:
    def register(fn: StepImpl) -> StepImpl:
        if name in STEP_IMPLS:
            raise EdgecnnError(f"duplicate step implementation '{name}'")
        STEP_IMPLS[name] = fn
        return fn

    return register


def _export(st: Any, dst: Path) -> None:
    from edgecnn.compress.recipe import _export as export

    export(st.module, dst, st.input_shape)


@step_impl("fold")
def run_fold(cfg, st, data, reference, dst: Path, work: Path) -> dict:
    from edgecnn.compress.fold import count_batchnorm, fold_batchnorm, fold_batchnorm_onnx

    if st.module is not None:
        before = count_batchnorm(st.module)
        st.module, res = fold_batchnorm(st.module)
        _export(st, dst)
        return {"bn_before": before, "bn_after": count_batchnorm(st.module), **res.to_dict()}
    folded, res = fold_batchnorm_onnx(onnx.load(str(st.onnx_path)))
    dst.write_bytes(compact_onnx(folded).SerializeToString())
    return res.to_dict()


@step_impl("fp16")
def run_fp16(cfg, st, data, reference, dst: Path, work: Path) -> dict:
    from edgecnn.compress.quantize import convert_fp16

    convert_fp16(st.onnx_path, dst)
    return {"precision": "fp16"}


@step_impl("quantize")
def run_quantize(cfg, st, data, reference, dst: Path, work: Path) -> dict:
    from edgecnn.compress.quantize import quantize_int8

    if cfg.max_drop is not None:
        from edgecnn.compress.sensitivity import mixed_precision

        res, excluded, sens = mixed_precision(
            st.onnx_path, dst, data, cfg.quant_config(), cfg.max_drop
        )
        return {
            "int8_conv_fraction": res.int8_conv_fraction,
            "excluded_nodes": list(excluded),
            "sensitivity": sens,
            "warnings": res.warnings,
            **_sqnr_details(st, data),
        }
    res = quantize_int8(st.onnx_path, dst, data.x_calib, cfg.quant_config())
    return {
        "int8_conv_fraction": res.int8_conv_fraction,
        "warnings": res.warnings,
        **_sqnr_details(st, data),
    }


def _sqnr_details(st, data) -> dict:
    """Per-layer SQNR through depth from the fake-quant simulator (PyTorch models only)."""
    if st.module is None:
        return {}
    from edgecnn.compress.fakequant import sqnr_by_layer

    rows = sqnr_by_layer(st.module, data.x_calib[:200])
    return {"sqnr": [r.to_dict() for r in rows]}


def _finetune(data, epochs: int, lr: float, seed: int):
    from edgecnn.models.edge import evaluate, train_model

    def ft(m: nn.Module, r: int) -> float:
        train_model(m, data.x_train, data.y_train, epochs=epochs, lr=lr, seed=seed + r)
        return evaluate(m, data.x_test, data.y_test)

    return ft


@step_impl("prune")
def run_prune(cfg, st, data, reference, dst: Path, work: Path) -> dict:
    from edgecnn.compress.prune import magnitude_prune, structured_prune
    from edgecnn.models.edge import evaluate

    before = evaluate(st.module, data.x_test, data.y_test)
    scan = {}
    if cfg.sensitivity_scan:
        from edgecnn.compress.prune import layer_sensitivity

        xs, ys = data.x_test[:300], data.y_test[:300]
        raw = layer_sensitivity(st.module, lambda m: evaluate(m, xs, ys))
        scan = {"sensitivity": {k: [list(r) for r in v] for k, v in raw.items()}}
    if cfg.method == "unstructured":
        st.module, stats = magnitude_prune(st.module, cfg.sparsity, cfg.scope)
        details: dict = {"sparsity": [s.to_dict() for s in stats]}
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
        details = res.to_dict()
    after = evaluate(st.module, data.x_test, data.y_test)
    details["within_budget"] = (before - after) * 100 <= cfg.max_drop
    details["accuracy_before"] = before
    details.update(scan)
    _export(st, dst)
    return details


@step_impl("distill")
def run_distill(cfg, st, data, reference, dst: Path, work: Path) -> dict:
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
    return {
        "accuracy_before": before,
        "teacher_accuracy": evaluate(teacher, data.x_test, data.y_test),
    }


@step_impl("qat")
def run_qat(cfg, st, data, reference, dst: Path, work: Path) -> dict:
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
    return {"int8_conv_fraction": res.int8_conv_fraction, "warnings": res.warnings}
