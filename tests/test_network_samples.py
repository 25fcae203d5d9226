"""Calibration samples measured inside whole networks: attribution of ORT's profiled nodes.

Times are only checked for being positive and for adding up (every profiled node goes to one
kernel); no assertion depends on this machine's speed.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from onnx import helper
from torch import nn

from cli_helpers import run_cli
from edgecnn.analysis.latency_predictor import kernels
from edgecnn.runtime.calibrate import (
    _time_and_profile,
    calibrate,
    load_network,
    measure_network,
)
from edgecnn.runtime.network_samples import attribute_nodes


class ShuffleSE(nn.Module):
    """The contexts that make ORT insert nodes of its own: an SE block's broadcast multiply
    (NCHWc reorders around it), a channel shuffle (reshape/transpose), an unfoldable BN after a
    concat (run as a 1x1 depthwise conv named ``..._bn_nchwc``), GELU, a classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU())
        self.se_pool = nn.AdaptiveAvgPool2d(1)
        self.se1 = nn.Conv2d(16, 4, 1)
        self.se2 = nn.Conv2d(4, 16, 1)
        self.branch = nn.Conv2d(16, 16, 3, padding=1)
        self.bn = nn.BatchNorm2d(32)
        self.mix = nn.Conv2d(32, 32, 1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        s = torch.sigmoid(self.se2(torch.relu(self.se1(self.se_pool(x)))))
        x = x * s
        y = torch.cat([x, self.branch(x)], 1)
        n, c, h, w = y.shape
        y = y.reshape(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
        y = nn.functional.gelu(self.mix(torch.relu(self.bn(y))))
        return self.fc(y.mean((2, 3)))


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("net")
    path = d / "net.onnx"
    from edgecnn.runtime.export import export_onnx

    export_onnx(ShuffleSE().eval(), path, (1, 3, 32, 32))
    return path


def test_every_profiled_node_goes_to_a_kernel(network):
    model, graph = load_network(network)
    ks = kernels(graph, "fp32")
    _, per_node, opt = _time_and_profile(model, 3, 0.1, 3, 0, optimized=True)
    node_ms = {n: min(v) for n, v in per_node.items()}
    # ORT ran nodes the IR does not name (reorders, its BN-as-conv): the test means something
    assert any(n not in {layer.name for layer in graph.layers} for n in node_ms)
    times, lost = attribute_nodes(graph, ks, node_ms, opt)
    assert lost == 0.0
    assert sum(times) == pytest.approx(sum(node_ms.values()), rel=1e-12)
    for k, ms in zip(ks, times, strict=True):
        if k.type in ("conv", "linear"):
            assert ms > 0, k.name


def _ir_names(graph):
    return {layer.name: layer for layer in graph.layers}


def test_attribution_rules_on_ort_style_names(network):
    _, graph = load_network(network)
    ks = kernels(graph, "fp32")
    layers = _ir_names(graph)
    conv_k = next(i for i, k in enumerate(ks) if k.type == "conv")
    conv_layer = layers[ks[conv_k].layers[0]]
    last_out = layers[ks[conv_k].layers[-1]].outputs[0].name  # the fused group's output
    lin_k = next(i for i, k in enumerate(ks) if k.type == "linear")
    lin_layer = ks[lin_k].layers[0]
    # an ORT graph: a reorder of the conv's output, then a node of ORT's own reading it
    opt = helper.make_model(
        helper.make_graph(
            [
                helper.make_node("ReorderOutput", ["tok_1"], [last_out], name="ReorderOutput_1"),
                helper.make_node("ReorderInput", [last_out], ["tok_2"], name="ReorderInput_2"),
                helper.make_node("Gelu", ["tok_2"], ["tok_3"], name="Gelu_9"),
            ],
            "g",
            [],
            [],
        )
    )
    node_ms = {
        # unknown to both graphs and run before any known node: reported, not dropped
        "NotInAnyGraph_7": 16.0,
        f"{last_out}_nchwc": 1.0,  # NCHWc conv named after its output tensor
        f"{lin_layer}/MatMulAddFusion": 2.0,  # a fusion suffix after the layer's name
        "ReorderInput_2": 4.0,  # its input is the conv group's output
        "Gelu_9": 8.0,  # reads an ORT token: the kernel of the ORT node that wrote it
        "NotInAnyGraph_8": 32.0,  # unknown, run after Gelu_9: the kernel of the node before
    }
    times, lost = attribute_nodes(graph, ks, node_ms, opt)
    assert times[conv_k] == pytest.approx(1.0 + 4.0 + 8.0 + 32.0)
    assert times[lin_k] == pytest.approx(2.0)
    assert lost == pytest.approx(16.0)
    assert conv_layer.name in ks[conv_k].layers


def test_measure_network_sums_match_the_profile(network):
    model, graph = load_network(network)
    timed, summary = measure_network(model, graph, runs=3, budget_s=0.1)
    assert [k.name for k, _ in timed] == [k.name for k in kernels(graph, "fp32")]
    assert summary["unattributed_ms"] == 0.0 and summary["wall_ms"] > 0
    assert summary["kernel_sum_ms"] == pytest.approx(sum(ms for _, ms in timed))


def test_calibrate_with_networks_adds_in_context_samples(network, tmp_path):
    pred, res = calibrate(
        "fp32", samples=1, chains=0, out=tmp_path / "p.json", networks=[str(network)]
    )
    net_rows = [r for r in res.rows if r["source"] == "network"]
    assert net_rows and all(r["kernel_ms"] > 0 and math.isfinite(r["kernel_ms"]) for r in net_rows)
    assert pred.meta["networks"] == [str(network)]
    assert len(res.networks) == 1 and res.networks[0]["unattributed_ms"] == 0.0
    saved = json.loads((tmp_path / "p.json").read_text())
    assert saved["meta"]["networks"] == [str(network)]
    # int8: the network is quantized keeping its names, and every ORT node is attributed
    pred8, res8 = calibrate(
        "int8", samples=1, chains=0, out=tmp_path / "p8.json", networks=[str(network)]
    )
    assert pred8.meta["networks"] == [str(network)]
    rows8 = [r for r in res8.rows if r["source"] == "network"]
    assert rows8 and res8.networks[0]["unattributed_ms"] == 0.0
    assert res8.networks[0]["kernel_sum_ms"] > 0


def test_int8_network_every_node_attributed_dequantize_to_its_reader(network, tmp_path):
    from edgecnn.runtime.calibrate import quantize_model
    from edgecnn.runtime.onnx_prep import prepare_for_quantization

    model, graph = load_network(network)
    q = quantize_model(prepare_for_quantization(model), tmp_path)
    ks = kernels(graph, "int8")
    _, per_node, opt = _time_and_profile(q, 3, 0.1, 3, 0, optimized=True)
    node_ms = {n: min(v) for n, v in per_node.items()}
    ops = {n.name: n.op_type for n in opt.graph.node}
    # ORT kept quantize/dequantize nodes the IR knows nothing of: the test means something
    assert any(ops.get(n) in ("QuantizeLinear", "DequantizeLinear") for n in node_ms)
    times, lost = attribute_nodes(graph, ks, node_ms, opt)
    assert lost == 0.0
    assert sum(times) == pytest.approx(sum(node_ms.values()), rel=1e-12)
    # each dequantize ORT runs goes where the node reading it goes
    readers = {x: n.name for n in opt.graph.node for x in n.input}
    for n in opt.graph.node:
        if n.op_type != "DequantizeLinear" or n.name not in node_ms:
            continue
        reader = readers.get(n.output[0])
        if reader is None or reader not in node_ms:
            continue
        alone = attribute_nodes(graph, ks, {n.name: 1.0}, opt)[0]
        with_reader = attribute_nodes(graph, ks, {reader: 1.0}, opt)[0]
        assert alone == with_reader, n.name


def test_attribution_of_qdq_names(network):
    _, graph = load_network(network)
    ks = kernels(graph, "int8")
    layers = _ir_names(graph)
    conv_k = next(i for i, k in enumerate(ks) if k.type == "conv")
    out = layers[ks[conv_k].layers[-1]].outputs[0].name
    lin_k = next(i for i, k in enumerate(ks) if k.type == "linear")
    lin = ks[lin_k].layers[0]
    lin_w = "fc.weight"
    opt = helper.make_model(
        helper.make_graph(
            [
                helper.make_node(
                    "DequantizeLinear", [f"{lin_w}_quantized", "s"], ["w_f"], name="dq_w"
                ),
                helper.make_node("MatMul", ["a", "w_f"], ["y"], name=lin),
            ],
            "g",
            [],
            [],
        )
    )
    node_ms = {
        f"{out}_QuantizeLinear": 1.0,  # ORT's quantizer names Q/DQ after the tensor
        f"{out}_DequantizeLinear_1": 2.0,  # a second dedicated pair
        "dq_w": 4.0,  # dequantizes only a constant: goes to the node reading it
        lin: 8.0,
        "HardSigmoid_77": 16.0,  # added by ORT after its optimized model: the node run before
    }
    times, lost = attribute_nodes(graph, ks, node_ms, opt)
    assert lost == 0.0
    assert times[conv_k] == pytest.approx(1.0 + 2.0)
    assert times[lin_k] == pytest.approx(4.0 + 8.0 + 16.0)


def test_calibrate_cli_rejects_unknown_network_before_sampling(tmp_path, capsys):
    out = tmp_path / "p.json"
    code, _, err = run_cli(
        ["calibrate", "--networks", "resnet18,no_such_model_x", "--out", str(out)], capsys
    )
    assert code == 2 and len(err.strip().splitlines()) == 1 and "no_such_model_x" in err
    assert not out.exists()
    missing = tmp_path / "missing.onnx"
    code, _, err = run_cli(["calibrate", "--networks", str(missing), "--out", str(out)], capsys)
    assert code == 2 and "missing.onnx" in err and not out.exists()


@pytest.mark.parametrize(
    ("arg", "expect"),
    [(None, "default"), ("none", []), ("resnet18, squeezenet1_1", ["resnet18", "squeezenet1_1"])],
)
def test_calibrate_cli_networks_option(arg, expect, monkeypatch, tmp_path, capsys):
    import edgecnn.runtime.calibrate as cal

    seen = {}

    def fake(precision, **kw):
        seen["networks"] = kw["networks"]
        raise cal.ConfigError("stop here")

    monkeypatch.setattr(cal, "calibrate", fake)
    argv = ["calibrate", "--out", str(tmp_path / "p.json")]
    if arg is not None:
        argv += ["--networks", arg]
    code, _, _ = run_cli(argv, capsys)
    assert code == 2
    assert seen["networks"] == (list(cal.DEFAULT_NETWORKS) if expect == "default" else expect)
