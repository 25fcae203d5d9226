"""Kernel samples measured inside whole networks: the calibration's ``models``.

Random networks (:func:`edgecnn.runtime.calibrate.sample_chain`) give kernels a network's
context, but not the context of the architectures users run: the layout reorders ORT inserts
around an SE block's broadcast multiply or a channel shuffle, attention's reshapes, the cache
state a real block structure leaves. :func:`network_kernel_times` runs a whole fp32 network
in ORT on one thread under the profiler and attributes every profiled node to one of the
predictor's kernels (:func:`edgecnn.analysis.latency_predictor.kernels` of the same ONNX
file's IR), so each kernel of the network becomes one calibration sample. A network used this
way is *used in calibration*: the predictor's benchmark leaves it out of its scores.

Attribution (:func:`attribute_nodes`), per profiled node name:

0. a ``DequantizeLinear`` ORT kept (INT8) goes to the kernel of the node reading it: the float
   op it feeds pays it, as in a single-kernel sample;
1. the name, without ORT's ``_nchwc`` / ``_bn_nchwc`` suffix or the QDQ quantizer's
   ``_QuantizeLinear`` / ``_DequantizeLinear[_N]`` / ``_quantized`` (:data:`QDQ_SUFFIX`), is an
   IR layer's name or the name of a tensor a layer writes (ORT names an NCHWc conv after its
   output tensor, the quantizer a Q/DQ after the tensor it converts);
2. else a prefix of the name up to a ``/`` is (ORT's fusions append ``/MatMulAddFusion``,
   ``/GatherSliceToSplitFusion``);
3. else the node's output, then its inputs, in ORT's optimized model are followed through the
   IR's alias layers (reshape, flatten) to the kernel that writes them, or that reads them when
   nothing does (a reorder of the graph input goes to the first kernel);
4. else the kernel of the ORT node that wrote its input (ORT's own tensors: a GELU ORT runs
   after an NCHWc conv and its reorder goes to the conv's kernel, which holds that GELU);
5. else, for a node reading only constants (an INT8 weight's dequantize ORT keeps), the kernel
   of the node reading its output;
6. else, for a node ORT's optimized model does not list (ORT adds some after saving it: int8
   MobileNet v3's HardSigmoid + Mul), the kernel of the node run just before it (``node_ms``
   is in run order).

Nodes attributed to nothing are counted, not dropped silently. INT8 networks are quantized
with their names kept (:func:`edgecnn.runtime.onnx_prep.prepare_for_quantization`, then
:func:`edgecnn.runtime.calibrate.quantize_model`). Units: milliseconds.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import onnx

from edgecnn.analysis.latency_predictor import Kernel
from edgecnn.graph.ir import Graph

#: Suffixes ORT's NCHWc transformer appends to the tensor it names a node after (a conv; a BN
#: it runs as a 1x1 depthwise conv), longest first.
NCHWC_SUFFIXES = ("_bn_nchwc", "_nchwc")


#: What ORT's QDQ quantizer appends to a tensor's name for the nodes and tensors it adds (the
#: ``QuantizeLinear`` of tensor ``x`` is ``x_QuantizeLinear``, its output
#: ``x_QuantizeLinear_Output``, a second dedicated pair ``x_QuantizeLinear_1``, a weight ``w_quantized``).
QDQ_SUFFIX = re.compile(r"(_(Quantize|Dequantize)Linear(_\d+)?(_Output)?(_\d+)?|_quantized)$")


def _base(name: str) -> str:
    for suffix in NCHWC_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return QDQ_SUFFIX.sub("", name)


def attribute_nodes(
    graph: Graph,
    kernels: Sequence[Kernel],
    node_ms: dict[str, float],
    optimized: onnx.ModelProto | None = None,
) -> tuple[list[float], float]:
    """``(ms per kernel, ms attributed to no kernel)``: each profiled node's time (``node_ms``,
    one figure per node name, in the order ORT ran them) added to the kernel it belongs to
    (module docstring)."""
    layers = {layer.name: layer for layer in graph.layers}
    of: dict[str, int] = {}  # layer or written tensor name -> kernel index
    for i, k in enumerate(kernels):
        for name in k.layers:
            of[name] = i
            layer = layers.get(name)
            if layer is not None:
                for t in layer.outputs:
                    of[t.name] = i
    producer = {t.name: layer for layer in graph.layers for t in layer.outputs}
    consumers: dict[str, list] = {}
    for layer in graph.layers:
        for t in layer.inputs:
            consumers.setdefault(t.name, []).append(layer)
    ort_nodes = {n.name: n for n in optimized.graph.node} if optimized is not None else {}

    def via_tensor(tensor: str, depth: int = 0) -> int | None:
        if tensor in of:
            return of[tensor]
        if depth > 8:
            return None
        layer = producer.get(tensor)
        if layer is not None:  # an alias layer (no kernel): follow its data input back
            if layer.name in of:
                return of[layer.name]
            return via_tensor(layer.inputs[0].name, depth + 1) if layer.inputs else None
        for reader in consumers.get(tensor, []):  # a graph input: the kernel reading it
            if reader.name in of:
                return of[reader.name]
            for t in reader.outputs:
                j = via_tensor(t.name, depth + 1)
                if j is not None:
                    return j
        return None

    ort_producer = {t: n.name for n in ort_nodes.values() for t in n.output}
    ort_consumers: dict[str, list[str]] = {}
    for n in ort_nodes.values():
        for t in n.input:
            ort_consumers.setdefault(t, []).append(n.name)

    def reader_kernel(nd: onnx.NodeProto) -> int | None:
        for t in nd.output:
            for reader in ort_consumers.get(t, []):
                if reader != nd.name:
                    j = kernel_of(reader, 1)
                    if j is not None:
                        return j
        return None

    def kernel_of(node: str, depth: int = 0) -> int | None:
        nd = ort_nodes.get(node)
        if depth == 0 and nd is not None and nd.op_type == "DequantizeLinear":
            j = reader_kernel(nd)  # a dequantize belongs to the float op it feeds
            if j is not None:
                return j
        base = _base(node)
        if base in of:
            return of[base]
        head = base
        while "/" in head.strip("/"):
            head = head.rsplit("/", 1)[0]
            if head in of:
                return of[head]
        if nd is None:
            return None
        tensors = [*nd.output, *nd.input]
        for t in tensors:
            j = via_tensor(_base(t))
            if j is not None:
                return j
        if depth < 8:  # ORT's own tensors (reorder tokens): the ORT node that wrote the input
            for t in nd.input:
                up = ort_producer.get(t)
                if up is not None and up != node:
                    j = kernel_of(up, depth + 1)
                    if j is not None:
                        return j
        if depth == 0:  # a node reading only constants: the node reading it
            return reader_kernel(nd)
        return None

    out = [0.0] * len(kernels)
    lost = 0.0
    prev: int | None = None
    for node, ms in node_ms.items():
        j = kernel_of(node)
        if j is None and node not in ort_nodes and ort_nodes:
            j = prev  # a node ORT adds after optimizing (not in its optimized model): run order
        if j is None:
            lost += ms
        else:
            out[j] += ms
            prev = j
    return out, lost
