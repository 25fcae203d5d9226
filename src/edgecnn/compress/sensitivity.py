"""Mixed precision by layer sensitivity for INT8 PTQ in ONNX Runtime.

1. Every conv/linear node (``Conv``, ``Gemm``, ``MatMul``) is quantized *alone* (all others
   excluded) and the accuracy loss against the float model is measured: the layer's sensitivity.
2. The whole model is quantized; while its loss exceeds ``max_drop`` (percentage points), the most
   sensitive remaining layer is added to ``nodes_to_exclude`` (kept in float) and the model is
   quantized again.

Accuracies for these decisions are measured on the *calibration* split (so the test split stays
held out); the recipe reports the final model's test accuracy.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

import onnx

from edgecnn.compress.quantize import QuantConfig, QuantResult, onnx_accuracy, quantize_int8

LAYER_OPS = ("Conv", "Gemm", "MatMul")


def name_nodes(model: onnx.ModelProto) -> list[str]:
    """Give every unnamed node a stable name ``<op>_<index>``; return the conv/linear names."""
    names = []
    for i, n in enumerate(model.graph.node):
        if not n.name:
            n.name = f"{n.op_type}_{i}"
        if n.op_type in LAYER_OPS:
            names.append(n.name)
    return names


def mixed_precision(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    data,
    config: QuantConfig | None = None,
    max_drop: float = 0.5,
) -> tuple[QuantResult, list[str], dict[str, float]]:
    """Quantize ``src`` to ``dst`` keeping the most sensitive layers in float until the accuracy
    loss on the calibration split is at most ``max_drop`` points.

    ``config.nodes_to_exclude`` stay in float throughout. Returns ``(result, node names
    excluded by the search, {node: sensitivity in points})``.
    """
    cfg = config or QuantConfig()
    model = onnx.load(str(src))
    layers = name_nodes(model)
    x, y = data.x_calib, data.y_calib
    with tempfile.TemporaryDirectory() as tmp:
        named = Path(tmp) / "named.onnx"
        onnx.save(model, str(named))
        base = onnx_accuracy(named, x, y)

        def quant(exclude: list[str], out: Path) -> tuple[QuantResult, float]:
            c = dataclasses.replace(cfg, nodes_to_exclude=(*cfg.nodes_to_exclude, *exclude))
            r = quantize_int8(named, out, x, c)
            return r, onnx_accuracy(out, x, y)

        sens: dict[str, float] = {}
        for n in layers:
            _, acc = quant([o for o in layers if o != n], Path(tmp) / "one.onnx")
            sens[n] = (base - acc) * 100
        order = sorted(layers, key=lambda n: -sens[n])
        excluded: list[str] = []
        res, acc = quant(excluded, Path(dst))
        while (base - acc) * 100 > max_drop and len(excluded) < len(layers):
            excluded.append(order[len(excluded)])
            res, acc = quant(excluded, Path(dst))
    return res, excluded, sens
