"""Adaptive BatchNorm (``bn_reestimate``): exact statistics, and its gain after pruning."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from compress_helpers import mnist, trained
from edgecnn.compress.adabn import reestimate_batchnorm
from edgecnn.compress.recipe import run_recipe
from edgecnn.errors import EdgecnnError


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Conv2d(8, 4, 3, stride=2),
        nn.BatchNorm2d(4),
    )


def test_statistics_are_the_inputs_mean_and_unbiased_variance():
    m = _net().eval()
    x = torch.randn(64, 3, 10, 10) * 3 + 1
    seen: dict[nn.Module, torch.Tensor] = {}
    hooks = [
        bn.register_forward_pre_hook(lambda mod, inp: seen.__setitem__(mod, inp[0].detach()))
        for bn in (m[1], m[5])
    ]
    n = reestimate_batchnorm(m, x, batch_size=64)  # one batch: exact statistics
    for h in hooks:
        h.remove()
    assert n == 2
    for bn in (m[1], m[5]):
        a = seen[bn].transpose(0, 1).reshape(bn.num_features, -1)
        torch.testing.assert_close(bn.running_mean, a.mean(1))
        torch.testing.assert_close(bn.running_var, a.var(1, unbiased=True))
        assert bn.momentum == 0.1  # restored
    assert not m.training and not m[3].training  # dropout was off, eval mode restored


def test_smaller_batches_average_the_batch_statistics():
    m = _net().eval()
    x = torch.randn(60, 3, 10, 10)
    reestimate_batchnorm(m, x, batch_size=20)
    ref = _net().eval()
    means = []
    for i in range(0, 60, 20):
        reestimate_batchnorm(ref, x[i : i + 20], batch_size=20)
        means.append(ref[1].running_mean.clone())
    torch.testing.assert_close(m[1].running_mean, torch.stack(means).mean(0))


def test_recovers_accuracy_after_pruning_without_fine_tuning(tmp_path):
    data = mnist()
    recipe = {
        "steps": [
            {
                "step": "prune",
                "target_macs_reduction": 0.5,
                "rounds": 1,
                "finetune_epochs": 0,
                "sensitivity_scan": False,
            },
            {"step": "bn_reestimate", "samples": 500},
        ]
    }
    rep = run_recipe(trained(), recipe, data, tmp_path / "out", measure_runs=1)
    pruned, adapted = rep.steps[1], rep.steps[2]
    d = adapted.details
    assert d.bn_layers > 0 and d.samples == 500
    # before/after are the PyTorch accuracies of the ONNX models the report measured
    assert d.accuracy_before == pytest.approx(pruned.accuracy, abs=0.002)
    assert d.accuracy_after == pytest.approx(adapted.accuracy, abs=0.002)
    assert d.gain_points == pytest.approx(100 * (d.accuracy_after - d.accuracy_before))
    assert adapted.macs == pruned.macs  # statistics only: the network is unchanged
    assert d.gain_points > 1.0, d  # stale statistics after pruning cost accuracy


def test_refused_without_batchnorm(tmp_path):
    recipe = {"steps": [{"step": "fold"}, {"step": "bn_reestimate"}]}
    with pytest.raises(EdgecnnError, match="no BatchNorm layers"):
        run_recipe(trained(), recipe, mnist(), tmp_path / "out", measure_runs=1)
    assert not (tmp_path / "out").exists()
