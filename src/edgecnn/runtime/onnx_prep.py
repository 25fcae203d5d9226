"""ONNX graph edits that let ONNX Runtime fuse every quantized conv, keeping the names.

Shared by :mod:`edgecnn.compress.quantize` (every INT8 file the pipeline writes) and the
calibration's INT8 networks (:mod:`edgecnn.runtime.calibrate`), which must quantize a network
as the pipeline does and still find its kernels by the exporter's names.
"""

from __future__ import annotations

import onnx


def prepare_for_quantization(model: onnx.ModelProto) -> onnx.ModelProto:
    """The graph edits of :func:`compact_onnx` that let ORT fuse every quantized conv (drop
    ``Identity`` nodes, unshare conv/Gemm initializers, topological order), keeping the
    exporter's tensor and node names.

    Quantize this rather than a compacted model: on some compacted graphs (DenseNet,
    ConvNeXt, Swin) ONNX Runtime's QDQ quantizer fails (``KeyError`` on the input of a ReLU it
    removes) or writes a graph ORT cannot load (shape-inference errors in Concat/Add/Slice);
    with the exporter's names it does not. :func:`quantize_int8` compacts its output anyway.
    """
    _drop_identities(model.graph)
    _unshare_conv_initializers(model.graph)
    _toposort(model.graph)
    return model


def _unshare_conv_initializers(graph: onnx.GraphProto) -> None:
    """Give every Conv/Gemm its own copy of a weight/bias initializer used by several nodes."""
    inits = {t.name: t for t in graph.initializer}
    seen: set[str] = set()
    for k, n in enumerate(graph.node):
        if n.op_type not in ("Conv", "Gemm"):
            continue
        for i in range(1, len(n.input)):
            name = n.input[i]
            if name not in inits:
                continue
            if name in seen:
                t = onnx.TensorProto()
                t.CopyFrom(inits[name])
                t.name = f"{name}__{k}_{i}"
                graph.initializer.append(t)
                n.input[i] = t.name
            seen.add(name)


def _drop_identities(graph: onnx.GraphProto) -> None:
    """Remove Identity nodes whose output is not a graph output, rewiring their consumers."""
    outputs = {o.name for o in graph.output}
    alias: dict[str, str] = {}
    keep = []
    for n in graph.node:
        if n.op_type == "Identity" and n.output[0] not in outputs:
            alias[n.output[0]] = n.input[0]
        else:
            keep.append(n)
    if not alias:
        return

    def resolve(x: str) -> str:
        while x in alias:
            x = alias[x]
        return x

    for n in keep:
        for i, x in enumerate(n.input):
            n.input[i] = resolve(x)
    copies = [onnx.NodeProto() for _ in keep]
    for c, n in zip(copies, keep, strict=True):
        c.CopyFrom(n)
    del graph.node[:]
    graph.node.extend(copies)


def _toposort(graph: onnx.GraphProto) -> None:
    """Reorder ``graph.node`` topologically (FP16 conversion appends its Casts at the end)."""
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered: list[onnx.NodeProto] = []
    while pending:
        rest = []
        for n in pending:
            if all(i in ready for i in n.input):
                ordered.append(n)
                ready.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(pending):  # a cycle or a missing input: keep the original order
            return
        pending = rest
    copies = [onnx.NodeProto() for _ in ordered]
    for c, n in zip(copies, ordered, strict=True):
        c.CopyFrom(n)
    del graph.node[:]
    graph.node.extend(copies)
