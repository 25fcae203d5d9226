"""Shared, per-process cached data and trained models for the compression-area tests.

Plain cached functions rather than conftest fixtures, so the area's test files stay self-contained.
Training is short (a few epochs on the 3500-image MNIST-5k training split, 1 thread: robust on a shared machine).
"""

from __future__ import annotations

import copy
import functools

import torch

from edgecnn.data import DataSplits, load_mnist5k_splits
from edgecnn.models.edge import build_edge_model, train_model


@functools.cache
def mnist() -> DataSplits:
    return load_mnist5k_splits()


@functools.cache
def _trained(name: str, epochs: int, width: float) -> torch.nn.Module:
    d = mnist()
    torch.manual_seed(0)
    kwargs = {"width": width} if name == "edge-mobilenet" else {}
    m = build_edge_model(name, **kwargs)
    train_model(m, d.x_train, d.y_train, epochs=epochs, seed=0, threads=1)
    return m.eval()


def trained(name: str = "edge-resnet", epochs: int = 4, width: float = 1.0) -> torch.nn.Module:
    """A fresh copy of a (cached) trained model; callers may modify it."""
    return copy.deepcopy(_trained(name, epochs, width))
