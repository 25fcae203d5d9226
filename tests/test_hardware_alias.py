"""One notion of alias (views that move no data) in analysis and hardware, on real graphs."""

import warnings

import pytest
import torch
from torch import nn

from edgecnn.analysis import profile
from edgecnn.analysis.fusion import fused_groups
from edgecnn.analysis.residency import Step, allocate_resident
from edgecnn.graph.ir import ALIAS_KINDS, MOVES_DATA, OpKind
from edgecnn.hardware import load_accelerator, simulate
from edgecnn.hardware.workload import build_workload
from edgecnn.models import load_graph
from edgecnn.models.zoo import build_zoo_model

ZOO = ["resnet18", "googlenet", "mobilenet_v2", "inception_v3"]


class _Views(nn.Module):
    """Concat, split, a strided slice (a view), a gather, transpose, flatten and dropout."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(3, 8, 1)
        self.c = nn.Conv2d(16, 16, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 10)
        self.drop = nn.Dropout(0.5)
        self.register_buffer("idx", torch.tensor([0, 2, 4, 6]))

    def forward(self, x):
        y = torch.cat([self.a(x), self.b(x)], dim=1)
        y = torch.relu(self.c(y))
        p, q = torch.split(y, 8, dim=1)
        z = torch.index_select((p + q)[:, :, :8, :8].transpose(2, 3), 1, self.idx)
        return self.fc(self.drop(torch.flatten(z, 1)))


def _onnx_graph(tmp_path, model=None, shape=(1, 3, 16, 16)):
    path = tmp_path / "model.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            (model or _Views()).eval(),
            (torch.randn(*shape),),
            str(path),
            opset_version=17,
            dynamo=False,
        )
    return load_graph(str(path))


def test_alias_table_is_complete_and_the_set_derives_from_it():
    assert set(MOVES_DATA) == set(OpKind)
    assert {k for k in OpKind if k.is_alias} == ALIAS_KINDS
    assert ALIAS_KINDS == {OpKind.RESHAPE, OpKind.DROPOUT, OpKind.CONSTANT, OpKind.SPLIT}


def _check_agreement(graph):
    aliases = {layer.name for layer in graph.layers if layer.op.is_alias}
    # profile: alias layers (and only they, among unfused ones) move no DRAM bytes
    result = profile(graph, "int8")
    zero = {r.name for r in result.layers if r.dram_bytes == 0 and r.fused_into is None}
    assert zero == aliases
    # simulate: alias layers are the ones neither run nor fused into another layer
    sim = simulate(graph, load_accelerator("tpu-32x32"), None)
    ran = {r.name for r in sim.layers} | {f for r in sim.layers for f in r.fused}
    assert {layer.name for layer in graph.layers} - ran == aliases
    # the same kernels read and write the same tensors, so one-touch activation DRAM agrees
    work = build_workload(graph)
    groups = {g.name: g for g in fused_groups(graph) if not g.is_alias}
    assert [w.name for w in work.items] == list(groups)
    one_touch = 0
    for item in work.items:
        one_touch += sum(dict(item.inputs).values()) + sum(n for _, n in item.outputs)
    assert one_touch == result.totals.dram_activation_bytes  # int8: 1 byte per element
    # ... and so do the tensors the residency allocator keeps on chip
    cap = 1 << 20
    steps = [
        Step(tuple((n, b) for n, b in item.inputs), tuple((n, b) for n, b in item.outputs))
        for item in work.items
    ]
    resident = allocate_resident(steps, cap, work.graph_outputs).resident
    with_buffer = profile(graph, "int8", onchip_bytes=cap)
    saved = result.totals.dram_activation_bytes - with_buffer.totals.dram_activation_bytes
    kept = sum(n for item in work.items for name, n in item.outputs if name in resident)
    kept += sum(
        n for item in work.items for name, n in dict(item.inputs).items() if name in resident
    )
    assert resident and saved == kept


@pytest.mark.parametrize("name", ZOO)
def test_profile_and_simulate_agree_on_alias_layers(name):
    _check_agreement(load_graph(name))


def test_profile_and_simulate_agree_on_an_onnx_export(tmp_path):
    graph = _onnx_graph(tmp_path)
    kinds = {layer.op for layer in graph.layers}
    assert {OpKind.CONCAT, OpKind.SPLIT, OpKind.SLICE, OpKind.RESHAPE, OpKind.TRANSPOSE} <= kinds
    _check_agreement(graph)


@pytest.mark.slow
def test_profile_and_simulate_agree_on_an_onnx_googlenet(tmp_path):
    graph = _onnx_graph(tmp_path, build_zoo_model("googlenet", device="cpu"), (1, 3, 224, 224))
    assert graph.of_kind(OpKind.CONCAT)
    _check_agreement(graph)
