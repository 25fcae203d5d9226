"""The one model resolver: what a user names -> an ``nn.Module``, its name and its input shape.

Sources, tried in this order (:func:`resolve_model`):

1. an ``nn.Module`` (returned as is, in eval mode);
2. an existing directory: refused (``ModelLoadError`` saying it is a directory);
3. an ONNX file (``.onnx``, any case): refused, ONNX is not a module; callers handle it first
   (:func:`load_graph` does);
4. an edgecnn checkpoint (``.pt``/``.pth``/``.ckpt``, any case), loaded with ``weights_only``
   through :func:`edgecnn.models.checkpoint.load_checkpoint` (always real weights, on the CPU);
5. ``package.module:factory`` (called with no arguments; an ``nn.Module`` attribute is used as
   is);
6. a built-in edge model name (:data:`edgecnn.models.edge.EDGE_MODELS`);
7. a torchvision classification name (:mod:`edgecnn.models.zoo`; ``device="meta"`` builds it
   without weights for cost analysis, any other device randomly initialised).

Default input shapes come from the architecture alone: the edge-model registry
(:meth:`~edgecnn.models.edge.EdgeModelSpec.input_shape`, channels from ``in_channels``) or the
zoo metadata (:attr:`~edgecnn.models.zoo.ZooEntry.input_shape`, the DEFAULT weights' crop). A
module knows its architecture when it was built by edgecnn (``_edgecnn_arch``, see
:mod:`edgecnn.models._arch`); a module or factory of unknown architecture gets
:data:`DEFAULT_INPUT_SHAPE` (1x3x224x224) unless ``input_shape`` is given.
"""

from __future__ import annotations

import difflib
import importlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from edgecnn.errors import ConfigError, ModelLoadError, ShapeError
from edgecnn.graph.from_torch import DEFAULT_INPUT_SHAPE, graph_from_module
from edgecnn.graph.ir import Graph, check_input_shape
from edgecnn.models._arch import module_arch
from edgecnn.models.checkpoint import load_checkpoint
from edgecnn.models.edge import EDGE_MODELS, build_edge_model
from edgecnn.models.zoo import build_zoo_model, meta_construction, zoo_entry, zoo_names

#: Suffixes (compared case-insensitively) of edgecnn checkpoints and of ONNX files.
CHECKPOINT_SUFFIXES: tuple[str, ...] = (".pt", ".pth", ".ckpt")
ONNX_SUFFIX = ".onnx"

__all__ = [
    "CHECKPOINT_SUFFIXES",
    "DEFAULT_INPUT_SHAPE",
    "ONNX_SUFFIX",
    "ResolvedModel",
    "default_input_shape",
    "is_checkpoint_path",
    "is_onnx_path",
    "load_graph",
    "resolve_model",
]


@dataclass
class ResolvedModel:
    """A module in eval mode, its name for reports and its full input shape (batch first).

    ``name`` is what the user typed for names and factories, the architecture for checkpoints
    and the class name for modules.

    Plain (not frozen) so that a caller can drop ``module`` once it is exported.

    ``arch`` is the registry name (edge model or torchvision) when known, else None;
    ``arch_kwargs`` the arguments it was built with (what a checkpoint stores).
    """

    module: nn.Module
    name: str
    input_shape: tuple[int, ...]
    arch: str | None = None
    arch_kwargs: dict[str, Any] = field(default_factory=dict)


class _Built(NamedTuple):
    """A resolved source before its input shape is known."""

    module: nn.Module
    name: str
    arch: str | None
    arch_kwargs: dict[str, Any]


def is_onnx_path(source: Any) -> bool:
    """Whether ``source`` is a path (str or PathLike) ending in ``.onnx`` in any case."""
    return isinstance(source, (str, os.PathLike)) and str(source).lower().endswith(ONNX_SUFFIX)


def is_checkpoint_path(source: Any) -> bool:
    """Whether ``source`` is a path ending in a checkpoint suffix (``.pt``, ``.PTH``, ...)."""
    return isinstance(source, (str, os.PathLike)) and str(source).lower().endswith(
        CHECKPOINT_SUFFIXES
    )


