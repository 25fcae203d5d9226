"""simulate's array MACs equal profile's MACs (issue 10: matmul MACs were multiplied by heads)."""

import warnings

import pytest
import torch

from edgecnn.analysis import profile
from edgecnn.graph.ir import Graph, Layer, OpKind, TensorInfo
from edgecnn.hardware import load_accelerator, simulate
from edgecnn.hardware.workload import matmul_shape_of
from edgecnn.models import load_graph
from edgecnn.models.zoo import zoo_names

ATTENTION_MODELS = [n for n in zoo_names() if n.startswith(("vit_", "swin_", "maxvit"))]
CNN_SAMPLE = [
    "alexnet",
    "resnet18",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "regnet_x_400mf",
    "shufflenet_v2_x0_5",
    "squeezenet1_0",
    "googlenet",
    "convnext_tiny",
]
ACCEL = load_accelerator("tpu-32x32")


def _array_macs(graph: Graph) -> int:
    result = simulate(graph, ACCEL)
    assert not result.unknown_ops
    return sum(r.macs for r in result.layers if r.unit == "array")


def test_attention_models_are_the_expected_twelve():
    assert len(ATTENTION_MODELS) == 12  # vit x5, swin x6, maxvit_t


@pytest.mark.parametrize("name", ATTENTION_MODELS)
def test_matmul_models_array_macs_equal_profile(name):
    graph = load_graph(name)
    assert graph.of_kind(OpKind.MATMUL)
    assert _array_macs(graph) == profile(graph).totals.macs


@pytest.mark.parametrize("name", CNN_SAMPLE)
def test_cnn_array_macs_equal_profile(name):
    graph = load_graph(name)
    assert _array_macs(graph) == profile(graph).totals.macs


def test_onnx_vit_array_macs_equal_profile(tmp_path):
    """A two-layer ViT (torchvision's VisionTransformer class: the same attention graph as
    vit_b_32, at 1/100 of the export time; the torch frontend's vit_b_32 count is checked
    against torchvision's published GFLOPs in test_graph_zoo)."""
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    vit = VisionTransformer(
        image_size=64, patch_size=16, num_layers=2, num_heads=4, hidden_dim=64, mlp_dim=128
    ).eval()
    path = tmp_path / "vit_tiny.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            vit, (torch.randn(1, 3, 64, 64),), str(path), opset_version=17, dynamo=False
        )
    graph = load_graph(str(path))
    assert graph.of_kind(OpKind.MATMUL)
    macs = profile(graph).totals.macs
    assert macs == profile(load_graph(vit, (1, 3, 64, 64))).totals.macs
    # closed form: patchify conv + per layer (qkv, scores, context, out-proj, 2 MLP) + head
    tokens, d, mlp = 17, 64, 128
    per_layer = tokens * d * 3 * d + 2 * tokens * tokens * d + tokens * d * d + 2 * tokens * d * mlp
    assert macs == 16 * d * 3 * 16 * 16 + 2 * per_layer + d * 1000
    assert _array_macs(graph) == macs


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ((12, 197, 64), (12, 64, 197)),  # heads x tokens: vit scores
        ((2, 12, 197, 64), (2, 12, 64, 197)),  # batch x heads
        ((2, 12, 197, 64), (12, 64, 197)),  # b broadcast over the batch
        ((197, 768), (768, 10)),  # plain 2-D
        ((4, 197, 768), (768, 10)),  # 3-D x 2-D
    ],
)
def test_batched_matmul_shape_has_the_closed_form_macs(a, b):
    out = torch.empty(torch.broadcast_shapes(a[:-2], b[:-2]) + (a[-2], b[-1])).shape
    layer = Layer(
        "mm",
        OpKind.MATMUL,
        [TensorInfo("a", a), TensorInfo("b", b)],
        [TensorInfo("y", tuple(out))],
    )
    shape = matmul_shape_of(layer)
    assert shape.macs == out.numel() * a[-1]
    assert shape.output_elems == out.numel()
    assert shape.weight_elems == torch.Size(b).numel()
