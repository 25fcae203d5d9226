"""Compute cost of each operator kind: a registry of small pure functions.

Conventions (also in the README)
--------------------------------
* **MACs** are multiply-accumulates of convolution, transposed convolution, linear/GEMM and
  matmul/attention only. Bias additions are not counted.
* **FLOPs** = 2 x MACs for those ops (plus one per attention score for the softmax of a fused
  attention), and for every other op one FLOP per output element (add, mul, activation,
  BatchNorm, LayerNorm, softmax, resize), except pooling, which counts one per window element
  (kh*kw per output; global/adaptive pooling: one per input element), and reductions, one per
  input element. Pure data movement (concat, reshape, transpose, pad, slice, cast) is 0 FLOPs.
* Unknown operators have no cost function: :func:`layer_cost` returns ``None`` and the caller
  lists them as unknown, never as zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from edgecnn.errors import EdgecnnError
from edgecnn.graph.ir import Layer, OpKind


@dataclass(frozen=True)
class OpCost:
    """Multiply-accumulates and floating-point operations of one layer."""

    macs: int
    flops: int


CostFn = Callable[[Layer], OpCost]
COST_FNS: dict[OpKind, CostFn] = {}


class RegistryError(EdgecnnError):
    """A cost function registered twice."""


def cost_fn(*kinds: OpKind) -> Callable[[CostFn], CostFn]:
    """Register ``fn`` as the cost function of ``kinds`` (each kind at most once)."""

    def register(fn: CostFn) -> CostFn:
        for k in kinds:
            if k in COST_FNS:
                raise RegistryError(f"duplicate cost function for {k.name}")
            COST_FNS[k] = fn
        return fn

    return register


def layer_cost(layer: Layer) -> OpCost | None:
    """The cost of ``layer``, or ``None`` when its operator is unknown."""
    fn = COST_FNS.get(layer.op)
    return fn(layer) if fn is not None else None


def _out(layer: Layer) -> int:
    return layer.outputs[0].numel if layer.outputs else 0


@cost_fn(OpKind.CONV)
def conv_cost(layer: Layer) -> OpCost:
    """MACs = N*K*P*Q*(C/G)*R*S (output elements x input channels per group x kernel area)."""
    c_in = layer.inputs[0].shape[1]
    groups = int(layer.attr("groups", 1))
    macs = _out(layer) * (c_in // groups) * math.prod(layer.attr("kernel", (1, 1)))
    return OpCost(macs, 2 * macs)


@cost_fn(OpKind.CONV_TRANSPOSE)
def conv_transpose_cost(layer: Layer) -> OpCost:
    """MACs = N*C*H*W*(K/G)*R*S (every input element scatters into K/G channels x kernel area)."""
    c_out = layer.outputs[0].shape[1]
    groups = int(layer.attr("groups", 1))
    macs = layer.inputs[0].numel * (c_out // groups) * math.prod(layer.attr("kernel", (1, 1)))
    return OpCost(macs, 2 * macs)


@cost_fn(OpKind.LINEAR, OpKind.MATMUL)
def matmul_cost(layer: Layer) -> OpCost:
    """MACs = output elements x reduction length (``in_features`` / the shared dimension K)."""
    k = int(layer.attr("k", layer.inputs[0].shape[-1]))
    macs = _out(layer) * k
    return OpCost(macs, 2 * macs)


@cost_fn(OpKind.ATTENTION)
def attention_cost(layer: Layer) -> OpCost:
    """Scaled-dot-product attention: MACs = B*H*L*S*E (Q K^T) + B*H*L*S*Ev (A V).

    With ``fused_projections`` (PyTorch's native multi-head attention) the input projection
    (3*B*L*E*E) and output projection (B*L*E*E) are included. FLOPs add one per score (softmax).
    """
    if layer.attr("fused_projections"):  # inputs (B, L, E), (B, S, E), (B, S, E)
        q = layer.inputs[0].shape
        s_len = layer.inputs[1].shape[-2] if len(layer.inputs) > 1 else q[-2]
        batch, l_len, e = math.prod(q[:-2]), q[-2], q[-1]
        projections = batch * (l_len + 2 * s_len) * e * e + batch * l_len * e * e
        macs = projections + 2 * batch * l_len * s_len * e
        scores = batch * int(layer.attr("num_heads", 1)) * l_len * s_len
        return OpCost(macs, 2 * macs + scores)
    q, k, v = (t.shape for t in layer.inputs[:3])
    scores = math.prod(q[:-1]) * k[-2]
    macs = scores * q[-1] + scores * v[-1]
    return OpCost(macs, 2 * macs + scores)


@cost_fn(OpKind.MAXPOOL, OpKind.AVGPOOL)
def pool_cost(layer: Layer) -> OpCost:
    """FLOPs = output elements x kernel area; global/adaptive pooling: one per input element."""
    kernel = layer.attr("kernel")
    if kernel is None or layer.attr("mode") in ("adaptive", "global"):
        return OpCost(0, layer.inputs[0].numel)
    return OpCost(0, _out(layer) * math.prod(kernel))


@cost_fn(
    OpKind.BATCHNORM,
    OpKind.LAYERNORM,
    OpKind.GROUPNORM,
    OpKind.INSTANCENORM,
    OpKind.ACTIVATION,
    OpKind.ELEMENTWISE,
    OpKind.SOFTMAX,
    OpKind.RESIZE,
)
def per_element_cost(layer: Layer) -> OpCost:
    """FLOPs = one per output element."""
    return OpCost(0, _out(layer))


@cost_fn(OpKind.REDUCE)
def reduce_cost(layer: Layer) -> OpCost:
    """FLOPs = one per input element."""
    return OpCost(0, layer.inputs[0].numel if layer.inputs else 0)


@cost_fn(
    OpKind.CONCAT,
    OpKind.SPLIT,
    OpKind.RESHAPE,
    OpKind.TRANSPOSE,
    OpKind.SLICE,
    OpKind.PAD,
    OpKind.CAST,
    OpKind.DROPOUT,
    OpKind.CONSTANT,
)
def data_movement_cost(layer: Layer) -> OpCost:
    """Data movement only: 0 MACs, 0 FLOPs."""
    return OpCost(0, 0)


#: Ops that carry multiply-accumulates (the ones counted in ``macs``).
MAC_KINDS: frozenset[OpKind] = frozenset(
    {OpKind.CONV, OpKind.CONV_TRANSPOSE, OpKind.LINEAR, OpKind.MATMUL, OpKind.ATTENTION}
)