def default_input_shape(
    arch: str | None, arch_kwargs: dict[str, Any] | None = None
) -> tuple[int, ...]:
    """Batch-1 input shape of a registered architecture; :data:`DEFAULT_INPUT_SHAPE` for None.

    Raises ``ShapeError`` for a name that is neither an edge model nor a torchvision model.
    """
    if arch is None:
        return DEFAULT_INPUT_SHAPE
    if arch in EDGE_MODELS:
        return EDGE_MODELS[arch].input_shape(arch_kwargs)
    if arch in zoo_names():
        return zoo_entry(arch).input_shape
    raise ShapeError(
        f"no default input shape for architecture '{arch}': give --input-shape, e.g. 1x3x224x224"
    )


def resolve_model(
    source: str | os.PathLike[str] | nn.Module,
    input_shape: Sequence[int] | None = None,
    *,
    device: str = "cpu",
    batch: int | None = None,
    seed: int = 0,
) -> ResolvedModel:
    """Resolve ``source`` (see the module docstring) to a :class:`ResolvedModel`.

    ``input_shape`` (full, batch first) overrides the default; ``batch`` then replaces dim 0.
    Random initialisation (names, factories) runs under ``torch.manual_seed(seed)`` inside a
    forked RNG, so the result is reproducible and the global RNG is left untouched.
    """
    shape = _check_shape(input_shape) if input_shape is not None else None
    _check_device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        res = _resolve(source, device)
    if shape is None:
        shape = default_input_shape(res.arch, res.arch_kwargs)
    if batch is not None:
        if batch < 1:
            raise ShapeError(f"batch must be >= 1, got {batch}")
        shape = _check_shape((batch, *shape[1:]))
    check_input_channels(res.module, shape, res.name)
    return ResolvedModel(res.module, res.name, tuple(shape), res.arch, res.arch_kwargs)


def _resolve(source: Any, device: str) -> _Built:
    """The module, name and architecture of ``source``; the input shape is filled in later."""
    if isinstance(source, nn.Module):
        arch, kwargs = module_arch(source)
        return _Built(source.eval(), type(source).__name__, arch, kwargs)
    if not isinstance(source, (str, os.PathLike)):
        raise ModelLoadError(
            f"cannot resolve a {type(source).__name__} as a model: give an nn.Module, a model "
            "name, a .pt checkpoint or package.module:factory"
        )
    text = os.fspath(source)
    path = Path(text)
    if path.is_dir():
        raise ModelLoadError(
            f"'{text}' is a directory, not a model: give an .onnx file, a .pt checkpoint, "
            "a model name or package.module:factory"
        )
    if is_onnx_path(text):
        raise ModelLoadError(
            f"'{text}' is an ONNX file, not a PyTorch model: use the ONNX path directly "
            "(edgecnn.models.load_graph reads it) or give a checkpoint or model name"
        )
    if is_checkpoint_path(text):
        return _from_checkpoint(path)
    if ":" in text and not path.exists():
        return _from_factory(text)
    if path.is_file():
        raise ModelLoadError(
            f"'{text}' is a file edgecnn cannot read as a model: give an .onnx file or an "
            f"edgecnn checkpoint ({'/'.join(CHECKPOINT_SUFFIXES)})"
        )
    return _from_name(text, device)


def _from_checkpoint(path: Path) -> _Built:
    if not path.is_file():
        raise ModelLoadError(f"checkpoint '{path}' not found: check the path")
    module, info = load_checkpoint(path)
    arch = str(info["arch"])
    return _Built(module.eval(), arch, arch, dict(info.get("arch_kwargs") or {}))


def _from_factory(spec: str) -> _Built:
    mod_name, _, attr = spec.partition(":")
    if not mod_name or not attr or not mod_name.replace(".", "").replace("_", "").isalnum():
        raise ModelLoadError(
            f"'{spec}' is neither a known model nor an existing file: check the path, or give "
            "package.module:factory (ONNX files end in .onnx, checkpoints in .pt)"
        )
    try:
        module = importlib.import_module(mod_name)
    except ImportError as e:
        raise ModelLoadError(
            f"cannot import module '{mod_name}' for '{spec}' ({e}): is it on PYTHONPATH?"
        ) from None
    factory = getattr(module, attr, None)
    if factory is None:
        raise ModelLoadError(
            f"module '{mod_name}' has no attribute '{attr}': check the factory name in '{spec}'"
        )
    obj = factory() if callable(factory) and not isinstance(factory, nn.Module) else factory
    if not isinstance(obj, nn.Module):
        raise ModelLoadError(
            f"'{spec}' returned a {type(obj).__name__}, not a torch.nn.Module: "
            "point it at a function that builds the model"
        )
    arch, kwargs = module_arch(obj)
    return _Built(obj.eval(), spec, arch, kwargs)


