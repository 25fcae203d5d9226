"""BatchNorm folding and conv+BN+activation fusion, for PyTorch modules and ONNX graphs.

Folding a BN (``y = g * (x - m) / sqrt(v + eps) + b``) into the conv/linear that feeds it:
with ``s = g / sqrt(v + eps)`` per output channel, ``W' = W * s`` (scaled along the output axis)
and ``b' = (b_conv - m) * s + b``. The folded network computes the same function in eval mode
(up to float rounding), has no BN layers and the same MACs.

A BN can be folded only when its input is the output of a conv/linear used by nothing else.
Pre-activation BN (DenseNet, pre-act ResNet: ``BN -> ReLU -> conv``, or BN after an add/concat)
has no such producer; it is reported in :attr:`FoldResult.unfoldable` with the reason. On
hardware it then costs a per-channel multiply-add; alternatives are folding it forward into the
*next* conv when no non-linearity sits between, or training with GroupNorm (no running
statistics, but it cannot be folded either: its statistics depend on the input) or with a
conv-after-BN ordering.

Fusion: conv/linear (+ folded BN) followed by ReLU / ReLU6 / Clip / HardSwish is reported as
one fused group (the activation runs in the conv's epilogue on accelerators and in ORT's fused
kernels); :func:`fold_batchnorm` leaves the activation as a separate module so the PyTorch model
stays exportable.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import onnx
import torch
import torch.fx
from onnx import numpy_helper
from torch import nn

from edgecnn.errors import EdgecnnError

_ACTS = (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Hardtanh, nn.SiLU)
_BNS = (nn.BatchNorm1d, nn.BatchNorm2d)


@dataclass
class FoldResult:
    """What folding did: ``folded`` (producer, bn) pairs, ``fused`` groups, ``unfoldable`` notes."""

    folded: list[tuple[str, str]] = field(default_factory=list)
    fused: list[list[str]] = field(default_factory=list)
    unfoldable: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "folded": [list(p) for p in self.folded],
            "fused": self.fused,
            "unfoldable": self.unfoldable,
        }


def fold_into(producer: nn.Module, bn: nn.Module) -> None:
    """Fold ``bn``'s eval-mode affine transform into ``producer`` (Conv2d or Linear) in place."""
    w = producer.weight
    s = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    shape = [-1] + [1] * (w.dim() - 1)
    if isinstance(producer, nn.ConvTranspose2d):
        raise EdgecnnError("folding BN into ConvTranspose2d is not supported: keep the BN")
    b = producer.bias.detach() if producer.bias is not None else torch.zeros_like(bn.running_mean)
    new_w = w.detach() * s.reshape(shape)
    new_b = (b - bn.running_mean) * s + bn.bias.detach()
    producer.weight = nn.Parameter(new_w)
    producer.bias = nn.Parameter(new_b)


def _set_module(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, attr, new)


def fold_batchnorm(module: nn.Module, inplace: bool = False) -> tuple[nn.Module, FoldResult]:
    """Fold every BN that directly follows a conv/linear into it; BN modules become Identity.

    Returns ``(folded module, FoldResult)``; the input module is copied unless ``inplace``.
    The module is traced with ``torch.fx`` to find producer -> BN edges; a module that cannot be
    traced raises :class:`EdgecnnError`. The result is in eval mode.
    """
    m = module if inplace else copy.deepcopy(module)
    m.eval()
    try:
        gm = torch.fx.symbolic_trace(m)
    except Exception as e:  # fx raises TraceError, TypeError, ... for dynamic control flow
        raise EdgecnnError(
            f"cannot trace {type(m).__name__} to find conv->BN pairs ({type(e).__name__}); "
            "fold BN before export or fold the ONNX graph with fold_batchnorm_onnx"
        ) from None
    mods = dict(m.named_modules())
    result = FoldResult()
    for node in gm.graph.nodes:
        if node.op != "call_module" or not isinstance(mods.get(node.target), _BNS):
            continue
        src = node.args[0]
        ok = (
            isinstance(src, torch.fx.Node)
            and src.op == "call_module"
            and isinstance(mods.get(src.target), (nn.Conv1d, nn.Conv2d, nn.Linear))
            and len(src.users) == 1
            and not isinstance(mods.get(src.target), nn.ConvTranspose2d)
        )
        if not ok:
            what = src.target if isinstance(src, torch.fx.Node) else src
            result.unfoldable.append(
                f"{node.target}: input comes from '{what}', not from a conv/linear used only by "
                "this BN (pre-activation BN); it stays a per-channel scale+shift"
            )
            continue
        fold_into(mods[src.target], mods[node.target])
        _set_module(m, node.target, nn.Identity())
        result.folded.append((src.target, node.target))
        nxt = list(node.users)
        group = [src.target, node.target]
        if len(nxt) == 1 and nxt[0].op == "call_module":
            if isinstance(mods.get(nxt[0].target), _ACTS):
                group.append(nxt[0].target)
        result.fused.append(group)
    return m, result


