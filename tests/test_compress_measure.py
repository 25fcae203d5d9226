"""Tests of compress.measure: MACs/params through edgecnn.analysis for FP32, FP16 and QDQ INT8."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from compress_helpers import hook_macs
from edgecnn.compress.fold import fold_batchnorm
from edgecnn.compress.measure import module_costs, onnx_costs
from edgecnn.compress.prune import count_macs
from edgecnn.compress.quantize import compact_onnx, convert_fp16, quantize_int8
from edgecnn.models.edge import EDGE_MODELS, build_edge_model
from edgecnn.runtime.export import export_onnx_bytes

SHAPE = (1, 1, 28, 28)


@pytest.mark.parametrize("name", sorted(EDGE_MODELS))
def test_fp32_fp16_int8_count_like_the_float_model(name, tmp_path):
    torch.manual_seed(0)
    m, _ = fold_batchnorm(build_edge_model(name).eval())
    fp32 = tmp_path / "fp32.onnx"
    fp32.write_bytes(
        compact_onnx(onnx.load_from_string(export_onnx_bytes(m, SHAPE))).SerializeToString()
    )
    calib = np.random.default_rng(0).standard_normal((16, *SHAPE[1:])).astype(np.float32)
    int8 = tmp_path / "int8.onnx"
    quantize_int8(fp32, int8, calib)
    fp16 = convert_fp16(fp32, tmp_path / "fp16.onnx")
    ops = {n.op_type for n in onnx.load(str(int8)).graph.node}
    assert "DequantizeLinear" in ops  # the weights are behind DequantizeLinear
    ref_macs, ref_params = hook_macs(m), sum(p.numel() for p in m.parameters())
    for path in (fp32, int8, fp16):
        c = onnx_costs(path)
        assert (c.macs, c.params, c.unknown_ops) == (ref_macs, ref_params, ()), path.name
    c = module_costs(m, SHAPE)
    assert (c.macs, c.params) == (ref_macs, ref_params)
    assert count_macs(m, SHAPE) == ref_macs


def test_unknown_ops_are_listed_and_warned(tmp_path):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    g = helper.make_graph([helper.make_node("Hardmax", ["x"], ["y"])], "g", [x], [y])
    p = tmp_path / "u.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(p))
    with pytest.warns(UserWarning, match="no MAC count"):
        c = onnx_costs(p)
    assert c.unknown_ops and c.unknown_ops[0]["op"] == "Hardmax"
