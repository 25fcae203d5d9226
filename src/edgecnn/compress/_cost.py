"""Private: MACs and parameter counts straight from an ONNX graph (FP32, FP16 or QDQ INT8).

MACs: ``Conv``/``ConvInteger``/``QLinearConv`` = output elements x (C_in / group) x kh x kw;
``Gemm``/``MatMul`` = M x N x K. Weights are found through ``DequantizeLinear`` (QDQ) and ``Cast``
(FP16) nodes, so quantized and float versions of one network count the same. Params: elements of
conv/linear weights and biases (BatchNorm is folded by the exporter in eval mode).
"""

from __future__ import annotations

import math

import onnx
from onnx import shape_inference


def _dims(vi: onnx.ValueInfoProto) -> list[int] | None:
    d = [x.dim_value for x in vi.type.tensor_type.shape.dim]
    return d if d and all(v > 0 for v in d) else None


def onnx_macs_params(model: onnx.ModelProto) -> tuple[int, int]:
    """``(MACs, params)`` of one inference at the graph's (static) input shape."""
    m = shape_inference.infer_shapes(model)
    shapes: dict[str, list[int]] = {}
    for vi in [*m.graph.input, *m.graph.value_info, *m.graph.output]:
        d = _dims(vi)
        if d is not None:
            shapes[vi.name] = d
    for t in m.graph.initializer:
        shapes[t.name] = list(t.dims)
    producer = {o: n for n in m.graph.node for o in n.output}

    def source_shape(name: str) -> list[int] | None:
        for _ in range(4):  # follow DequantizeLinear / Cast / Identity back to the stored tensor
            n = producer.get(name)
            if n is None or n.op_type not in ("DequantizeLinear", "Cast", "Identity"):
                break
            name = n.input[0]
        return shapes.get(name)

    macs = params = 0
    for n in m.graph.node:
        op = n.op_type
        if op in ("Conv", "ConvInteger", "QLinearConv"):
            w_idx, b_idx, out = (3, 8, n.output[0]) if op == "QLinearConv" else (1, 2, n.output[0])
            w = source_shape(n.input[w_idx])
            o = shapes.get(out)
            if w is None or o is None:
                continue
            macs += math.prod(o) * math.prod(w[1:])
            params += math.prod(w)
            if len(n.input) > b_idx and n.input[b_idx]:
                b = source_shape(n.input[b_idx])
                params += math.prod(b) if b else 0
        elif op in ("Gemm", "MatMul"):
            a, b = source_shape(n.input[0]), source_shape(n.input[1])
            if a is None or b is None:
                continue
            trans_b = any(x.name == "transB" and x.i for x in n.attribute)
            k = a[-1]
            nout = b[0] if trans_b else b[-1]
            macs += math.prod(a[:-1]) * k * nout
            params += math.prod(b)
            if op == "Gemm" and len(n.input) > 2 and n.input[2]:
                c = source_shape(n.input[2])
                params += math.prod(c) if c else 0
    return macs, params
