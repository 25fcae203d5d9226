"""Closed-form cost checks: each op's MACs/FLOPs computed by hand, through the PyTorch frontend."""

import pytest
import torch
from torch import nn

from edgecnn.analysis import profile
from edgecnn.analysis.costs import COST_FNS, layer_cost
from edgecnn.graph.from_torch import graph_from_module
from edgecnn.graph.ir import Layer, OpKind, TensorInfo


def _only(graph, kind):
    layers = graph.of_kind(kind)
    assert len(layers) == 1, [(x.name, x.op) for x in graph.layers]
    return layers[0]


def test_resnet18_stem_conv_macs():
    g = graph_from_module(nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False), (1, 3, 224, 224))
    conv = _only(g, OpKind.CONV)
    # 64 output channels x 112 x 112 outputs x 3 input channels x 7 x 7 taps
    assert layer_cost(conv).macs == 64 * 112 * 112 * 3 * 7 * 7 == 118_013_952
    assert layer_cost(conv).flops == 2 * 118_013_952


def test_depthwise_separable_block_counted_with_groups():
    """The published study ignores `group` and overcounts depthwise convs by C_in; we don't."""
    block = nn.Sequential(
        nn.Conv2d(32, 32, 3, padding=1, groups=32, bias=False),
        nn.BatchNorm2d(32),
        nn.ReLU6(),
        nn.Conv2d(32, 64, 1, bias=False),
    )
    g = graph_from_module(block, (1, 32, 56, 56))
    dw, pw = g.of_kind(OpKind.CONV)
    dw_macs = 32 * 56 * 56 * 3 * 3  # one 3x3 filter per channel
    pw_macs = 64 * 56 * 56 * 32
    assert layer_cost(dw).macs == dw_macs
    assert layer_cost(pw).macs == pw_macs
    assert layer_cost(dw).macs * 32 != dw_macs  # the group-blind count would be 32x larger
    result = profile(g)
    assert result.totals.macs == dw_macs + pw_macs
    # params: 32*9 (dw) + 2*32 (BN affine) + 64*32 (pw)
    assert result.totals.params == 32 * 9 + 64 + 64 * 32


def test_grouped_and_strided_conv():
    g = graph_from_module(nn.Conv2d(64, 128, 3, stride=2, padding=1, groups=4), (2, 64, 28, 28))
    conv = _only(g, OpKind.CONV)
    assert conv.outputs[0].shape == (2, 128, 14, 14)
    # stride is applied once (through the output size), groups divide the reduction
    assert layer_cost(conv).macs == 2 * 128 * 14 * 14 * (64 // 4) * 9


def test_dilated_conv_and_transpose():
    g = graph_from_module(nn.Conv2d(8, 8, 3, padding=2, dilation=2), (1, 8, 20, 20))
    assert layer_cost(_only(g, OpKind.CONV)).macs == 8 * 20 * 20 * 8 * 9
    g = graph_from_module(nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1), (1, 16, 10, 10))
    t = _only(g, OpKind.CONV_TRANSPOSE)
    assert t.outputs[0].shape == (1, 8, 20, 20)
    assert layer_cost(t).macs == 16 * 10 * 10 * 8 * 16


def test_fully_connected():
    g = graph_from_module(nn.Linear(512, 1000), (2, 512))
    fc = _only(g, OpKind.LINEAR)
    assert layer_cost(fc).macs == 2 * 512 * 1000  # not 512 * 512 * 1000
    assert profile(g).totals.params == 512 * 1000 + 1000