def count_batchnorm(module: nn.Module) -> int:
    """Number of BatchNorm modules left in ``module``."""
    return sum(isinstance(x, _BNS) for x in module.modules())


# ----------------------------------------------------------------------------- ONNX


def fold_batchnorm_onnx(model: onnx.ModelProto) -> tuple[onnx.ModelProto, FoldResult]:
    """Fold ``BatchNormalization`` nodes that follow a ``Conv`` into the conv's initializers.

    The conv's weight (and bias, created if absent) must be initializers (directly or through
    ``Identity`` nodes, as the exporter writes deduplicated constants) and the conv output
    must feed only the BN. Other BN nodes are left in place and listed in ``unfoldable``.
    Returns a new ``ModelProto`` (the input is not modified).
    """
    m = copy.deepcopy(model)
    g = m.graph
    inits = {t.name: t for t in g.initializer}
    producers = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    graph_outputs = {o.name for o in g.output}
    # the exporter deduplicates equal constants (e.g. a fresh model's BN statistics) into one
    # initializer read through Identity nodes: look through them to the initializer
    ident = {n.output[0]: n.input[0] for n in g.node if n.op_type == "Identity"}

    def const(x: str) -> onnx.TensorProto | None:
        for _ in range(len(ident) + 1):
            if x in inits or x not in ident:
                break
            x = ident[x]
        return inits.get(x)

    result = FoldResult()
    remove: list[onnx.NodeProto] = []
    for bn in list(g.node):
        if bn.op_type != "BatchNormalization":
            continue
        conv = producers.get(bn.input[0])
        name = bn.name or bn.output[0]
        if (
            conv is None
            or conv.op_type != "Conv"
            or len(consumers.get(conv.output[0], [])) != 1
            or conv.output[0] in graph_outputs
            or const(conv.input[1]) is None
            or (len(conv.input) > 2 and conv.input[2] and const(conv.input[2]) is None)
            or any(const(x) is None for x in bn.input[1:5])
        ):
            result.unfoldable.append(
                f"{name}: not directly after a Conv with constant weights (pre-activation BN)"
            )
            continue
        eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
        gamma, beta, mean, var = (numpy_helper.to_array(const(x)) for x in bn.input[1:5])
        w = numpy_helper.to_array(const(conv.input[1])).astype(np.float64)
        s = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
        if len(conv.input) > 2 and conv.input[2]:
            b = numpy_helper.to_array(const(conv.input[2])).astype(np.float64)
        else:
            b = np.zeros_like(s)
        new_w = (w * s.reshape(-1, *([1] * (w.ndim - 1)))).astype(np.float32)
        new_b = ((b - mean) * s + beta).astype(np.float32)
        w_name = f"{conv.input[1]}_bnfold"
        b_name = f"{conv.output[0]}_bnfold_bias"
        g.initializer.append(numpy_helper.from_array(new_w, w_name))
        g.initializer.append(numpy_helper.from_array(new_b, b_name))
        conv.input[1] = w_name
        if len(conv.input) > 2:
            conv.input[2] = b_name
        else:
            conv.input.append(b_name)
        conv.output[0] = bn.output[0]
        remove.append(bn)
        result.folded.append((conv.name or conv.output[0], name))
    for n in remove:
        g.node.remove(n)
    while True:  # Identity nodes that only fed the removed BNs
        read = {i for n in g.node for i in n.input} | graph_outputs
        dead = [n for n in g.node if n.op_type == "Identity" and n.output[0] not in read]
        if not dead:
            break
        for n in dead:
            g.node.remove(n)
    # drop initializers nobody uses any more
    used = {i for n in g.node for i in n.input}
    keep = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    return m, result


def count_onnx_ops(model: onnx.ModelProto, op_type: str) -> int:
    """Number of nodes of ``op_type`` in the main graph."""
    return sum(n.op_type == op_type for n in model.graph.node)
