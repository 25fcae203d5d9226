"""The architecture tag a built model carries: registry name and builder arguments."""

from __future__ import annotations

from typing import Any

from torch import nn

ARCH_ATTR = "_edgecnn_arch"
ARCH_KWARGS_ATTR = "_edgecnn_arch_kwargs"


def tag_arch(model: nn.Module, arch: str, arch_kwargs: dict[str, Any]) -> nn.Module:
    """Record the registry name and arguments ``model`` was built from; returns ``model``."""
    setattr(model, ARCH_ATTR, arch)
    setattr(model, ARCH_KWARGS_ATTR, dict(arch_kwargs))
    return model


def module_arch(model: nn.Module) -> tuple[str | None, dict[str, Any]]:
    """``(arch, arch_kwargs)`` of a tagged model, ``(None, {})`` for any other module."""
    arch = getattr(model, ARCH_ATTR, None)
    kwargs = getattr(model, ARCH_KWARGS_ATTR, None)
    return (str(arch) if arch else None), dict(kwargs or {})