def test_pooling_and_elementwise():
    g = graph_from_module(nn.MaxPool2d(3, 2, 1), (1, 64, 112, 112))
    pool = _only(g, OpKind.MAXPOOL)
    assert pool.outputs[0].shape == (1, 64, 56, 56)
    assert layer_cost(pool).flops == 64 * 56 * 56 * 9 and layer_cost(pool).macs == 0
    g = graph_from_module(nn.AdaptiveAvgPool2d(1), (1, 64, 7, 7))
    assert layer_cost(_only(g, OpKind.AVGPOOL)).flops == 64 * 49

    class Residual(nn.Module):
        def forward(self, x):
            return torch.relu(x + x * 2.0)

    g = graph_from_module(Residual(), (1, 4, 5, 5))
    kinds = [layer.op for layer in g.layers]
    assert kinds == [OpKind.ELEMENTWISE, OpKind.ELEMENTWISE, OpKind.ACTIVATION]
    assert all(layer_cost(x).flops == 100 and layer_cost(x).macs == 0 for x in g.layers)


def test_attention_matmuls_are_macs():
    class SelfAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.mha = nn.MultiheadAttention(64, 4, batch_first=True)

        def forward(self, x):
            return self.mha(x, x, x, need_weights=False)[0]

    g = graph_from_module(SelfAttention(), (2, 10, 64))
    macs = profile(g).totals.macs
    # q, k, v and output projections: 4 * B*L*E*E; scores and weighted sum: 2 * B*L*L*E
    assert macs == 4 * 2 * 10 * 64 * 64 + 2 * 2 * 10 * 10 * 64


def test_unknown_op_is_reported_not_zero():
    layer = Layer("mystery", OpKind.UNKNOWN, [TensorInfo("x", (1, 3))], [TensorInfo("y", (1, 3))])
    assert layer_cost(layer) is None

    class Odd(nn.Module):
        def forward(self, x):
            return torch.fft.rfft(x).real

    result = profile(graph_from_module(Odd(), (1, 8)))
    assert result.totals.unknown_ops and "fft" in result.totals.unknown_ops[0]["op"]


def test_every_kind_but_unknown_has_a_cost_function():
    assert set(COST_FNS) == set(OpKind) - {OpKind.UNKNOWN}


@pytest.mark.parametrize("precision,bpe", [("fp32", 4), ("fp16", 2), ("int8", 1)])
def test_bytes_scale_with_precision(precision, bpe):
    g = graph_from_module(nn.Conv2d(3, 8, 3), (1, 3, 10, 10))
    row = profile(g, precision).layers[0]
    assert row.weight_bytes == (8 * 3 * 9 + 8) * bpe
    assert row.input_bytes == 300 * bpe and row.output_bytes == 8 * 8 * 8 * bpe


def test_module_weights_untouched_and_mode_restored():
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train()
    before = [p.detach().clone() for p in m.parameters()]
    graph_from_module(m, (1, 3, 8, 8))
    assert m.training
    assert all(torch.equal(a, b) for a, b in zip(before, m.parameters(), strict=True))


def test_fused_attention_kernels_are_counted():
    """A fused SDPA kernel (as CPU eager runs ViT attention) is counted like its matmuls."""
    q = TensorInfo("q", (2, 4, 10, 16))
    kv = TensorInfo("k", (2, 4, 12, 16))
    sdpa = Layer("attn", OpKind.ATTENTION, [q, kv, kv], [TensorInfo("o", (2, 4, 10, 16))])
    cost = layer_cost(sdpa)
    assert cost.macs == 2 * (2 * 4 * 10 * 12 * 16)  # Q K^T and A V
    x = TensorInfo("x", (2, 10, 64))
    mha = Layer(
        "mha",
        OpKind.ATTENTION,
        [x, x, x],
        [x],
        attrs={"fused_projections": True, "num_heads": 4, "embed_dim": 64},
    )
    # q, k, v, out projections (4*B*L*E*E) plus scores and weighted sum (2*B*L*L*E)
    assert layer_cost(mha).macs == 4 * 2 * 10 * 64 * 64 + 2 * 2 * 10 * 10 * 64


def test_functional_sdpa_recorded_on_meta():
    class Attn(nn.Module):
        def forward(self, x):
            q = x.view(2, 10, 4, 16).transpose(1, 2)
            return torch.nn.functional.scaled_dot_product_attention(q, q, q)

    assert profile(graph_from_module(Attn(), (2, 10, 64))).totals.macs == 2 * (2 * 4 * 10 * 10 * 16)
