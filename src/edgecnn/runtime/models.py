"""Resolve a model source to a runnable ``nn.Module`` with random (or checkpoint) weights.

Sources, tried in this order: an ``nn.Module``; a ``.pt``/``.pth`` edgecnn checkpoint
(:func:`edgecnn.models.checkpoint.load_checkpoint`); ``package.module:factory``; a built-in edge
model name (``edge-resnet``, ``edge-mobilenet``; input 1x1x28x28); a torchvision classification
name (built as its DEFAULT weights define it but randomly initialised, at that weight's crop size).
Nothing is downloaded. ONNX files are not modules: callers handle ``.onnx`` before calling this.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from edgecnn.errors import ModelLoadError, ShapeError

EDGE_INPUT_HW = (28, 28)


@dataclass
class ResolvedModel:
    """A module in eval mode, its name for reports and its full input shape (batch first)."""

    module: nn.Module
    name: str
    input_shape: tuple[int, ...]


def resolve_module(
    source: str | os.PathLike[str] | nn.Module,
    input_shape: Sequence[int] | None = None,
    batch: int | None = None,
    seed: int = 0,
) -> ResolvedModel:
    """Build the module for ``source`` (see the module docstring); ``batch`` overrides dim 0."""
    torch.manual_seed(seed)
    if isinstance(source, nn.Module):
        res = ResolvedModel(
            source.eval(), type(source).__name__, tuple(input_shape or (1, 3, 224, 224))
        )
    else:
        text = str(source)
        if text.endswith((".pt", ".pth")):
            res = _from_checkpoint(Path(text), input_shape)
        elif text.endswith(".onnx"):
            raise ModelLoadError(
                f"'{text}' is an ONNX file, not a PyTorch model: benchmark it directly"
            )
        elif ":" in text and not Path(text).exists():
            res = _from_factory(text, input_shape)
        else:
            res = _from_name(text, input_shape)
    if batch is not None:
        if batch < 1:
            raise ShapeError(f"batch must be >= 1, got {batch}")
        res.input_shape = (batch, *res.input_shape[1:])
    return res


def _from_checkpoint(path: Path, input_shape: Sequence[int] | None) -> ResolvedModel:
    try:
        from edgecnn.models.checkpoint import load_checkpoint
    except ImportError:  # pragma: no cover - the compression package provides it
        raise ModelLoadError("checkpoint loading is not available in this install") from None
    module, info = load_checkpoint(path)
    arch = str(info.get("arch", path.stem))
    if input_shape is None:
        input_shape = _default_shape(arch, dict(info.get("arch_kwargs") or {}))
    return ResolvedModel(module.eval(), arch, tuple(input_shape))


def _from_factory(text: str, input_shape: Sequence[int] | None) -> ResolvedModel:
    mod_name, _, attr = text.partition(":")
    try:
        factory = getattr(importlib.import_module(mod_name), attr)
    except (ImportError, AttributeError) as e:
        raise ModelLoadError(
            f"cannot import '{text}' ({e}): give 'package.module:factory' with an importable module"
        ) from None
    module = factory()
    if not isinstance(module, nn.Module):
        raise ModelLoadError(f"'{text}' returned {type(module).__name__}, not a torch.nn.Module")
    return ResolvedModel(module.eval(), attr, tuple(input_shape or (1, 3, 224, 224)))


def _from_name(name: str, input_shape: Sequence[int] | None) -> ResolvedModel:
    from edgecnn.models.edge import EDGE_MODELS, build_edge_model

    if name in EDGE_MODELS:
        return ResolvedModel(
            build_edge_model(name).eval(), name, tuple(input_shape or _default_shape(name, {}))
        )
    from edgecnn.models.zoo import build_zoo_model, zoo_entry

    entry = zoo_entry(name)  # raises ModelLoadError with suggestions for unknown names
    module = build_zoo_model(name, device="cpu")
    return ResolvedModel(module.eval(), name, tuple(input_shape or entry.input_shape))


def _default_shape(arch: str, arch_kwargs: dict) -> tuple[int, ...]:
    from edgecnn.models.edge import EDGE_MODELS

    if arch in EDGE_MODELS:
        return (1, int(arch_kwargs.get("in_channels", 1)), *EDGE_INPUT_HW)
    try:
        from edgecnn.models.zoo import zoo_entry

        return zoo_entry(arch).input_shape
    except ModelLoadError:
        raise ShapeError(
            f"no default input shape for architecture '{arch}': give --input-shape, e.g. 1x3x224x224"
        ) from None
