"""Turn a network :class:`~edgecnn.graph.Graph` into accelerator work items.

Each conv/transposed conv/linear/matmul layer becomes a :class:`ArrayWork` (a convolution shape
run on the PE array, :data:`ARRAY_SHAPES`; transposed convs by sub-pixel decomposition);
pooling, elementwise, activations that could not be fused, normalisations and the like become
:class:`VectorWork` on the vector unit. With ``fuse=True`` a BatchNorm that directly
follows a conv/linear (its only consumer) is folded into it and a following activation is fused,
so neither costs a pass over the feature map; with ``fuse=False`` each runs as its own vector
pass (the baseline of the case study).

Alias ops (:data:`edgecnn.graph.ir.ALIAS_KINDS`: reshape/flatten/identity, dropout, constants,
split) move no data: their outputs alias their inputs, exactly as in :mod:`edgecnn.analysis`.
Concat, slice/gather, cast, transpose and pad are copies: one vector pass that reads the inputs
and writes the output (the reasons are in :data:`edgecnn.graph.ir.MOVES_DATA`). Operators
without a model (attention, unknown) are listed in ``unknown`` and costed as one vector pass over
their tensors, never as zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from edgecnn.analysis.fusion import alias_roots, fused_groups
from edgecnn.errors import ShapeError
from edgecnn.graph.ir import Graph, Layer, OpKind
from edgecnn.hardware.tiling import ConvShape

UNMODELLED_OPS = {OpKind.ATTENTION, OpKind.UNKNOWN}


@dataclass(frozen=True)
class ArrayWork:
    """A conv (grouped/depthwise included) or GEMM on the PE array.

    ``inputs``/``outputs`` are ``(tensor name, elements)``; ``weight_is_activation`` marks a
    matmul whose second operand is a feature map rather than a parameter.
    """

    name: str
    op: str
    shape: ConvShape
    inputs: tuple[tuple[str, int], ...]
    outputs: tuple[tuple[str, int], ...]
    fused: tuple[str, ...] = ()
    sparsity: float = 0.0
    weight_is_activation: bool = False

    @property
    def winograd_eligible(self) -> bool:
        """3x3, stride 1, dilation 1, dense (groups = 1) convolutions."""
        s = self.shape
        return (
            self.op == "conv"
            and (s.kernel_h, s.kernel_w) == (3, 3)
            and (s.stride_h, s.stride_w) == (1, 1)
            and (s.dilation_h, s.dilation_w) == (1, 1)
            and s.groups == 1
        )


@dataclass(frozen=True)
class VectorWork:
    """A pass of the vector unit: ``ops`` element operations over its input/output tensors."""

    name: str
    op: str
    ops: int
    inputs: tuple[tuple[str, int], ...]
    outputs: tuple[tuple[str, int], ...]
    fused: tuple[str, ...] = ()


Work = ArrayWork | VectorWork


@dataclass
class Workload:
    """The work items of a graph in execution order."""

    name: str
    items: list[Work]
    graph_inputs: set[str] = field(default_factory=set)
    graph_outputs: set[str] = field(default_factory=set)
    unknown: list[str] = field(default_factory=list)


def _pair(v: object, default: int) -> tuple[int, int]:
    if v is None:
        return (default, default)
    if isinstance(v, int):
        return (v, v)
    t = tuple(int(x) for x in v)  # type: ignore[union-attr]
    return (t[0], t[-1]) if len(t) <= 2 else (t[0], t[1])


def conv_shape_of(layer: Layer) -> ConvShape:
    """The :class:`ConvShape` of an IR conv layer (NCHW input, weight (K, C/g, R, S))."""
    if not layer.inputs or len(layer.inputs[0].shape) != 4:
        raise ShapeError(f"conv layer {layer.name}: expected a 4-D NCHW input, got {layer.inputs}")
    b, c, h, w = layer.inputs[0].shape
    wshape = layer.params.get("weight")
    groups = int(layer.attr("groups", 1) or 1)
    if wshape is not None:
        k, r, s = wshape[0], wshape[2], wshape[3]
    else:
        k = layer.outputs[0].shape[1]
        r, s = _pair(layer.attr("kernel"), 1)
    sh, sw = _pair(layer.attr("stride"), 1)
    dh, dw = _pair(layer.attr("dilation"), 1)
    pad = layer.attr("padding", (0, 0, 0, 0)) or (0, 0, 0, 0)
    if isinstance(pad, int):
        pad = (pad, pad, pad, pad)
    pad = tuple(int(p) for p in pad)
    if len(pad) == 2:
        pad = (pad[0], pad[1], pad[0], pad[1])
    return ConvShape(b, c, k, h, w, r, s, sh, sw, pad[0], pad[1], pad[2], pad[3], dh, dw, groups)


def conv_transpose_shape_of(layer: Layer) -> ConvShape:
    """A transposed conv as its sub-pixel decomposition: one stride-1 conv on the array.

    A ConvTranspose of stride ``(sh, sw)`` is ``sh * sw`` phase convolutions over the *input*
    (no zero insertion), phase ``(a, b)`` writing the output pixels ``(sh*y + a, sw*x + b)``
    with the kernel taps of that phase. Stacked along the output channels they are one
    stride-1 conv: kernel ``kr = ceil(R' / sh)`` x ``kc = ceil(S' / sw)`` (``R' = dh (R - 1) + 1``,
    the dilated extent; phases with fewer taps are zero-padded), ``K * sh * sw`` output channels,
    the same groups, ``ceil(OH / sh) x ceil(OW / sw)`` output pixels (padded so the conv yields
    exactly that many); a pixel shuffle (free: a re-indexing of the output write) interleaves them.

    Array MACs = ``N * ceil(OH/sh) * ceil(OW/sw) * K * sh * sw * (C/G) * kr * kc``, i.e.
    profile's ConvTranspose MACs (``N*C*H*W*(K/G)*R*S``) times
    ``(ceil(OH/sh) * sh * kr) / (H * R)`` times the same factor for the width: **equal** when the
    kernel is a multiple of the stride and ``OH = sh * H`` (k=4/s=2/p=1, k=2/s=2/p=0, and any
    stride-1 transposed conv with ``p = (R-1)/2``), more otherwise (k=3/s=2/p=1/op=1: 16/9).
    The weight tile is counted at the decomposed size ``K*sh*sw * (C/G) * kr * kc``.
    """
    if not layer.inputs or len(layer.inputs[0].shape) != 4 or len(layer.outputs[0].shape) != 4:
        raise ShapeError(
            f"conv_transpose layer {layer.name}: expected 4-D NCHW tensors, "
            f"got {[t.shape for t in layer.inputs]} -> {[t.shape for t in layer.outputs]}"
        )
    b, c, h, w = layer.inputs[0].shape
    _, k, oh, ow = layer.outputs[0].shape
    groups = int(layer.attr("groups", 1) or 1)
    wshape = layer.params.get("weight")
    r, s = (wshape[2], wshape[3]) if wshape is not None else _pair(layer.attr("kernel"), 1)
    sh, sw = _pair(layer.attr("stride"), 1)
    dh, dw = _pair(layer.attr("dilation"), 1)
    kr, kc = math.ceil((dh * (r - 1) + 1) / sh), math.ceil((dw * (s - 1) + 1) / sw)
    sub_h, sub_w = math.ceil(oh / sh), math.ceil(ow / sw)
    pad_h, pad_w = max(0, sub_h - h + kr - 1), max(0, sub_w - w + kc - 1)
    top, left = min(kr - 1, pad_h), min(kc - 1, pad_w)
    return ConvShape(
        b, c, k * sh * sw, h, w, kr, kc, 1, 1, top, left, pad_h - top, pad_w - left, 1, 1, groups
    )


def linear_shape_of(layer: Layer) -> ConvShape:
    """A linear layer (weight (out, in)) as a 1x1 conv; leading input dims form the batch."""
    x = layer.inputs[0].shape
    w = layer.params.get("weight")
    out_f, in_f = (w[0], w[1]) if w is not None else (layer.outputs[0].shape[-1], x[-1])
    batch = math.prod(x[:-1]) if len(x) > 1 else 1
    return ConvShape.linear(max(batch, 1), in_f, out_f)


def matmul_shape_of(layer: Layer) -> ConvShape:
    """An activation x activation matmul ``(..., M, K) x (..., K, N)`` as a grouped GEMM.

    The ``G = prod(b.shape[:-2])`` matrices of the second operand (batch x heads) are ``G``
    groups; each group multiplies its ``M' = M * batch_a / G`` rows (``M`` times the leading
    dims of ``a`` that ``b`` broadcasts over) by its ``K x N`` matrix. MACs = ``G * M' * K * N``
    = output elements x K, exactly :func:`edgecnn.analysis.costs.matmul_cost`.
    """
    a, b = layer.inputs[0].shape, layer.inputs[1].shape
    if len(a) < 1 or len(b) < 2:
        raise ShapeError(
            f"matmul layer {layer.name}: expected (..., M, K) x (..., K, N), got {a} x {b}"
        )
    k, n = a[-1], b[-1]
    groups = math.prod(b[:-2]) if len(b) > 2 else 1
    batch_a = math.prod(a[:-2]) if len(a) > 2 else 1
    m = (a[-2] if len(a) > 1 else 1) * max(batch_a, groups) // groups
    if groups == 1:
        m = math.prod(a[:-1]) if len(a) > 1 else 1
    return ConvShape(m, k * groups, n * groups, 1, 1, 1, 1, groups=groups)


def _vector_ops(layer: Layer) -> int:
    out = layer.output_numel
    if layer.op in (OpKind.MAXPOOL, OpKind.AVGPOOL):
        kh, kw = _pair(layer.attr("kernel"), 0)
        if kh and kw:
            return out * kh * kw
        return max(layer.input_numel, out)  # global / adaptive pooling reads every input once
    if layer.op == OpKind.ELEMENTWISE:
        return out * max(len(layer.inputs) - 1, 1)
    if layer.op == OpKind.BATCHNORM:
        return 2 * out  # scale and shift
    if layer.op in (OpKind.SOFTMAX, OpKind.LAYERNORM, OpKind.GROUPNORM, OpKind.INSTANCENORM):
        return 4 * out
    return max(out, layer.input_numel)


ARRAY_SHAPES: dict[OpKind, Callable[[Layer], ConvShape]] = {
    OpKind.CONV: conv_shape_of,
    OpKind.CONV_TRANSPOSE: conv_transpose_shape_of,
    OpKind.LINEAR: linear_shape_of,
    OpKind.MATMUL: matmul_shape_of,
}
"""The ops that run on the PE array, each with the function giving its GEMM as a ConvShape."""


def build_workload(graph: Graph, fuse: bool = True) -> Workload:
    """Work items of ``graph`` (see the module docstring). ``fuse`` folds BN and fuses activations."""
    roots = alias_roots(graph)

    def root(name: str) -> str:
        return roots.get(name, name)

    def tensors(infos: list) -> tuple[tuple[str, int], ...]:
        return tuple((root(t.name), t.numel) for t in infos)

    absorbed: set[int] = set()
    fused_into: dict[int, list[Layer]] = {}
    if fuse:
        for group in fused_groups(graph):
            if len(group.layers) > 1:
                fused_into[id(group.anchor)] = group.layers[1:]
                absorbed.update(id(x) for x in group.layers[1:])

    items: list[Work] = []
    unknown: list[str] = []
    for layer in graph.layers:
        if id(layer) in absorbed or layer.op.is_alias:
            continue
        if layer.op in ARRAY_SHAPES:
            shape = ARRAY_SHAPES[layer.op](layer)
            chain = fused_into.get(id(layer), [])
            last = chain[-1] if chain else layer
            sparsity = float(layer.attr("weight_sparsity", 0.0) or 0.0)
            acts = layer.inputs[:1] if layer.op != OpKind.MATMUL else layer.inputs[:2]
            items.append(
                ArrayWork(
                    name=layer.name,
                    op=layer.op.value,
                    shape=shape,
                    inputs=tensors(acts),
                    outputs=tensors(last.outputs),
                    fused=tuple(x.name for x in chain),
                    sparsity=sparsity,
                    weight_is_activation=layer.op == OpKind.MATMUL,
                )
            )
            continue
        if layer.op in UNMODELLED_OPS:
            unknown.append(f"{layer.name} ({layer.source_op or layer.op.value})")
        chain = fused_into.get(id(layer), [])
        items.append(
            VectorWork(
                name=layer.name,
                op=layer.op.value,
                ops=_vector_ops(layer) + sum(x.output_numel for x in chain),
                inputs=tensors(layer.inputs),
                outputs=tensors((chain[-1] if chain else layer).outputs),
                fused=tuple(x.name for x in chain),
            )
        )
    return Workload(
        name=graph.name,
        items=items,
        graph_inputs={t.name for t in graph.inputs},
        graph_outputs={root(t.name) for t in graph.outputs},
        unknown=unknown,
    )
