"""The network IR (:mod:`edgecnn.graph.ir`) and its frontends (ONNX, PyTorch)."""

from edgecnn.graph.ir import DTYPE_BYTES, PRECISION_BYTES, Graph, Layer, OpKind, TensorInfo

__all__ = ["DTYPE_BYTES", "PRECISION_BYTES", "Graph", "Layer", "OpKind", "TensorInfo"]
