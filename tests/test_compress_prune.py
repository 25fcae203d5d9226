"""Tests of pruning: structured (channels removed, still valid, fewer MACs) and magnitude."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from compress_helpers import hook_macs, mnist, trained
from edgecnn.compress.prune import (
    count_macs,
    layer_sensitivity,
    magnitude_prune,
    plot_sensitivity,
    sparsity_stats,
    structured_prune,
)
from edgecnn.models.checkpoint import load_checkpoint, save_checkpoint
from edgecnn.models.edge import build_edge_model, evaluate, train_model
from edgecnn.runtime.export import export_onnx_bytes

SHAPE = (1, 1, 28, 28)


@pytest.mark.parametrize(
    ("name", "importance"),
    [
        ("edge-resnet", "l1"),
        ("edge-mobilenet", "l1"),
        ("edge-resnet", "bn"),
        ("edge-mobilenet", "l2"),
    ],
)
def test_structured_prune_halves_macs_and_stays_valid(name, importance, tmp_path):
    torch.manual_seed(0)
    m = build_edge_model(name).eval()
    p, res = structured_prune(m, SHAPE, 0.5, importance=importance, rounds=2)
    assert count_macs(p, SHAPE) <= 0.5 * count_macs(m, SHAPE) == 0.5 * res.macs_before
    assert res.macs_after == count_macs(p, SHAPE) == hook_macs(p)  # analysis vs hooks
    assert res.params_after == sum(q.numel() for q in p.parameters())
    assert res.params_after < res.params_before
    convs = [c for c in p.modules() if isinstance(c, nn.Conv2d)]
    assert any(
        c.out_channels < o.out_channels
        for c, o in zip(convs, [c for c in m.modules() if isinstance(c, nn.Conv2d)], strict=True)
    )
    # depthwise convs stay depthwise after pruning
    for c in convs:
        if c.groups > 1:
            assert c.groups == c.in_channels == c.out_channels
    x = torch.randn(2, 1, 28, 28)
    assert p(x).shape == (2, 10)
    # the pruned model exports and ORT agrees with PyTorch
    sess = ort.InferenceSession(export_onnx_bytes(p, SHAPE))
    got = sess.run(None, {sess.get_inputs()[0].name: x[:1].numpy()})[0]
    np.testing.assert_allclose(got, p(x[:1]).detach().numpy(), rtol=1e-3, atol=1e-4)
    # pruned checkpoints load back with their new shapes
    save_checkpoint(p, tmp_path / "p.pt", name, {})
    q, _ = load_checkpoint(tmp_path / "p.pt")
    assert torch.allclose(q(x), p(x), atol=1e-6)


def test_structured_prune_with_finetune_keeps_accuracy():
    d = mnist()
    m = trained("edge-resnet")
    base = evaluate(m, d.x_test, d.y_test)

    def ft(model, r):
        train_model(model, d.x_train, d.y_train, epochs=2, lr=5e-3, seed=r, threads=1)
        return evaluate(model, d.x_test, d.y_test)

    p, res = structured_prune(m, SHAPE, 0.5, importance="l1", rounds=2, finetune=ft, round_to=8)
    assert all(c.out_channels % 8 == 0 for c in p.modules() if isinstance(c, nn.Conv2d))
    assert res.macs_reduction >= 0.5
    assert base - evaluate(p, d.x_test, d.y_test) <= 0.01


def test_taylor_importance_uses_gradients():
    d = mnist()
    m = trained("edge-resnet")
    p, res = structured_prune(
        m, SHAPE, 0.3, importance="taylor", calib=(d.x_train[:128], d.y_train[:128])
    )
    assert res.macs_reduction >= 0.3 and p(torch.zeros(SHAPE)).shape == (1, 10)


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_magnitude_prune_sparsity(scope):
    torch.manual_seed(0)
    m = build_edge_model("edge-resnet")
    p, stats = magnitude_prune(m, 0.6, scope=scope)
    assert stats[0].sparsity == 0.0  # first conv left dense
    rest = stats[1:]
    total = sum(s.zeros for s in rest) / sum(s.weights for s in rest)
    assert abs(total - 0.6) < 0.01
    if scope == "layer":
        assert all(abs(s.sparsity - 0.6) < 0.02 for s in rest)
    else:
        assert max(s.sparsity for s in rest) - min(s.sparsity for s in rest) > 0.05
    assert all(s.zeros == 0 for s in sparsity_stats(m)[1:])  # input model untouched
    assert count_macs(p, SHAPE) == count_macs(m, SHAPE)


def test_sensitivity_scan_and_plot(tmp_path):
    d = mnist()
    m = trained("edge-resnet")
    scan = layer_sensitivity(
        m, lambda mod: evaluate(mod, d.x_test[:300], d.y_test[:300]), ratios=(0.25, 0.75)
    )
    assert len(scan) >= 8
    for row in scan.values():
        assert [r for r, _ in row] == [0.25, 0.75]
    # pruning more channels of a layer never helps much: 75% is at most marginally above 25%
    assert sum(row[1][1] <= row[0][1] + 0.01 for row in scan.values()) >= len(scan) - 1
    plot_sensitivity(scan, tmp_path / "s.png")
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
