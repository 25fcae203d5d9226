"""The PyTorch frontend's op classification: one registered handler per ATen op family."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgecnn.graph import OpKind
from edgecnn.graph import from_torch as ft
from edgecnn.graph.from_torch import CLASSIFIERS, classifies, classify, graph_from_module

_NAME_TABLES = {
    "activations": ft._ACTIVATIONS,
    "elementwise": ft._ELEMENTWISE,
    "simple": ft._SIMPLE,
    "pools": ft._POOLS,
    "reduce": ft._REDUCE,
    "attention": dict.fromkeys(ft._ATTENTION),
}


@pytest.mark.parametrize("table", sorted(_NAME_TABLES))
def test_every_named_packet_has_a_classifier(table):
    missing = [p for p in _NAME_TABLES[table] if p not in CLASSIFIERS]
    assert not missing, missing


def test_registering_a_packet_twice_raises():
    with pytest.raises(ValueError, match="duplicate ATen classifier for 'relu'"):
        classifies("relu")(lambda packet, args, static: (OpKind.UNKNOWN, {}))
    assert CLASSIFIERS["relu"] is ft._activation


def test_unregistered_packet_is_unknown():
    assert classify("no_such_aten_op", (), set()) == (OpKind.UNKNOWN, {"_label": "no_such_aten_op"})


class _Functional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(8, 3, 3, 3))
        self.proj = nn.Parameter(torch.randn(8, 5))

    def forward(self, x):
        y = F.relu(F.conv2d(x, self.w, stride=2, padding=1))  # 1x8x4x4
        tokens = y.flatten(2)  # 1x8x16
        attn = tokens @ tokens.transpose(1, 2)  # two activations: MATMUL
        lin = tokens.transpose(1, 2) @ self.proj  # static operand: LINEAR
        pooled = y.mean((2, 3))  # spatial mean: global average pooling
        red = lin.mean(1)  # any other mean: a reduction
        return attn.sum() + pooled.sum() + red.sum()


def test_functional_ops_are_classified_by_family():
    graph = graph_from_module(_Functional(), (1, 3, 8, 8))
    ops = [(layer.op, layer.attrs.get("fn"), layer.attrs.get("mode")) for layer in graph.layers]
    conv = graph.layers[0]
    assert conv.op is OpKind.CONV and conv.attrs["stride"] == (2, 2)
    assert conv.attrs["padding"] == (1, 1, 1, 1) and conv.attrs["kernel"] == (3, 3)
    assert (OpKind.ACTIVATION, "relu", None) in ops
    assert (OpKind.MATMUL, None, None) in ops and (OpKind.LINEAR, None, None) in ops
    assert (OpKind.AVGPOOL, None, "global") in ops
    assert (OpKind.REDUCE, "mean", None) in ops
    assert graph.meta["unknown_ops"] == []
