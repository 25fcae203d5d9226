"""Denormal-range attention masks: the IR's ``static_min`` and the predictor's masked features.

A finite additive mask whose exp() is a denormal float (Swin's -100) makes the softmax and the
product after it slow on x86; -inf or -1e9 masks give exact zeros and must not be flagged.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgecnn.analysis.latency_predictor import DENORMAL_MASK_RANGE, kernels
from edgecnn.graph.from_torch import graph_from_module
from edgecnn.graph.ir import STATIC_MIN_ATTR, OpKind
from edgecnn.models.resolve import load_graph


class MaskedAttention(nn.Module):
    """Single-head attention over 16 tokens with a mask built in forward, as Swin builds its
    shifted-window mask: zeros, a pattern written by slicing, then masked_fill(fill)."""

    def __init__(self, fill: float) -> None:
        super().__init__()
        self.fill = fill
        self.qkv = nn.Linear(32, 96)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        a = q @ k.transpose(-2, -1)
        mask = x.new_zeros((16, 16))
        mask[:, 8:] = 1.0
        mask = mask.masked_fill(mask != 0, self.fill)
        a = (a + mask).softmax(-1)
        return a @ v


def _flags(graph):
    ks = kernels(graph, "fp32")
    soft = [k for k in ks if k.type == "softmax"]
    mm = [k for k in ks if k.type == "matmul"]
    return soft, mm


def test_torch_frontend_records_the_fill_and_flags_the_product():
    g = graph_from_module(MaskedAttention(-100.0), (1, 16, 32))
    adds = [la for la in g.layers if la.op is OpKind.ELEMENTWISE and STATIC_MIN_ATTR in la.attrs]
    assert len(adds) == 1 and adds[0].attrs[STATIC_MIN_ATTR] == -100.0
    soft, mm = _flags(g)
    assert len(soft) == 1 and soft[0].features["masked_bytes"] == soft[0].features["out_bytes"]
    assert len(mm) == 2  # q @ k^T reads no softmax; probabilities @ v does
    qk, pv = mm
    assert qk.features["masked_macs"] == 0.0
    assert pv.features["masked_macs"] == pv.features["macs"] == 16 * 16 * 32


@pytest.mark.parametrize("fill", [-1e9, float("-inf"), -50.0, -200.0])
def test_masks_outside_the_denormal_range_are_not_flagged(fill):
    lo, hi = DENORMAL_MASK_RANGE
    assert not lo < fill < hi
    soft, mm = _flags(graph_from_module(MaskedAttention(fill), (1, 16, 32)))
    assert soft[0].features["masked_bytes"] == 0.0
    assert all(k.features["masked_macs"] == 0.0 for k in mm)


def test_onnx_frontend_reads_the_mask_values(tmp_path):
    from edgecnn.runtime.export import export_onnx

    path = export_onnx(MaskedAttention(-100.0).eval(), tmp_path / "m.onnx", (1, 16, 32))
    g = load_graph(str(path))
    lows = [la.attrs[STATIC_MIN_ATTR] for la in g.layers if STATIC_MIN_ATTR in la.attrs]
    assert min(lows) == pytest.approx(-100.0)
    soft, mm = _flags(g)
    assert soft[0].features["masked_bytes"] > 0
    assert [k.features["masked_macs"] > 0 for k in mm] == [False, True]


def test_swin_t_has_five_masked_blocks():
    # stage depths 2, 2, 6, 2: every second block shifts its windows (1 + 1 + 3 + 1), except in
    # the last stage, whose 7x7 map equals the window, so torchvision does not shift: 5
    g = load_graph("swin_t")
    soft, mm = _flags(g)
    masked_soft = [k for k in soft if k.features["masked_bytes"] > 0]
    masked_mm = [k for k in mm if k.features["masked_macs"] > 0]
    assert len(soft) == 12 and len(masked_soft) == 5 and len(masked_mm) == 5
    # each masked product is probabilities (49 x 49 per window and head) times values (x 32)
    assert all(k.features["macs"] == k.features["gemms"] * 49 * 49 * 32 for k in masked_mm)


def test_vit_has_no_masked_softmax():
    soft, mm = _flags(load_graph("vit_b_32"))
    assert not any(k.features["masked_bytes"] for k in soft)
    assert not any(k.features["masked_macs"] for k in mm)
