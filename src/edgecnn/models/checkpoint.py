"""edgecnn checkpoints: architecture name + arguments + state dict, loadable with weights_only.

File layout (a plain dict saved by ``torch.save``; only tensors and primitive containers, so
``torch.load(path, weights_only=True)`` reads it without executing code)::

    {"format": "edgecnn-checkpoint", "version": 1,
     "arch": "edge-resnet", "arch_kwargs": {...},
     "state_dict": {...}, "extra": {...}}

Structured pruning changes channel counts and BN folding removes BN layers; :func:`load_checkpoint`
therefore rebuilds the architecture and then adapts it to the state dict: ``Conv2d``/
``BatchNorm2d``/``Linear`` are resized to the stored shapes (depthwise convs stay depthwise), BN
layers absent from the state dict become ``Identity`` and convs gain the bias folding created,
so compressed checkpoints load through the same path.
Architectures are looked up in :data:`edgecnn.models.edge.EDGE_MODELS` first, then torchvision.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgecnn.errors import ModelLoadError
from edgecnn.io import atomic_write_bytes
from edgecnn.models._arch import tag_arch

FORMAT = "edgecnn-checkpoint"
VERSION = 1


def _plain(obj: Any) -> Any:
    """Convert tuples to lists recursively so the dict is weights_only-loadable and stable."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def save_checkpoint(
    model: nn.Module,
    path: str | os.PathLike[str],
    arch: str,
    arch_kwargs: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model``'s state dict with its architecture name/arguments to ``path`` atomically."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "arch": arch,
        "arch_kwargs": _plain(arch_kwargs or {}),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "extra": _plain(extra or {}),
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    return atomic_write_bytes(path, buf.getvalue())


def build_arch(arch: str, arch_kwargs: dict[str, Any]) -> nn.Module:
    """Build an architecture by name: a built-in edge model, else a torchvision model (no weights)."""
    from edgecnn.models.edge import EDGE_MODELS, build_edge_model

    if arch in EDGE_MODELS:
        return build_edge_model(arch, **arch_kwargs)
    import torchvision

    if arch in torchvision.models.list_models():
        return tag_arch(
            torchvision.models.get_model(arch, weights=None, **arch_kwargs), arch, arch_kwargs
        )
    raise ModelLoadError(
        f"checkpoint architecture '{arch}' is unknown: expected one of {sorted(EDGE_MODELS)} "
        "or a torchvision model name"
    )


def _resize_to_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Replace Conv2d/BatchNorm2d/Linear modules whose stored shapes differ (pruned checkpoints)."""
    for name, mod in list(model.named_modules()):
        if not name:
            continue
        if isinstance(mod, nn.modules.batchnorm._BatchNorm) and f"{name}.running_mean" not in state:
            _set(model, name, nn.Identity())  # folded into the preceding conv
            continue
        w = state.get(f"{name}.weight")
        if w is None:
            continue
        if isinstance(mod, (nn.Conv2d, nn.Linear)) and mod.bias is None and f"{name}.bias" in state:
            mod.bias = nn.Parameter(torch.zeros(mod.weight.shape[0]))  # bias created by BN folding
        new: nn.Module | None = None
        if isinstance(mod, nn.Conv2d) and tuple(w.shape) != tuple(mod.weight.shape):
            depthwise = mod.groups == mod.in_channels == mod.out_channels and mod.groups > 1
            out_c, in_per_group = int(w.shape[0]), int(w.shape[1])
            groups = out_c if depthwise else mod.groups
            new = nn.Conv2d(
                in_per_group * groups,
                out_c,
                mod.kernel_size,
                mod.stride,
                mod.padding,
                mod.dilation,
                groups,
                bias=mod.bias is not None,
                padding_mode=mod.padding_mode,
            )
        elif isinstance(mod, nn.BatchNorm2d) and w.shape[0] != mod.num_features:
            new = nn.BatchNorm2d(int(w.shape[0]), mod.eps, mod.momentum)
        elif isinstance(mod, nn.Linear) and tuple(w.shape) != tuple(mod.weight.shape):
            new = nn.Linear(int(w.shape[1]), int(w.shape[0]), bias=mod.bias is not None)
        if new is not None:
            if f"{name}.bias" in state and getattr(new, "bias", None) is None:
                new.bias = nn.Parameter(torch.zeros(int(w.shape[0])))
            _set(model, name, new)


def _set(model: nn.Module, name: str, new: nn.Module) -> None:
    parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
    setattr(parent, name.rpartition(".")[2], new)


def _load_error_reason(e: Exception) -> str:
    """One whole sentence saying why ``torch.load`` failed (its messages run on for lines).

    For weights-only refusals that is the unpickler's reason (``Unsupported global: ...``),
    otherwise the first sentence of the message.
    """
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip()
    if not text:
        return type(e).__name__
    marker = "WeightsUnpickler error:"
    if marker in text:
        lines = [ln.strip() for ln in text.split(marker, 1)[1].splitlines() if ln.strip()]
        return "not loadable with weights_only: " + _first_sentence(lines[0] if lines else "")
    return _first_sentence(" ".join(text.splitlines()[0].split()))


def _first_sentence(text: str) -> str:
    head, dot, rest = text.partition(". ")
    return head if dot and rest else text.rstrip(".")


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[nn.Module, dict[str, Any]]:
    """Load an edgecnn checkpoint (``weights_only=True``) -> ``(module in eval mode, info)``.

    ``info`` holds ``arch``, ``arch_kwargs`` and ``extra``. Raises :class:`ModelLoadError` for a
    missing, corrupt or non-edgecnn file.
    """
    p = Path(path)
    if not p.is_file():
        raise ModelLoadError(f"checkpoint '{p}' does not exist: check the path")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for corrupt or unsafe files
        raise ModelLoadError(
            f"cannot read checkpoint '{p}' ({_load_error_reason(e)}): it must be a file written by "
            "'edgecnn train' or edgecnn.models.checkpoint.save_checkpoint"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelLoadError(
            f"'{p}' is not an edgecnn checkpoint (no 'format': '{FORMAT}' entry): "
            "create one with 'edgecnn train' or save_checkpoint(model, path, arch, arch_kwargs)"
        )
    if payload.get("version") != VERSION:
        raise ModelLoadError(
            f"checkpoint '{p}' has version {payload.get('version')}, this edgecnn reads {VERSION}"
        )
    arch, kwargs = payload["arch"], dict(payload.get("arch_kwargs") or {})
    model = build_arch(arch, kwargs)
    state = payload["state_dict"]
    _resize_to_state(model, state)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ModelLoadError(
            f"checkpoint '{p}' does not match architecture '{arch}': {str(e).splitlines()[0]}"
        ) from None
    model.eval()
    info = {"arch": arch, "arch_kwargs": kwargs, "extra": dict(payload.get("extra") or {})}
    return model, info
