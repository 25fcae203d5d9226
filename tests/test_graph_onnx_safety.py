"""The ONNX frontend's file handling (no files in the working directory, external data kept
inside the model's folder) and parameters stored as ``Constant`` nodes."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from cli_helpers import run_cli
from edgecnn.analysis import profile
from edgecnn.errors import ModelLoadError, ShapeError
from edgecnn.graph.from_onnx import graph_from_onnx, read_onnx


def _external_model(location: str) -> onnx.ModelProto:
    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for k, v in {"location": location, "offset": "0", "length": "64"}.items():
        e = w.external_data.add()
        e.key, e.value = k, v
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [w],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("where", ["parent", "absolute", "symlink"])
@pytest.mark.parametrize(
    "command", [["profile"], ["simulate"], ["export-topology", "--out", "t.csv"]]
)
def test_external_data_outside_the_folder_is_refused(where, command, tmp_path, capsys, monkeypatch):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\x00" * 64)
    folder = tmp_path / "models"
    folder.mkdir()
    location = {"parent": "../secret.bin", "absolute": str(secret), "symlink": "link.bin"}[where]
    if where == "symlink":
        (folder / "link.bin").symlink_to(secret)
    model = folder / "evil.onnx"
    model.write_bytes(_external_model(location).SerializeToString())
    before = model.read_bytes()
    monkeypatch.chdir(tmp_path)
    cmd, *rest = command
    code, out, err = run_cli([cmd, str(model), *rest], capsys)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgecnn: error:"), err
    assert "outside the model's folder" in err and "w" in err
    assert model.read_bytes() == before and not (tmp_path / "t.csv").exists()


def test_external_data_inside_the_folder_loads(tmp_path):
    (tmp_path / "w.bin").write_bytes(np.arange(16, dtype=np.float32).tobytes())
    path = tmp_path / "ok.onnx"
    path.write_bytes(_external_model("w.bin").SerializeToString())
    model = read_onnx(path)
    assert numpy_helper.to_array(model.graph.initializer[0])[3, 3] == 15.0
    with pytest.raises(ModelLoadError, match="external data"):
        (tmp_path / "w.bin").unlink()
        read_onnx(path)


def test_bench_refuses_external_data_outside_the_folder(tmp_path, capsys):
    (tmp_path / "secret.bin").write_bytes(b"\x00" * 64)
    (tmp_path / "m").mkdir()
    model = tmp_path / "m" / "evil.onnx"
    model.write_bytes(_external_model("../secret.bin").SerializeToString())
    code, _, err = run_cli(["bench", str(model), "--runs", "1"], capsys)
    assert code == 2 and "outside the model's folder" in err and len(err.strip().splitlines()) == 1


def test_symbolic_shape_inference_writes_nothing_in_the_working_directory(tmp_path, monkeypatch):
    """ORT's symbolic shape inference saves sym_shape_infer_temp.onnx into '.' when it gives up."""
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Foo", ["a"], ["b"], domain="custom"),
        helper.make_node("Relu", ["b"], ["y"]),
    ]
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    m = helper.make_model(
        g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("custom", 1)]
    )
    keep = tmp_path / "sym_shape_infer_temp.onnx"
    keep.write_bytes(b"mine")  # a user's file of that name is not overwritten either
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ShapeError, match="could not infer the shape of 'b'"):
        graph_from_onnx(m)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sym_shape_infer_temp.onnx"]
    assert keep.read_bytes() == b"mine"


def _const(name: str, array: np.ndarray) -> onnx.NodeProto:
    return helper.make_node(
        "Constant", [], [name], value=numpy_helper.from_array(array.astype(np.float32), name)
    )


def test_constant_node_weights_count_as_parameters():
    """conv(3->8, 3x3, bias) -> BN(8) -> HardSwish as x*clip(x+3,0,6)/6 -> GAP -> Gemm(8->10):
    parameters = 8*3*3*3 + 8 (conv) + 2*8 (BN scale, shift; not its statistics) + 10*8 + 10."""
    rng = np.random.default_rng(0)
    nodes = [
        _const("cw", rng.standard_normal((8, 3, 3, 3))),
        _const("cb", rng.standard_normal(8)),
        _const("scale", np.ones(8)),
        _const("shift", np.zeros(8)),
        _const("mean", np.zeros(8)),
        _const("var", np.ones(8)),
        _const("three", np.array(3.0)),
        _const("six", np.array([6.0])),
        _const("zero", np.array(0.0)),
        _const("fw", rng.standard_normal((10, 8))),
        _const("fb", rng.standard_normal(10)),
        helper.make_node("Conv", ["x", "cw", "cb"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "scale", "shift", "mean", "var"], ["b"]),
        helper.make_node("Add", ["b", "three"], ["b3"]),
        helper.make_node("Clip", ["b3", "zero", "six"], ["r6"]),
        helper.make_node("Mul", ["b", "r6"], ["m"]),
        helper.make_node("Div", ["m", "six"], ["h"]),
        helper.make_node("GlobalAveragePool", ["h"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1),
    ]
    g = helper.make_graph(
        nodes,
        "constnet",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(m)
    expected = 8 * 3 * 3 * 3 + 8 + 2 * 8 + 10 * 8 + 10
    graph = graph_from_onnx(m)
    assert graph.param_count == expected
    assert sum(layer.param_count for layer in graph.layers) == expected
    assert profile(graph).totals.params == expected
    conv = next(layer for layer in graph.layers if layer.source_op == "Conv")
    assert conv.param_count == 8 * 3 * 3 * 3 + 8
    assert profile(graph).totals.macs > 8 * 3 * 9 * 16 * 16  # the conv is counted, too
