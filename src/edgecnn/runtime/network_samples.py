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

1. the name, without ORT's ``_nchwc`` / ``_bn_nchwc`` suffix, is an IR layer's name or the name of a tensor a
   layer writes (ORT names an NCHWc conv after its output tensor);
2. else a prefix of the name up to a ``/`` is (ORT's fusions append ``/MatMulAddFusion``,
   ``/GatherSliceToSplitFusion``);
3. else the node's output, then its inputs, in ORT's optimized model are followed through the
   IR's alias layers (reshape, flatten) to the kernel that writes them, or that reads them when
   nothing does (a reorder of the graph input goes to the first kernel);
4. else the kernel of the ORT node that wrote its input (ORT's own tensors: a GELU ORT runs
   after an NCHWc conv and its reorder goes to the conv's kernel, which holds that GELU).

Nodes attributed to nothing (ORT's own nodes that its optimized model does not list) are
counted, not dropped silently. INT8 networks are not attributed: ORT's quantizer renames the
tensors, so the names no longer lead back to the IR. Units: milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence

import onnx

from edgecnn.analysis.latency_predictor import Kernel
from edgecnn.graph.ir import Graph

#: Suffixes ORT's NCHWc transformer appends to the tensor it names a node after (a conv; a BN
#: it runs as a 1x1 depthwise conv), longest first.
NCHWC_SUFFIXES = ("_bn_nchwc", "_nchwc")


def _base(name: str) -> str:
    for suffix in NCHWC_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def attribute_nodes(
    graph: Graph,
    kernels: Sequence[Kernel],
    node_ms: dict[str, float],
    optimized: onnx.ModelProto | None = None,
) -> tuple[list[float], float]:
    """``(ms per kernel, ms attributed to no kernel)``: each profiled node's time (``node_ms``,
    one figure per node name) added to the kernel it belongs to (module docstring)."""
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

    def kernel_of(node: str, depth: int = 0) -> int | None:
        base = _base(node)
        if base in of:
            return of[base]
        head = base
        while "/" in head.strip("/"):
            head = head.rsplit("/", 1)[0]
            if head in of:
                return of[head]
        nd = ort_nodes.get(node)
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
        return None

    out = [0.0] * len(kernels)
    lost = 0.0
    for node, ms in node_ms.items():
        j = kernel_of(node)
        if j is None:
            lost += ms
        else:
            out[j] += ms
    return out, lost
