"""The network intermediate representation every analysis reads.

A :class:`Graph` is an ordered list of :class:`Layer` s in execution order. Layers are connected
through tensor names: a layer's ``inputs`` are the activation tensors it reads (never its
parameters), its ``outputs`` the tensors it writes. Parameters (weights, biases, BatchNorm
statistics) are recorded as shapes in ``Layer.params``; the IR never holds tensor data.

Conventions
-----------
* Shapes are tuples of ints, activations in NCHW order for images, batch first.
* ``OpKind`` is the canonical operator; ``Layer.source_op`` keeps the frontend's own name
  (an ONNX ``op_type`` or an ATen overload name) for reports.
* Attributes use one vocabulary across frontends: ``kernel`` (kh, kw), ``stride`` (sh, sw),
  ``padding`` (top, left, bottom, right), ``dilation`` (dh, dw), ``groups`` (int),
  ``transposed`` (bool) and, for activations/elementwise ops, ``fn`` (e.g. ``"relu"``).
* ``Graph.param_count`` is the source model's own parameter count, before any folding.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from edgecnn.errors import ShapeError

#: Largest value of a tensor dimension (int64, what PyTorch, ONNX and numpy index with).
INT64_MAX = 2**63 - 1
#: Largest number of elements of a model input: 2^32 (16 GiB as float32). Larger inputs are
#: refused up front; nothing edgecnn analyses or runs needs them.
MAX_INPUT_ELEMENTS = 2**32


def check_input_shape(
    dims: tuple[int, ...], what: str = "input shape", max_elements: int | None = MAX_INPUT_ELEMENTS
) -> tuple[int, ...]:
    """``dims`` if every dimension is a positive int64 and the element count is at most
    ``max_elements`` (None: no bound); else ``ShapeError`` naming the offending value. ``what``
    names the shape in the message (e.g. ``"--input-shape '1x3x224x224'"``)."""
    if not dims or any(d <= 0 for d in dims):
        raise ShapeError(f"{what}: every dimension must be a positive integer, e.g. 1x3x224x224")
    big = next((d for d in dims if d > INT64_MAX), None)
    if big is not None:
        raise ShapeError(
            f"{what}: dimension {big} does not fit a 64-bit integer (max {INT64_MAX}); "
            "give a realistic shape, e.g. 1x3x224x224"
        )
    n = math.prod(dims)
    if max_elements is not None and n > max_elements:
        raise ShapeError(
            f"{what}: {n:.3g} elements is more than the limit of {max_elements:,} "
            f"({max_elements * 4 / 2**30:.0f} GiB as float32); use a smaller shape or batch"
        )
    return dims


DTYPE_BYTES: dict[str, int] = {
    "float64": 8,
    "float32": 4,
    "float16": 2,
    "bfloat16": 2,
    "int64": 8,
    "int32": 4,
    "int16": 2,
    "int8": 1,
    "uint8": 1,
    "bool": 1,
}

PRECISION_BYTES: dict[str, int] = {"fp32": 4, "fp16": 2, "int8": 1}


#: Layer attribute: the smallest value in an elementwise layer's static (constant) float
#: operands, where a frontend knows it. ONNX: exact, from the initializers and ``Constant``
#: nodes. PyTorch (meta tensors, no values): the smallest scalar written into them on the way
#: (``full``, ``fill_``, ``masked_fill``), e.g. Swin's -100 attention mask. Read by the latency
#: predictor: a finite mask so negative that exp() of it is a denormal float slows the
#: softmax and the product after it.
STATIC_MIN_ATTR = "static_min"


class OpKind(str, Enum):
    """Canonical operator kinds. The value is the name shown in reports and JSON."""

    CONV = "conv"  # Conv incl. grouped, depthwise, dilated (attrs: kernel/stride/padding/dilation/groups)
    CONV_TRANSPOSE = "conv_transpose"
    LINEAR = "linear"  # activation x weight matrix (Gemm, aten.addmm/mm with a parameter)
    MATMUL = "matmul"  # activation x activation (bmm, attention scores)
    ATTENTION = "attention"  # fused scaled-dot-product attention (Q K^T and A V)
    MAXPOOL = "maxpool"
    AVGPOOL = "avgpool"  # incl. global and adaptive average pooling
    BATCHNORM = "batchnorm"
    LAYERNORM = "layernorm"
    GROUPNORM = "groupnorm"
    INSTANCENORM = "instancenorm"
    ACTIVATION = "activation"  # attrs["fn"]: relu, relu6, clip, hardswish, hardsigmoid, silu, sigmoid, gelu, tanh, ...
    ELEMENTWISE = "elementwise"  # attrs["fn"]: add, sub, mul, div, ...
    SOFTMAX = "softmax"
    REDUCE = "reduce"  # attrs["fn"]: mean, sum, max, ...
    RESIZE = "resize"  # Upsample / interpolate
    CONCAT = "concat"
    SPLIT = "split"
    RESHAPE = "reshape"  # Reshape, Flatten, Squeeze, Unsqueeze, view
    TRANSPOSE = "transpose"  # Transpose, permute, channel shuffle
    SLICE = "slice"
    PAD = "pad"
    CAST = "cast"
    DROPOUT = "dropout"  # identity at inference
    CONSTANT = "constant"  # Shape, Constant, Gather on shapes: no data movement of activations
    UNKNOWN = "unknown"  # anything else: reported, never silently counted as zero

    @property
    def is_alias(self) -> bool:
        """True when the op's outputs are views of its first input: no data moved, no storage.

        See :data:`MOVES_DATA` for the decision per op; :data:`ALIAS_KINDS` is derived from it.
        """
        return not MOVES_DATA[self]


MOVES_DATA: dict[OpKind, bool] = {
    # Compute ops read their inputs and write a new tensor.
    **{k: True for k in OpKind},
    # Views: the output is the input's storage under another shape (or the input itself).
    OpKind.RESHAPE: False,  # Reshape, Flatten, Squeeze, Unsqueeze, view, Identity
    OpKind.DROPOUT: False,  # identity at inference
    OpKind.CONSTANT: False,  # shape arithmetic, never an activation
    OpKind.SPLIT: False,  # chunks of one buffer along an axis: each output is a view of it
    # Data movement that we count as moving data (a copy into a new buffer):
    # CONCAT: zero-copy only when a memory planner makes every producer write into its slot of
    #   the concatenated buffer; the IR's tensor-level liveness and on-chip residency cannot
    #   express one buffer made of several producers' outputs (each would have to stay live, and
    #   resident or not, as one block), so concat is a copy that reads its inputs once and writes
    #   its output once, in analysis and hardware alike.
    # SLICE: Gather / index_select / gather, which materialise a new tensor (strided slicing,
    #   ONNX Slice and aten.slice, is a view: the frontends record it as RESHAPE or skip it).
    # CAST: changes the element size (and Q/DQ rescale), so it rewrites every element.
    # TRANSPOSE: a permutation a consumer cannot stream as a contiguous view; it is materialised.
    # PAD: writes a larger tensor (padding a conv absorbs is an attribute of the conv instead).
}
"""Whether each :class:`OpKind` moves data (one entry per member, the single source of truth)."""

#: Ops whose outputs alias their first input (derived from :data:`MOVES_DATA`).
ALIAS_KINDS: frozenset[OpKind] = frozenset(k for k, moves in MOVES_DATA.items() if not moves)


@dataclass(frozen=True)
class TensorInfo:
    """An activation tensor: its name, shape and element type."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"

    @property
    def numel(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Size in bytes at the tensor's own dtype."""
        return self.numel * DTYPE_BYTES.get(self.dtype, 4)


@dataclass
class Layer:
    """One operator instance.

    ``params`` maps a parameter role (``weight``, ``bias``, ``running_mean``...) to its shape.
    ``param_count`` is the number of the source model's own trainable parameters attributed to
    this layer (buffers such as BatchNorm running statistics are not counted), so that the sum
    over layers equals ``Graph.param_count`` for the PyTorch frontend.
    """

    name: str
    op: OpKind
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    params: dict[str, tuple[int, ...]] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    source_op: str = ""
    param_count: int = 0

    @property
    def weight_numel(self) -> int:
        """Elements of all parameter tensors the layer reads at inference (weights, biases, BN stats)."""
        return sum(math.prod(s) for s in self.params.values())

    @property
    def input_numel(self) -> int:
        return sum(t.numel for t in self.inputs)

    @property
    def output_numel(self) -> int:
        return sum(t.numel for t in self.outputs)

    def attr(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)


@dataclass
class Graph:
    """An ordered network: layers in execution order, connected by tensor names."""

    name: str
    layers: list[Layer]
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    param_count: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def producers(self) -> dict[str, Layer]:
        """Map tensor name -> the layer that writes it."""
        return {t.name: layer for layer in self.layers for t in layer.outputs}

    def consumers(self) -> dict[str, list[Layer]]:
        """Map tensor name -> the layers that read it, in order."""
        out: dict[str, list[Layer]] = {}
        for layer in self.layers:
            for t in layer.inputs:
                out.setdefault(t.name, []).append(layer)
        return out

    def of_kind(self, *kinds: OpKind) -> list[Layer]:
        return [layer for layer in self.layers if layer.op in kinds]