def _from_name(name: str, device: str) -> _Built:
    if name in EDGE_MODELS:
        if device == "meta":
            with meta_construction():
                module = build_edge_model(name)
        else:
            module = build_edge_model(name).to(device)
    elif name in zoo_names():
        module = build_zoo_model(name, device=device)
    else:
        raise ModelLoadError(_unknown_name_message(name, [*EDGE_MODELS, *zoo_names()]))
    arch, kwargs = module_arch(module)
    return _Built(module.eval(), name, arch, kwargs)


def _unknown_name_message(name: str, known: list[str]) -> str:
    looks_like_path = "/" in name or "\\" in name or Path(name).suffix != ""
    if looks_like_path:
        return f"model file '{name}' not found: check the path"
    close = difflib.get_close_matches(name, known, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return (
        f"unknown model '{name}'{hint}: give an edge model ({', '.join(sorted(EDGE_MODELS))}), a "
        "torchvision classification name, an .onnx file, a .pt checkpoint or module:factory"
    )


def _check_shape(shape: Sequence[int]) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        raise ShapeError(
            f"input shape {shape!r} is not a sequence of integers: give e.g. 1x3x224x224"
        ) from None
    return check_input_shape(dims, f"input shape {'x'.join(map(str, dims))}")


def first_layer(module: nn.Module) -> nn.Module | None:
    """The first convolution or linear layer of ``module`` in registration order (the order
    every edgecnn and torchvision model runs them), or None."""
    return next(
        (m for m in module.modules() if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))),
        None,
    )


def check_input_channels(module: nn.Module, shape: Sequence[int], name: str) -> None:
    """Refuse an input shape whose channel count differs from the first layer's input
    channels (a conv of N spatial dims with a shape of rank N+2, or a linear layer with a
    rank-2 shape): every command that takes ``--input-shape`` passes through here."""
    layer = first_layer(module)
    if layer is None:
        return
    if isinstance(layer, nn.Linear):
        rank, channels, dim, what = 2, layer.in_features, len(shape) - 1, "input features"
    else:
        rank, channels, dim, what = len(layer.kernel_size) + 2, layer.in_channels, 1, "channels"
    if len(shape) == rank and shape[dim] != channels:
        wanted = list(shape)
        wanted[dim] = channels
        raise ShapeError(
            f"input shape {'x'.join(map(str, shape))} has {shape[dim]} {what} but '{name}' "
            f"expects {channels} (its first layer, {type(layer).__name__}): use e.g. "
            f"--input-shape {'x'.join(map(str, wanted))}"
        )


def _check_device(device: str) -> None:
    try:
        torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown torch device '{device}': use 'cpu' or 'meta'") from None


# ----------------------------------------------------------------------------- graphs


def load_graph(source: Any, input_shape: Sequence[int] | None = None) -> Graph:
    """Build the IR of ``source``.

    ``source`` is an ONNX ``ModelProto`` or ``.onnx`` path (any case; the ONNX frontend), or
    anything :func:`resolve_model` accepts, resolved with ``device="meta"`` (torchvision models
    are built without weights) and recorded by the PyTorch frontend at ``input_shape`` or the
    architecture's default shape. A module's train/eval mode is left as it was.
    """
    from edgecnn.graph.from_onnx import graph_from_onnx

    if isinstance(source, (str, os.PathLike)):
        if Path(source).is_dir():
            raise ModelLoadError(
                f"'{os.fspath(source)}' is a directory, not a model: give an .onnx file, "
                "a .pt checkpoint, a model name or package.module:factory"
            )
        if is_onnx_path(source):
            shape = _check_shape(input_shape) if input_shape is not None else None
            return graph_from_onnx(Path(source), shape)
    elif not isinstance(source, nn.Module):
        import onnx

        if isinstance(source, onnx.ModelProto):
            shape = _check_shape(input_shape) if input_shape is not None else None
            return graph_from_onnx(source, shape)
        raise ModelLoadError(
            f"cannot build a graph from a {type(source).__name__}: give an nn.Module, an ONNX "
            "model, a model name, a file or package.module:factory"
        )
    was_training = source.training if isinstance(source, nn.Module) else None
    try:
        rm = resolve_model(source, input_shape, device="meta")
        return graph_from_module(rm.module, rm.input_shape, name=rm.name)
    finally:
        if was_training is not None:
            source.train(was_training)
