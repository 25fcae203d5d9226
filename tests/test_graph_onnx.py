"""The ONNX frontend against the PyTorch frontend on exported zoo models, and its bad input."""

import warnings

import onnx
import pytest
import torch

from edgecnn.analysis import profile
from edgecnn.errors import ModelLoadError, ShapeError
from edgecnn.graph.from_onnx import graph_from_onnx
from edgecnn.models import load_graph
from edgecnn.models.zoo import build_zoo_model, zoo_entry
from edgecnn.studies.zoo import ZOO_STUDY_MODELS


def _export(model, shape, path, dynamic_batch=False):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.randn(*shape),),
            str(path),
            opset_version=17,
            dynamo=False,
            input_names=["x"],
            dynamic_axes={"x": {0: "batch"}} if dynamic_batch else None,
        )
    return path


#: One model per architecture family of the zoo study: the deeper ResNets, VGG-16 (AlexNet's
#: conv/pool/linear ops at 4x the export time) and SqueezeNet 1.1 add no operator, attribute
#: or fusion pattern these do not already exercise.
FAMILIES = tuple(
    n
    for n in ZOO_STUDY_MODELS
    if n not in ("vgg16", "resnet34", "resnet101", "resnet152", "squeezenet1_1")
)


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILIES)
def test_onnx_frontend_agrees_with_torch_frontend(name, tmp_path):
    shape = zoo_entry(name).input_shape  # 299x299 for Inception v3, else 224x224
    torch.manual_seed(0)
    model = build_zoo_model(name, device="cpu")  # as its DEFAULT weights define it
    path = _export(model, shape, tmp_path / f"{name}.onnx")
    from_onnx = profile(load_graph(str(path)))
    from_torch = profile(load_graph(model))  # the resolver's default: the same shape
    assert from_onnx.totals.macs == pytest.approx(from_torch.totals.macs, rel=0.01)
    # ONNX holds only what inference reads (no unused auxiliary heads): compare with the
    # parameters the PyTorch graph's layers read
    read_params = sum(r.params for r in from_torch.layers)
    assert from_onnx.totals.params == pytest.approx(read_params, rel=0.01)
    assert from_onnx.totals.unknown_ops == []
    # the same fusion and the same views: feature-map traffic agrees too (within 5%: GoogLeNet's
    # input transform exports as Gather/Unsqueeze copies where PyTorch selects views, +2.7%)
    assert from_onnx.totals.dram_bytes == pytest.approx(from_torch.totals.dram_bytes, rel=0.05)


def test_symbolic_batch_needs_input_shape(tmp_path):
    path = _export(torch.nn.Conv2d(3, 4, 3), (1, 3, 16, 16), tmp_path / "dyn.onnx", True)
    with pytest.raises(ShapeError, match="--input-shape"):
        graph_from_onnx(path)
    g = graph_from_onnx(path, (4, 3, 16, 16))
    assert g.layers[0].outputs[0].shape == (4, 4, 14, 14)
    assert profile(g).totals.macs == 4 * 4 * 14 * 14 * 3 * 9


def test_truncated_and_non_onnx_files(tmp_path):
    path = _export(torch.nn.Conv2d(3, 4, 3), (1, 3, 16, 16), tmp_path / "ok.onnx")
    data = path.read_bytes()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="not a valid ONNX|no ONNX graph"):
        graph_from_onnx(truncated)
    text = tmp_path / "text.onnx"
    text.write_text("hello, I am not a model")
    with pytest.raises(ModelLoadError):
        graph_from_onnx(text)
    with pytest.raises(ModelLoadError, match="not found"):
        graph_from_onnx(tmp_path / "missing.onnx")


