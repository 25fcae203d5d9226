"""Tests of BN folding (PyTorch and ONNX): exact outputs, BN gone, MACs unchanged."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from compress_helpers import export_with_batchnorm
from edgecnn.compress.fold import (
    count_batchnorm,
    count_onnx_ops,
    fold_batchnorm,
    fold_batchnorm_onnx,
)
from edgecnn.models.checkpoint import load_checkpoint, save_checkpoint
from edgecnn.models.edge import EDGE_MODELS, build_edge_model


def _random_bn_stats(m: nn.Module) -> nn.Module:
    g = torch.Generator().manual_seed(0)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            n = mod.num_features
            mod.running_mean.copy_(torch.rand(n, generator=g) * 2 - 1)
            mod.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
            mod.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            mod.bias.data.copy_(torch.rand(n, generator=g) - 0.5)
    return m.eval()


def _macs(m: nn.Module) -> int:
    """Independent MAC count from forward hooks: conv = out elems * Cin/g * kh * kw."""
    total = 0

    def hook(mod, inp, out):
        nonlocal total
        if isinstance(mod, nn.Conv2d):
            total += (
                out.numel()
                * mod.in_channels
                // mod.groups
                * mod.kernel_size[0]
                * mod.kernel_size[1]
            )
        elif isinstance(mod, nn.Linear):
            total += out.numel() * mod.in_features

    hs = [x.register_forward_hook(hook) for x in m.modules()]
    m(torch.zeros(1, 1, 28, 28))
    for h in hs:
        h.remove()
    return total


@pytest.mark.parametrize("name", sorted(EDGE_MODELS))
def test_torch_fold_exact_and_bn_gone(name):
    torch.manual_seed(0)
    m = _random_bn_stats(build_edge_model(name))
    f, res = fold_batchnorm(m)
    x = torch.randn(8, 1, 28, 28)
    with torch.no_grad():
        a, b = m(x), f(x)
    assert float((a - b).abs().max() / a.abs().max()) < 1e-5
    assert count_batchnorm(f) == 0 and count_batchnorm(m) > 0  # input untouched
    assert len(res.folded) == count_batchnorm(m) and not res.unfoldable
    assert _macs(f) == _macs(m)
    # conv + BN + ReLU/ReLU6 groups are reported as fused
    assert any(len(g) == 3 for g in res.fused)


def test_folded_checkpoint_roundtrip(tmp_path):
    m = _random_bn_stats(build_edge_model("edge-resnet"))
    f, _ = fold_batchnorm(m)
    save_checkpoint(f, tmp_path / "f.pt", "edge-resnet", {})
    g, _ = load_checkpoint(tmp_path / "f.pt")
    x = torch.randn(2, 1, 28, 28)
    assert count_batchnorm(g) == 0
    assert torch.allclose(g(x), f(x), atol=1e-6)


def test_preactivation_bn_reported_unfoldable():
    class PreAct(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv0 = nn.Conv2d(1, 4, 3, padding=1)
            self.bn = nn.BatchNorm2d(4)
            self.conv = nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            y = self.conv0(x)
            return self.conv(torch.relu(self.bn(y + y)))  # BN after an add: DenseNet-like

    m = _random_bn_stats(PreAct())
    f, res = fold_batchnorm(m)
    assert not res.folded and len(res.unfoldable) == 1 and "pre-activation" in res.unfoldable[0]
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(m(x), f(x))


@pytest.mark.parametrize("name", sorted(EDGE_MODELS))
def test_onnx_fold_matches_ort(name):
    torch.manual_seed(0)
    m = _random_bn_stats(build_edge_model(name))
    proto = export_with_batchnorm(m)
    n_bn = count_onnx_ops(proto, "BatchNormalization")
    assert n_bn == count_batchnorm(m)
    folded, res = fold_batchnorm_onnx(proto)
    onnx.checker.check_model(folded)
    assert count_onnx_ops(folded, "BatchNormalization") == 0 and len(res.folded) == n_bn
    assert count_onnx_ops(folded, "Conv") == count_onnx_ops(proto, "Conv")
    x = np.random.default_rng(0).standard_normal((1, 1, 28, 28)).astype(np.float32)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL

    def run(p):
        s = ort.InferenceSession(p.SerializeToString(), so)
        return s.run(None, {s.get_inputs()[0].name: x})[0]

    a, b = run(proto), run(folded)
    assert np.abs(a - b).max() / np.abs(a).max() < 1e-5


@pytest.mark.parametrize("name", sorted(EDGE_MODELS))
def test_onnx_fold_looks_through_deduplicated_constants(name):
    """A fresh model's BN statistics are equal, so the exporter shares them through Identity."""
    torch.manual_seed(0)
    m = build_edge_model(name).eval()
    with torch.no_grad():
        for c in m.modules():
            if isinstance(c, nn.Conv2d) and c.bias is not None:
                c.bias.zero_()
    proto = export_with_batchnorm(m)
    assert count_onnx_ops(proto, "Identity") > 0
    n_bn = count_onnx_ops(proto, "BatchNormalization")
    folded, res = fold_batchnorm_onnx(proto)
    onnx.checker.check_model(folded)
    assert count_onnx_ops(folded, "BatchNormalization") == 0 and len(res.folded) == n_bn
    assert count_onnx_ops(folded, "Identity") < count_onnx_ops(proto, "Identity")
    x = np.random.default_rng(0).standard_normal((1, 1, 28, 28)).astype(np.float32)

    def run(p):
        s = ort.InferenceSession(p.SerializeToString())
        return s.run(None, {s.get_inputs()[0].name: x})[0]

    a, b = run(proto), run(folded)
    assert np.abs(a - b).max() / np.abs(a).max() < 1e-5
