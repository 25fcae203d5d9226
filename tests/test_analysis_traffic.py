"""DRAM traffic and peak memory against hand-computed values."""

import torch
from torch import nn

from edgecnn.analysis import profile
from edgecnn.analysis.fusion import fused_groups
from edgecnn.analysis.memory import live_bytes_per_step, peak_activation_bytes
from edgecnn.graph.from_torch import graph_from_module


def _chain():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1))


def test_traffic_without_onchip_buffer():
    g = graph_from_module(_chain(), (1, 3, 8, 8))
    t = profile(g, "fp32").totals
    conv1 = (8 * 3 * 9 + 8) + 3 * 64 + 8 * 64  # weights+bias, input read, output write
    conv2 = (4 * 8 + 4) + 8 * 64 + 4 * 64  # the intermediate map is read back from DRAM
    assert t.dram_bytes == 4 * (conv1 + conv2)
    assert t.dram_weight_bytes == 4 * (8 * 3 * 9 + 8 + 4 * 8 + 4)


def test_traffic_with_onchip_buffer_keeps_fitting_maps():
    g = graph_from_module(_chain(), (1, 3, 8, 8))
    no_buf = profile(g, "fp32").totals.dram_bytes
    fits = profile(g, "fp32", onchip_bytes=8 * 64 * 4).totals.dram_bytes
    too_small = profile(g, "fp32", onchip_bytes=8 * 64 * 4 - 1).totals.dram_bytes
    assert no_buf - fits == 2 * 8 * 64 * 4  # the 8x8x8 map is neither written nor read
    assert too_small == no_buf


def test_batchnorm_folded_and_activation_fused():
    m = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU())
    g = graph_from_module(m, (1, 3, 10, 10))
    groups = fused_groups(g)
    assert len(groups) == 1 and groups[0].folded_bn is not None
    assert groups[0].fused_activation is not None
    t = profile(g).totals
    # folded weights gain a bias; no BN statistics are read; the 8x8x8 map is written once
    assert t.dram_bytes == 4 * ((8 * 3 * 9 + 8) + 3 * 100 + 8 * 64)


def test_preactivation_batchnorm_is_not_folded():
    class PreAct(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(4, 4, 1)
            self.b = nn.Conv2d(4, 4, 1)
            self.bn = nn.BatchNorm2d(8)

        def forward(self, x):
            return self.bn(torch.cat([self.a(x), self.b(x)], 1))

    groups = fused_groups(graph_from_module(PreAct(), (1, 4, 6, 6)))
    assert all(g.folded_bn is None for g in groups)
    assert [g.anchor.op.value for g in groups][-1] == "batchnorm"


def test_peak_memory_on_branching_graph():
    class Branch(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(4, 4, 1)
            self.b = nn.Conv2d(4, 8, 1)
            self.c = nn.Conv2d(8, 4, 1)

        def forward(self, x):
            a = self.a(x)  # x (256), a (256)
            b = self.c(self.b(x))  # x, a, b1 (512) -> x dies; a, b1, b (256)
            return a + b  # a, b, out (256)

    g = graph_from_module(Branch(), (1, 4, 8, 8))
    steps = live_bytes_per_step(g, 1)
    assert steps == [512, 1024, 1024, 768]
    assert peak_activation_bytes(g, 4) == 4 * 1024
    assert profile(g).totals.peak_activation_bytes == 4 * 1024


def test_views_are_free():
    class Flat(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(48, 10)

        def forward(self, x):
            return self.fc(torch.flatten(x, 1))

    g = graph_from_module(Flat(), (1, 3, 4, 4))
    assert len(g.layers) == 1  # the flatten is a view of the input
    assert profile(g).totals.dram_bytes == 4 * (48 * 10 + 10 + 48 + 10)


def test_profile_takes_the_devices_onchip_memory_unless_given():
    from edgecnn.analysis import profile
    from edgecnn.analysis.devices import get_device

    g = graph_from_module(_chain(), (1, 3, 8, 8))
    onchip = get_device("k210").onchip_bytes
    assert onchip == 6 * 2**20
    assert profile(g, "int8", "k210").onchip_bytes == onchip
    assert profile(g, "int8", "k210", onchip_bytes=1024).onchip_bytes == 1024
    assert profile(g, "int8", "k210", onchip_bytes=0).onchip_bytes == 0
    assert profile(g, "int8").onchip_bytes == 0
    assert profile(g, "int8", "hailo-8").onchip_bytes == 0  # the catalog gives none