def test_unknown_onnx_operator_is_listed(tmp_path):
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])
    node = onnx.helper.make_node("Relu", ["x"], ["h"])
    odd = onnx.helper.make_node("Hardmax", ["h"], ["y"])
    model = onnx.helper.make_model(
        onnx.helper.make_graph([node, odd], "g", [x], [y]),
        opset_imports=[onnx.helper.make_opsetid("", 17)],
    )
    result = profile(graph_from_onnx(model))
    assert [u["op"] for u in result.totals.unknown_ops] == ["Hardmax"]


def test_silu_pattern_becomes_one_activation(tmp_path):
    class Silu(torch.nn.Module):
        def forward(self, x):
            return x * torch.sigmoid(x)

    path = _export(Silu(), (1, 8), tmp_path / "silu.onnx")
    g = graph_from_onnx(path)
    assert [(layer.op.value, layer.attrs.get("fn")) for layer in g.layers] == [
        ("activation", "silu")
    ]


def test_erf_gelu_pattern_becomes_one_activation(tmp_path):
    path = _export(torch.nn.GELU(), (1, 8), tmp_path / "gelu.onnx")
    g = graph_from_onnx(path)
    assert [(layer.op.value, layer.attrs.get("fn")) for layer in g.layers] == [
        ("activation", "gelu")
    ]


def test_quantized_qdq_model_counts_its_weights(tmp_path):
    """Weights behind DequantizeLinear are parameters; MACs are those of the float model."""
    from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize_static

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 1))
    fp32 = _export(model, (1, 3, 12, 12), tmp_path / "fp32.onnx")

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"x": torch.randn(1, 3, 12, 12).numpy()} for _ in range(4)])

        def get_next(self):
            return next(self.items, None)

    int8 = tmp_path / "int8.onnx"
    quantize_static(
        str(fp32),
        str(int8),
        Reader(),
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    a, b = profile(graph_from_onnx(fp32)), profile(graph_from_onnx(int8))
    assert b.totals.macs == a.totals.macs
    assert b.totals.params == a.totals.params == 8 * 3 * 9 + 8 + 4 * 8 + 4
    assert sum(r.params for r in b.layers) == b.totals.params


class _Einsum(torch.nn.Module):
    def __init__(self, equation):
        super().__init__()
        self.equation = equation

    def forward(self, a, b):
        return torch.einsum(self.equation, a, b)


@pytest.mark.parametrize(
    ("equation", "a", "b", "macs"),
    [
        # MaxViT's attention scores and weighted sum (its spaced equation, as PyTorch exports it)
        (
            "B G H I D, B G H J D -> B G H I J",
            (1, 4, 2, 49, 32),
            (1, 4, 2, 49, 32),
            4 * 2 * 49 * 49 * 32,
        ),
        ("bghij,bghjd->bghid", (1, 4, 2, 49, 49), (1, 4, 2, 49, 32), 4 * 2 * 49 * 32 * 49),
        ("ij,jk", (3, 4), (4, 5), 3 * 5 * 4),  # implicit output: "ik"
        ("...id,...jd->...ij", (2, 3, 5, 8), (2, 3, 6, 8), 2 * 3 * 5 * 6 * 8),
    ],
)
def test_einsum_products_count_their_macs(equation, a, b, macs, tmp_path):
    path = tmp_path / "einsum.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Einsum(equation), (torch.randn(*a), torch.randn(*b)), str(path), dynamo=False
        )
    assert [n.op_type for n in onnx.load(str(path)).graph.node] == ["Einsum"]
    p = profile(load_graph(str(path)))
    assert p.totals.unknown_ops == []
    assert p.totals.macs == macs


def test_einsum_that_is_no_product_stays_unknown(tmp_path):
    # an outer product contracts nothing: reported, never counted as zero MACs silently
    path = tmp_path / "outer.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Einsum("i,j->ij"), (torch.randn(3), torch.randn(4)), str(path), dynamo=False
        )
    assert [n.op_type for n in onnx.load(str(path)).graph.node] == ["Einsum"]
    assert [u["op"] for u in profile(load_graph(str(path))).totals.unknown_ops] == ["Einsum"]
