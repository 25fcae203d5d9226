"""Resolve what the user names (a torchvision name, a file, ``module:factory``, a module) to a Graph."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from edgecnn.errors import ModelLoadError
from edgecnn.graph.ir import Graph

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


def load_graph(source: Any, input_shape: tuple[int, ...] | None = None) -> Graph:
    """Build the IR of ``source``.

    ``source`` is an ``nn.Module``, an ONNX ``ModelProto``, a path to an ``.onnx`` file or an
    edgecnn checkpoint (``.pt``), a torchvision classification name (``resnet50``; profiled at
    its weights' crop size unless ``input_shape`` is given), or ``package.module:factory``.
    """
    from torch import nn

    if isinstance(source, nn.Module):
        from edgecnn.graph.from_torch import graph_from_module

        return graph_from_module(source, input_shape)
    if not isinstance(source, (str, Path)):
        import onnx

        if isinstance(source, onnx.ModelProto):
            from edgecnn.graph.from_onnx import graph_from_onnx

            return graph_from_onnx(source, input_shape)
        raise ModelLoadError(f"cannot build a graph from a {type(source).__name__}")
    text = str(source)
    path = Path(text)
    if text.lower().endswith(".onnx"):
        from edgecnn.graph.from_onnx import graph_from_onnx

        return graph_from_onnx(path, input_shape)
    if text.lower().endswith(CHECKPOINT_SUFFIXES):
        module, shape = load_module(text)
        from edgecnn.graph.from_torch import graph_from_module

        return graph_from_module(module, input_shape or shape, name=path.stem)
    module, shape = load_module(text)
    from edgecnn.graph.from_torch import graph_from_module

    return graph_from_module(module, input_shape or shape, name=text)


def load_module(source: str, device: str = "meta") -> tuple[Any, tuple[int, ...] | None]:
    """An ``nn.Module`` and its natural input shape (or None) from a name, factory or checkpoint.

    ``device="meta"`` builds torchvision models without weights (for cost analysis only).
    """
    if source.lower().endswith(CHECKPOINT_SUFFIXES):
        path = Path(source)
        if not path.is_file():
            raise ModelLoadError(f"checkpoint '{source}' not found: check the path")
        try:
            from edgecnn.models.checkpoint import load_checkpoint
        except ImportError as e:  # pragma: no cover - part of the package
            raise ModelLoadError(f"checkpoint support is unavailable: {e}") from None
        module, info = load_checkpoint(path)
        shape = info.get("input_shape") if isinstance(info, dict) else None
        return module, tuple(shape) if shape else None
    if ":" in source:
        return _from_factory(source), None
    try:
        from edgecnn.models.edge import EDGE_MODELS, build_edge_model
    except ImportError:  # the edge-model registry is optional at this layer
        EDGE_MODELS, build_edge_model = {}, None
    if source in EDGE_MODELS and build_edge_model is not None:
        return build_edge_model(source), (1, 1, 28, 28)
    from edgecnn.models.zoo import build_zoo_model, zoo_entry

    entry = zoo_entry(source)  # raises ModelLoadError with suggestions for unknown names
    return build_zoo_model(source, device=device), entry.input_shape


def _from_factory(spec: str) -> Any:
    from torch import nn

    mod_name, _, attr = spec.partition(":")
    if (
        "/" in mod_name
        or "\\" in mod_name
        or not mod_name.replace(".", "").replace("_", "").isalnum()
    ):
        raise ModelLoadError(
            f"'{spec}' is neither a known model nor an existing file: check the path "
            "(ONNX files end in .onnx, checkpoints in .pt)"
        )
    try:
        module = importlib.import_module(mod_name)
    except ImportError as e:
        raise ModelLoadError(
            f"cannot import module '{mod_name}' for '{spec}': {e} (is it on PYTHONPATH?)"
        ) from None
    factory = getattr(module, attr, None)
    if factory is None:
        raise ModelLoadError(f"module '{mod_name}' has no attribute '{attr}'")
    obj = factory() if callable(factory) and not isinstance(factory, nn.Module) else factory
    if not isinstance(obj, nn.Module):
        raise ModelLoadError(
            f"'{spec}' did not produce a torch.nn.Module (got {type(obj).__name__})"
        )
    return obj
