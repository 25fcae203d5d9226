"""Shared, per-process cached data and trained models for the compression-area tests.

Plain cached functions rather than conftest fixtures, so the area's test files stay self-contained.
Training is short (a few epochs on the 3500-image MNIST-5k training split, 1 thread: robust on a shared machine).
"""

from __future__ import annotations

import copy
import functools
import io

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


def hook_macs(m: torch.nn.Module, input_shape: tuple[int, ...] = (1, 1, 28, 28)) -> int:
    """Independent MAC count from forward hooks: conv = out elems * Cin/g * kh * kw,
    linear = out elems * in_features (bias, BN and activations ignored)."""
    total = 0

    def hook(mod, inp, out):
        nonlocal total
        if isinstance(mod, torch.nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1]
            total += out.numel() * (mod.in_channels // mod.groups) * k
        elif isinstance(mod, torch.nn.Linear):
            total += out.numel() * mod.in_features

    hs = [x.register_forward_hook(hook) for x in m.modules()]
    try:
        with torch.no_grad():
            m(torch.zeros(input_shape))
    finally:
        for h in hs:
            h.remove()
    return total


def export_with_batchnorm(m: torch.nn.Module):
    """The TorchScript export of ``m`` at 1x1x28x28 with its BatchNorm nodes kept."""
    buf = io.BytesIO()
    torch.onnx.export(
        m,
        (torch.zeros(1, 1, 28, 28),),
        buf,
        dynamo=False,
        opset_version=17,
        do_constant_folding=False,
        training=torch.onnx.TrainingMode.PRESERVE,
    )
    import onnx

    return onnx.load_from_string(buf.getvalue())
