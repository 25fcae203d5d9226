"""The network IR (:mod:`edgecnn.graph.ir`) and its frontends (ONNX, PyTorch)."""

from edgecnn.graph.ir import DTYPE_BYTES, PRECISION_BYTES, Graph, Layer, OpKind, TensorInfo
from edgecnn.graph.load import load_graph, load_module

__all__ = [
    "DTYPE_BYTES",
    "PRECISION_BYTES",
    "Graph",
    "Layer",
    "OpKind",
    "TensorInfo",
    "load_graph",
    "load_module",
]
