"""The network IR (:mod:`edgecnn.graph.ir`) and its frontends (ONNX, PyTorch).

Resolving what a user names (model names, checkpoints, factories) to a graph lives in
:func:`edgecnn.models.load_graph`; this package never imports :mod:`edgecnn.models`.
"""

from edgecnn.graph.ir import DTYPE_BYTES, PRECISION_BYTES, Graph, Layer, OpKind, TensorInfo

__all__ = [
    "DTYPE_BYTES",
    "PRECISION_BYTES",
    "Graph",
    "Layer",
    "OpKind",
    "TensorInfo",
]
