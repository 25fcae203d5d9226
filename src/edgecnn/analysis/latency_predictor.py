"""Kernel-level latency prediction calibrated on a device (nn-Meter's idea), pure and JSON-only.

A network runs on a runtime as a sequence of *kernels*: ONNX Runtime fuses conv + BN + activation
(and, in fp32, the residual add after a conv: ``FusedConv``/NCHWc conv with a sum input) into one
kernel. :func:`kernels` groups the IR the same way and describes each kernel by a small feature
vector (MACs, activation and weight bytes at the precision, the bytes of a fused residual input,
the fused activation's bytes by activation class). A :class:`Predictor` holds one non-negative
linear model per kernel type, ``latency_ms = intercept + sum(coef_i * feature_i)``, fitted on
single-kernel models and on the kernels of random networks measured in the runtime
(:mod:`edgecnn.runtime.calibrate`; times are the fastest of the runs), with a nonlinear
factor per type fitted on the same samples (:mod:`edgecnn.analysis.latency_correction`:
boosted trees on the log-ratio measured / linear), plus two overheads: ``per_kernel_ms`` (the executor's dispatch cost of one kernel) and
``per_inference_ms`` (one ``run`` call's fixed cost). ``per_kernel_ms`` may be negative: it
corrects the few microseconds ORT's profiler adds to each kernel it times. The whole-model prediction is

    per_inference_ms + sum over kernels of (kernel_ms + per_kernel_ms)

The predictor is saved as plain JSON (no pickle) and loaded with :func:`load_predictor`.
Units: MACs, bytes, milliseconds.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.analysis.fusion import fused_groups
from edgecnn.analysis.latency_correction import Correction, correction_features
from edgecnn.errors import EdgecnnError
from edgecnn.graph.ir import ALIAS_KINDS, PRECISION_BYTES, STATIC_MIN_ATTR, Graph, Layer, OpKind

FORMAT = "edgecnn-latency-predictor"
FORMAT_VERSION = 2
#: Versions :meth:`Predictor.from_dict` reads (1: linear models only, no corrections).
READABLE_VERSIONS = (1, 2)
RUNTIMES = ("ort",)
PRECISIONS = ("fp32", "int8")

#: Activations ORT fuses into a conv kernel (FusedConv / NCHWc conv): nearly free.
CHEAP_ACTIVATIONS = frozenset({"relu", "relu6", "clip", "leaky_relu", "hardtanh"})
#: Activations ORT runs as a separate pass over the output (or a fused but costly one).
HSWISH_ACTIVATIONS = frozenset({"hardswish", "hardsigmoid"})
#: Sigmoid and SiLU (x * sigmoid(x)): fp32 ORT fuses SiLU into the conv as ``QuickGelu``, int8
#: runs them as integer lookup-table kernels (``QLinearSigmoid`` + ``QLinearMul``); the rest
#: ("other": GELU, tanh, ...) stays a float pass, in int8 between a dequantize and a quantize,
#: several times dearer per byte (EfficientNet's SiLU and MaxViT's GELU, int8).
SIGMOID_ACTIVATIONS = frozenset({"sigmoid", "silu", "swish"})

#: Feature names of each kernel type, in the order of the fitted coefficients.
FEATURES: dict[str, tuple[str, ...]] = {
    "conv": (
        "macs",
        "macs_k1",
        "macs_k5",
        "macs_lowc",
        "macs_c4_off",
        "in_bytes",
        "out_bytes",
        "weight_bytes",
        "sum_bytes",
        "act_cheap_bytes",
        "act_hswish_bytes",
        "act_sigmoid_bytes",
        "act_other_bytes",
    ),
    "dwconv": (
        "macs",
        "macs_strided",
        "macs_c16_off",
        "macs_c4_off",
        "in_bytes",
        "out_bytes",
        "weight_bytes",
        "act_cheap_bytes",
        "act_hswish_bytes",
        "act_sigmoid_bytes",
        "act_other_bytes",
    ),
    "gconv": (
        "macs",
        "macs_strided",
        "macs_c16_off",
        "group_pixels",
        "in_bytes",
        "out_bytes",
        "weight_bytes",
        "act_cheap_bytes",
    ),
    "linear": ("macs", "in_bytes", "out_bytes", "weight_bytes"),
    "maxpool": ("in_bytes", "out_bytes", "window_elems"),
    "avgpool": ("in_bytes", "out_bytes", "window_elems"),
    "gpool": ("in_bytes", "out_bytes"),
    "add": ("in_bytes", "out_bytes"),
    "mul": ("in_bytes", "out_bytes", "broadcast_bytes"),
    "activation": ("cheap_bytes", "hswish_bytes", "sigmoid_bytes", "other_bytes"),
    "concat": ("in_bytes", "out_bytes"),
    "matmul": ("macs", "in_bytes", "out_bytes", "gemms", "masked_macs"),
    "softmax": ("in_bytes", "out_bytes", "masked_bytes"),
    "norm": ("in_bytes", "out_bytes"),
    "memory": ("in_bytes", "out_bytes", "strided_bytes", "pad_bytes"),
    "bn": ("in_bytes", "out_bytes", "act_bytes"),
}
KERNEL_TYPES: tuple[str, ...] = tuple(FEATURES)

#: The calibrated type a kernel type falls back to when it has no model of its own.
FALLBACK: dict[str, str] = {
    "gconv": "conv",
    "mul": "add",
    "concat": "memory",
    "activation": "memory",
    "matmul": "linear",
    "softmax": "memory",
    "norm": "memory",
    "memory": "add",
    "bn": "memory",
}


class PredictorError(EdgecnnError):
    """A calibrated predictor that is missing, corrupt or does not fit the request."""


@dataclass
class Kernel:
    """One runtime kernel: its type, the IR layers it executes and its feature values."""

    name: str
    type: str
    layers: list[str]
    features: dict[str, float]


# ----------------------------------------------------------------------------- features


def _act_class(fn: str | None) -> str | None:
    if fn is None:
        return None
    if fn in CHEAP_ACTIVATIONS:
        return "cheap"
    if fn in HSWISH_ACTIVATIONS:
        return "hswish"
    if fn in SIGMOID_ACTIVATIONS:
        return "sigmoid"
    return "other"


def conv_features(
    cin: int,
    cout: int,
    h_out: int,
    w_out: int,
    kh: int,
    kw: int,
    groups: int,
    in_elems: int,
    precision: str,
    act: str | None = None,
    residual: bool = False,
    batch: int = 1,
) -> tuple[str, dict[str, float]]:
    """Kernel type and features of a (fused) convolution of ``batch`` images.

    ``in_elems``: input activation elements; MACs = out elements x (cin / groups) x kh x kw.
    Bytes are at ``precision`` (fp32 4, int8 1 per element); weights cout x cin/groups x kh x kw.
    ``residual``: a fused residual add reads a second tensor the size of the output.
    The MACs are repeated by shape class: of 1x1 kernels (``macs_k1``), of kernels of 5x5 or
    more (``macs_k5``), of few input channels per group (``macs_lowc``, < 16), of convs whose
    input or output channels are not a multiple of 4 (``macs_c4_off``, 16 input channels or
    more: ShuffleNet v2 x1.0's 58; ORT's int8 QLinearConv runs ~2x slower per MAC then, 58 or
    57 against 56 or 60 channels, 1x1 and 3x3, on this AVX-512 VNNI host, fp32 1.2-1.5x) and of
    strided convs (``macs_strided``: the input has more than 1.5x the output's pixels per
    channel);
    a depthwise conv's MACs are repeated when its channel count is not a multiple of 16
    (``macs_c16_off``: ORT's int8 depthwise kernel runs 2.3-2.5x slower per MAC then, on the
    AVX-512 VNNI host it was found on, at 14x14 and 28x28, 3x3 and 5x5, stride 1 and 2; fp32
    showed no step at 560-584 channels, yet its fit gives the feature a rate of ~40% of the
    MAC rate there, perhaps the NCHWc padding of small channel counts to 16); a grouped
    conv's MACs are repeated when its group width (input or output channels per group) is not
    a multiple of 16 (``macs_c16_off`` too: ORT's fp32 NCHWc transformer then leaves it to the
    NCHW ``FusedConv``, 1.6-2x slower per MAC at group widths 24-120 than the NCHWc ``Conv`` at
    16-128 on that host; its NCHWc block is 16 channels with AVX-512, 8 with AVX2), and it
    counts its groups x output pixels (``group_pixels``: a cost per group and pixel).
    """
    bpe = PRECISION_BYTES[precision]
    cin_g = cin // groups
    out_elems = batch * cout * h_out * w_out
    macs = out_elems * cin_g * kh * kw
    out_bytes = out_elems * bpe
    strided = in_elems > 1.5 * batch * cin * h_out * w_out
    cls = _act_class(act)
    f: dict[str, float] = {
        "macs": float(macs),
        "in_bytes": float(in_elems * bpe),
        "out_bytes": float(out_bytes),
        "weight_bytes": float(cout * cin_g * kh * kw * bpe),
        "macs_strided": float(macs if strided else 0),
        "act_cheap_bytes": float(out_bytes if cls == "cheap" else 0),
        "act_hswish_bytes": float(out_bytes if cls == "hswish" else 0),
        "act_sigmoid_bytes": float(out_bytes if cls == "sigmoid" else 0),
        "act_other_bytes": float(out_bytes if cls == "other" else 0),
    }
    # fp32 NCHWc runs a grouped conv of wide groups (32 channels or more, multiples of the
    # 16-channel block) as the dense conv kernel it runs per group, at the dense conv's rate
    # per MAC: 12.0-12.6 ms per G MAC at group widths 48-128 (2-16 groups) against 12.2 for a
    # 256-channel dense conv, 28x28 3x3, one core, this host (RegNetX-16GF's 128-wide groups);
    # int8 QLinearConv slows steadily as groups narrow (4.6 at 128, 9.9 at 32, against 3.2)
    wide_groups = (
        precision == "fp32"
        and groups > 1
        and cin_g >= 32
        and cin_g % 16 == 0
        and (cout // groups) % 16 == 0
    )
    if groups == 1 or wide_groups:
        f["macs_k1"] = float(macs if kh * kw == 1 else 0)
        f["macs_k5"] = float(macs if kh * kw >= 25 else 0)
        f["macs_lowc"] = float(macs if cin_g < 16 else 0)
        f["macs_c4_off"] = float(macs if cin_g >= 16 and (cin % 4 or cout % 4) else 0)
        f["sum_bytes"] = float(out_bytes if residual else 0)
        kind = "conv"
    elif groups == cin and cin_g == 1:
        f["macs_c16_off"] = float(macs if cout % 16 else 0)
        # channels off the multiples of 4: fp32 ORT leaves the depthwise conv out of NCHWc,
        # 7-8x slower per MAC (ShuffleNet v2 x1.0's 58 channels; calibration medians 550
        # against 66-84 ms per G MAC, one core, this host)
        f["macs_c4_off"] = float(macs if cout % 4 else 0)
        kind = "dwconv"
    else:
        f["macs_c16_off"] = float(macs if cin_g % 16 or (cout // groups) % 16 else 0)
        # ORT's int8 QLinearConv pays ~40-50 ns per group and output pixel whatever the group
        # width up to 16 (3x3, 7-56 pixels, 16-128 groups, one core, the AMD EPYC host):
        # ResNeXt's 4-wide groups run at 3.4 G MAC/s, 16-wide at 46, 128-wide at 200
        f["group_pixels"] = float(batch * groups * h_out * w_out)
        kind = "gconv"
    return kind, {k: f.get(k, 0.0) for k in FEATURES[kind]}


def _bytes(shapes: Sequence[Sequence[int]], bpe: int) -> float:
    return float(sum(math.prod(s) for s in shapes) * bpe)


def _layer_kernel(layer: Layer, precision: str) -> tuple[str, dict[str, float]]:
    """Type and features of a kernel made of ``layer`` alone (no fusion)."""
    bpe = PRECISION_BYTES[precision]
    ins = [t.shape for t in layer.inputs]
    outs = [t.shape for t in layer.outputs]
    in_b, out_b = _bytes(ins, bpe), _bytes(outs, bpe)
    op = layer.op
    if op is OpKind.CONV and not layer.attr("transposed", False) and len(ins[0]) == 4:
        return _conv_from_layer(layer, precision, None, False)
    if op is OpKind.LINEAR:
        w = layer.params.get("weight", (0, 0))
        out_elems = sum(math.prod(s) for s in outs)
        # the reduction length as analysis.costs counts it: the input's last dimension (the
        # weight is (out, in) from PyTorch and a Gemm, but (in, out) from an ONNX MatMul)
        k = int(layer.attr("k", ins[0][-1] if ins and ins[0] else 0))
        return "linear", {
            "macs": float(out_elems * k),
            "in_bytes": in_b,
            "out_bytes": out_b,
            "weight_bytes": float(math.prod(w) * bpe),
        }
    if op in (OpKind.MAXPOOL, OpKind.AVGPOOL):
        out_hw = math.prod(outs[0][2:]) if len(outs[0]) > 2 else 1
        if layer.attr("mode") == "global" or out_hw == 1:
            return "gpool", {"in_bytes": in_b, "out_bytes": out_b}
        kh, kw = layer.attr("kernel", (1, 1))
        kind = "maxpool" if op is OpKind.MAXPOOL else "avgpool"
        return kind, {
            "in_bytes": in_b,
            "out_bytes": out_b,
            "window_elems": float(math.prod(outs[0]) * kh * kw),
        }
    if op is OpKind.ELEMENTWISE and layer.attr("fn") in ("mul", "div"):
        small = min(ins, key=math.prod) if len(ins) > 1 else ins[0]
        bcast = out_b if len(ins) > 1 and math.prod(small) < math.prod(outs[0]) else 0.0
        return "mul", {"in_bytes": in_b, "out_bytes": out_b, "broadcast_bytes": bcast}
    if op is OpKind.ELEMENTWISE:
        return "add", {"in_bytes": in_b, "out_bytes": out_b}
    if op is OpKind.ACTIVATION:
        cls = _act_class(layer.attr("fn")) or "other"
        f = dict.fromkeys(FEATURES["activation"], 0.0)
        f[f"{cls}_bytes"] = out_b
        return "activation", f
    if op is OpKind.CONCAT:
        return "concat", {"in_bytes": in_b, "out_bytes": out_b}
    if op in (OpKind.MATMUL, OpKind.ATTENTION):
        from edgecnn.analysis.costs import layer_cost

        cost = layer_cost(layer)
        return "matmul", {
            "macs": float(cost.macs if cost else 0),
            "in_bytes": in_b,
            "out_bytes": out_b,
            # independent GEMM problems (batch x heads x windows): MLAS pays a fixed cost per
            # problem, which dominates attention's many small ones (Swin: 192 of 49x32x49)
            "gemms": float(math.prod(outs[0][:-2]) if len(outs[0]) > 2 else 1),
            "masked_macs": 0.0,  # set by _mark_denormal_masks
        }
    if op is OpKind.SOFTMAX:
        return "softmax", {"in_bytes": in_b, "out_bytes": out_b, "masked_bytes": 0.0}
    if op in (OpKind.LAYERNORM, OpKind.GROUPNORM, OpKind.INSTANCENORM, OpKind.REDUCE):
        # a reduction (Swin-v2's ReduceL2 of q and k) reads its input once, like a norm's
        # statistics pass, and in int8 both run in float between a dequantize and a quantize
        # (ORT has no integer kernel for either): 0.19-0.33 ms at Swin-v2-T's 393,216 int8
        # elements against 0.33 ms a norm of the same bytes is predicted
        return "norm", {"in_bytes": in_b, "out_bytes": out_b}
    kind = {OpKind.TRANSPOSE: "transpose", OpKind.SLICE: "slice", OpKind.PAD: "pad"}.get(op)
    return "memory", memory_features(kind or "copy", ins, outs, layer.attr("perm"), precision)


def canonical_perm(shape: Sequence[int], perm: Sequence[int]) -> list[int]:
    """``perm`` as the transpose it is of ``shape``: size-1 axes left out and axes that stay
    next to each other, in order, merged into one (NCHW -> NHWC of ``[1, C, H, W]`` is
    ``[1, 0]``: a 2-D transpose of C x HW; Swin's window partition ``(0, 1, 3, 2, 4, 5)`` of
    ``[1, 8, 7, 8, 7, 128]`` is ``[0, 2, 1, 3]``)."""
    kept = [a for a in range(len(shape)) if shape[a] != 1]
    rank = {a: i for i, a in enumerate(kept)}
    seq = [rank[a] for a in perm if shape[a] != 1]
    runs: list[list[int]] = []
    for a in seq:
        if runs and a == runs[-1][-1] + 1:
            runs[-1].append(a)
        else:
            runs.append([a])
    firsts = sorted(r[0] for r in runs)
    return [firsts.index(r[0]) for r in runs]


def gathers_elements(shape: Sequence[int], perm: Sequence[int]) -> bool:
    """Whether a transpose of ``shape`` by ``perm`` must gather its output element by element
    in ORT's generic loop: it moves the innermost axis, and it is not the move of one axis to
    another place (which ORT runs as a blocked 2-D transpose: NCHW <-> NHWC, a swap of the
    last two axes). Measured on one core: (0, 3, 2, 1) of ``[1, 96, 56, 56]`` and MaxViT's
    window partition take ~10x the time per element of (0, 1, 3, 2) or Swin's partition."""
    p = canonical_perm(shape, perm)
    if len(p) < 2 or p[-1] == len(p) - 1:
        return False
    return not any(p[:i] + p[i + 1 :] == sorted(p[:i] + p[i + 1 :]) for i in range(len(p)))


def memory_features(
    kind: str,
    in_shapes: Sequence[Sequence[int]],
    out_shapes: Sequence[Sequence[int]],
    perm: Sequence[int] | None,
    precision: str,
) -> dict[str, float]:
    """Features of a data-movement kernel (``kind``: transpose, slice, pad or copy; bytes at
    ``precision``).

    ``in_bytes``: bytes read (a slice or gather reads only what it keeps: its output's bytes);
    ``out_bytes``: bytes written; ``strided_bytes``: a transpose's output bytes when it
    gathers element by element (:func:`gathers_elements`: ~10x slower per byte in ORT than a
    transpose that keeps the innermost axis or moves one axis: MaxViT's window partitions
    against Swin's); ``pad_bytes``: a pad's output bytes (in an INT8 model ORT pads in float
    between a DequantizeLinear and a QuantizeLinear, 2-3x a slice of the same bytes)."""
    bpe = PRECISION_BYTES[precision]
    out_b = _bytes(out_shapes, bpe)
    in_b = out_b if kind == "slice" else _bytes(in_shapes, bpe)
    strided = (
        kind == "transpose"
        and perm is not None
        and bool(in_shapes)
        and gathers_elements(in_shapes[0], perm)
    )
    return {
        "in_bytes": in_b,
        "out_bytes": out_b,
        "strided_bytes": out_b if strided else 0.0,
        "pad_bytes": out_b if kind == "pad" else 0.0,
    }


def _conv_from_layer(
    layer: Layer, precision: str, act: str | None, residual: bool
) -> tuple[str, dict[str, float]]:
    n, cin, _, _ = layer.inputs[0].shape
    out = layer.outputs[0].shape
    kh, kw = layer.attr("kernel", (1, 1))
    groups = int(layer.attr("groups", 1))
    kind, f = conv_features(
        cin,
        out[1],
        out[2],
        out[3],
        kh,
        kw,
        groups,
        layer.inputs[0].numel,
        precision,
        act,
        residual,
        batch=n,
    )
    return kind, f


def kernels(graph: Graph, precision: str = "fp32") -> list[Kernel]:
    """The runtime kernels of ``graph`` at ``precision``, in execution order.

    Grouping follows :func:`edgecnn.analysis.fusion.fused_groups` (BN folded into the conv,
    the activation after it fused) and then, as ONNX Runtime does, a residual ``add`` whose one
    input is the output of a plain conv group read by nothing else is fused into that conv
    (``sum`` input), together with the activation after the add. Alias ops (reshape, flatten,
    dropout) are no kernels.
    """
    if precision not in PRECISION_BYTES:
        raise PredictorError(f"unknown precision '{precision}': choose fp32 or int8")
    groups = [g for g in fused_groups(graph) if not g.is_alias]
    readers: dict[str, int] = {}
    for layer in graph.layers:
        if layer.op in ALIAS_KINDS:
            continue
        for t in layer.inputs:
            readers[t.name] = readers.get(t.name, 0) + 1
    produced_by: dict[str, int] = {}
    for i, g in enumerate(groups):
        for t in g.outputs:
            produced_by[t.name] = i
    absorbed: set[int] = set()
    residual_of: dict[int, int] = {}  # conv group index -> add group index
    act_after: dict[int, int] = {}  # add group index -> activation group index
    for i, g in enumerate(groups):
        a = g.anchor
        if not (a.op is OpKind.ELEMENTWISE and a.attr("fn") == "add" and len(a.inputs) == 2):
            continue
        if a.inputs[0].shape != a.inputs[1].shape:
            continue
        for t in a.inputs:
            j = produced_by.get(t.name)
            if j is None or j in residual_of or j in absorbed:
                continue
            c = groups[j]
            if (
                c.anchor.op is OpKind.CONV
                and int(c.anchor.attr("groups", 1)) == 1
                and c.fused_activation is None
                and readers.get(t.name, 0) == 1
            ):
                residual_of[j] = i
                absorbed.add(i)
                break
        if i in absorbed and i + 1 < len(groups):
            nxt = groups[i + 1]
            out = g.outputs[0].name
            if (
                nxt.anchor.op is OpKind.ACTIVATION
                and nxt.anchor.inputs
                and nxt.anchor.inputs[0].name == out
                and readers.get(out, 0) == 1
            ):
                act_after[i] = i + 1
                absorbed.add(i + 1)
    out: list[Kernel] = []
    for i, g in enumerate(groups):
        if i in absorbed:
            continue
        names = [m.name for m in g.layers]
        a = g.anchor
        if a.op is OpKind.CONV and not a.attr("transposed", False) and len(a.inputs[0].shape) == 4:
            act = g.fused_activation.attr("fn") if g.fused_activation is not None else None
            residual = i in residual_of
            if residual:
                k = residual_of[i]
                names += [m.name for m in groups[k].layers]
                if groups[k].fused_activation is not None:  # add + act grouped by the IR
                    act = groups[k].fused_activation.attr("fn")
                elif k in act_after:
                    act_g = groups[act_after[k]]
                    act = act_g.anchor.attr("fn")
                    names += [m.name for m in act_g.layers]
            kind, f = _conv_from_layer(a, precision, act, residual)
        else:
            kind, f = _layer_kernel(a, precision)
            if a.op is OpKind.BATCHNORM:
                # ORT runs a BN it cannot fold as a per-channel (NCHWc) conv, with the ReLU fused
                fused = g.fused_activation is not None
                kind = "bn"
                f = {**f, "act_bytes": f["out_bytes"] if fused else 0.0}
                out.append(Kernel(a.name, kind, names, f))
                continue
            if g.fused_activation is not None and kind != "activation":
                # an activation fused by the IR after a non-conv kernel: its own pass in ORT
                out.append(Kernel(a.name, kind, [a.name], f))
                act_l = g.fused_activation
                kind, f = _layer_kernel(act_l, precision)
                out.append(Kernel(act_l.name, kind, [m.name for m in g.layers[1:]], f))
                continue
        out.append(Kernel(a.name, kind, names, f))
    if precision == "fp32":
        out = _fuse_into_matmuls(graph, out)
    else:
        out = _apply_nhwc_layout(graph, out, precision)
    _mark_denormal_masks(graph, out)
    return out


#: Layers an int8 conv's NHWC output keeps its layout through when all their activation
#: inputs are NHWC (ORT's layout transformer pushes its NHWC -> NCHW transpose through them).
NHWC_CARRIERS = frozenset(
    {OpKind.ACTIVATION, OpKind.ELEMENTWISE, OpKind.CONCAT, OpKind.MAXPOOL, OpKind.BATCHNORM}
)


def nhwc_tensors(graph: Graph) -> set[str]:
    """The 4-D tensors ORT holds in NHWC in an int8 model: the outputs of its convs (QLinearConv
    runs NHWC on x86) and of :data:`NHWC_CARRIERS` layers reading only such tensors."""
    nhwc: set[str] = set()
    for layer in graph.layers:
        if not layer.outputs or len(layer.outputs[0].shape) != 4:
            continue
        if layer.op is OpKind.CONV and not layer.attr("transposed", False):
            nhwc.add(layer.outputs[0].name)
        elif layer.op in NHWC_CARRIERS and layer.inputs:
            if all(t.name in nhwc for t in layer.inputs):
                nhwc.add(layer.outputs[0].name)
    return nhwc


def nhwc_storage_perm(
    source: Sequence[int], shape: Sequence[int], perm: Sequence[int]
) -> tuple[list[int], list[int]] | None:
    """A transpose by ``perm`` of ``shape``, which views an NHWC-stored NCHW tensor of logical
    shape ``source`` (itself, or a reshape of it that splits the channel axis: ShuffleNet's
    ``[N, g, C/g, H, W]``), as the transpose ORT runs on the stored data: ``(stored shape,
    permutation of it)``. ShuffleNet's channel shuffle (0, 2, 1, 3, 4) becomes (0, 4, 3, 1, 2)
    of ``[N, H, W, g, C/g]``. None for any other reshape."""
    n, c, h, w = source
    shape, perm = list(shape), list(perm)
    k = len(shape) - 3
    if k < 1 or shape[0] != n or shape[-2:] != [h, w] or math.prod(shape[1 : 1 + k]) != c:
        return None
    order = [0, k + 1, k + 2, *range(1, k + 1)]  # stored axis i holds logical axis order[i]
    pos = {a: i for i, a in enumerate(order)}
    return [shape[a] for a in order], [pos[a] for a in perm]


def _apply_nhwc_layout(graph: Graph, ks: list[Kernel], precision: str) -> list[Kernel]:
    """Transposes of an int8 conv's NHWC output, as ORT runs them. ORT's layout transformer
    merges the NHWC -> NCHW transpose into the transpose that reads the tensor (through
    reshapes of its channel axis): one that undoes the layout (a permute to NHWC after a conv,
    Swin's and ConvNeXt's) leaves nothing to run and is no kernel; another becomes the merged
    transpose, which may gather element by element (:func:`gathers_elements`: ShuffleNet's
    channel shuffle after a downsampling unit's concat of two conv branches, 0.26-0.46 ms
    against 0.02 ms for the same shuffle of an NCHW concat, int8, on this host)."""
    nhwc = nhwc_tensors(graph)
    if not nhwc:
        return ks
    layers = {layer.name: layer for layer in graph.layers}
    producer = {t.name: layer for layer in graph.layers for t in layer.outputs}
    out: list[Kernel] = []
    for k in ks:
        layer = layers.get(k.name)
        if k.type != "memory" or layer is None or layer.op is not OpKind.TRANSPOSE:
            out.append(k)
            continue
        src = layer.inputs[0] if layer.inputs else None
        while src is not None and src.name not in nhwc:
            p = producer.get(src.name)
            src = p.inputs[0] if p is not None and p.op is OpKind.RESHAPE and p.inputs else None
        perm = layer.attr("perm")
        stored = (
            nhwc_storage_perm(src.shape, layer.inputs[0].shape, perm)
            if src is not None and perm is not None
            else None
        )
        if stored is None:
            out.append(k)
            continue
        shape, merged = stored
        if canonical_perm(shape, merged) == sorted(canonical_perm(shape, merged)):
            continue  # the merged transpose is the identity: ORT removes both
        f = dict(k.features)
        f["strided_bytes"] = f["out_bytes"] if gathers_elements(shape, merged) else 0.0
        out.append(Kernel(k.name, k.type, k.layers, f))
    return out


def _is_scalar_scale(layer: Layer) -> bool:
    """A multiply by a constant scalar, or a division by one (``x / s``, not ``s / x``)."""
    if layer.op is not OpKind.ELEMENTWISE or layer.attr("fn") not in ("mul", "div"):
        return False
    if len(layer.inputs) != 1 or (layer.attr("fn") == "div" and "div_in0" in layer.params):
        return False
    return all(math.prod(s) <= 1 for s in layer.params.values())


def _swaps_last_two(layer: Layer) -> bool:
    perm = layer.attr("perm")
    if layer.op is not OpKind.TRANSPOSE or perm is None or len(perm) < 2:
        return False
    n = len(perm)
    return tuple(perm) == (*range(n - 2), n - 1, n - 2)


#: Producers through which ORT's transpose optimizer pushes or merges a transpose before the
#: matmul fusions run: a transpose after a gather of a transposed tensor (Swin's ``k`` of
#: ``qkv.permute(2, 0, 3, 1, 4)[1]``) is merged into one that no longer swaps the last two axes,
#: and ORT keeps it as a kernel.
MERGED_TRANSPOSE_SOURCES = frozenset({OpKind.SLICE, OpKind.TRANSPOSE})


def _is_plain_matmul(layer: Layer) -> bool:
    """A two-input MatMul (ONNX ``MatMul``, torch ``matmul``/``bmm``), not an ``Einsum``:
    ORT's matmul fusions do not touch Einsum (MaxViT's attention)."""
    return layer.op is OpKind.MATMUL and "einsum" not in (layer.source_op or "").lower()


def _fuse_into_matmuls(graph: Graph, ks: list[Kernel]) -> list[Kernel]:
    """ORT's fp32 ``FusedMatMul`` (MatMulScaleFusion, MatmulTransposeFusion): a multiply by a
    constant scalar on either input or on the output of a two-input MatMul, and a transpose of
    an input's last two axes (an attention's ``K^T``), become the matmul's ``alpha`` and
    ``transA``/``transB`` and run no kernel of their own. ORT folds a scale or transpose into
    every matmul that reads it and drops its node when only matmuls read it (a test checks
    this against ORT's optimized graph); an output scale folds when it alone reads the
    matmul's output; a transpose read by a folded scale folds too (ViT's ``k^T * s``), one
    after a gather or transpose does not (:data:`MERGED_TRANSPOSE_SOURCES`). The folded
    layer is listed in the matmul's kernel."""
    layers = {layer.name: layer for layer in graph.layers}
    readers: dict[str, list[Layer]] = {}
    for layer in graph.layers:
        for t in layer.inputs:
            readers.setdefault(t.name, []).append(layer)
    producer = {t.name: layer for layer in graph.layers for t in layer.outputs}
    index = {k.name: i for i, k in enumerate(ks)}
    into: dict[int, int] = {}  # fused kernel -> matmul kernel
    folded: dict[str, Layer] = {}  # a folded scale -> the matmul it went into
    for kind in ("scale", "transpose"):  # scales first: a K^T read by a scale then folds too
        for i, k in enumerate(ks):
            layer = layers.get(k.name)
            if layer is None or k.layers != [k.name] or not layer.outputs or not layer.inputs:
                continue
            if not (_is_scalar_scale(layer) if kind == "scale" else _swaps_last_two(layer)):
                continue
            src = producer.get(layer.inputs[0].name)
            if kind == "transpose" and src is not None and src.op in MERGED_TRANSPOSE_SOURCES:
                continue  # ORT's transpose optimizer first merges it with one upstream
            rs = [folded.get(r.name, r) for r in readers.get(layer.outputs[0].name, [])]
            target = None
            if rs and all(_is_plain_matmul(r) for r in rs):
                target = rs[0]  # ORT folds it into every matmul reading it, drops the node
            elif kind == "scale":
                if (
                    src is not None
                    and _is_plain_matmul(src)
                    and len(readers[src.outputs[0].name]) == 1
                ):
                    target = src
            j = index.get(target.name) if target is not None else None
            if j is not None and ks[j].type == "matmul":
                into[i] = j
                folded[layer.name] = target
    if not into:
        return ks
    for i, j in into.items():
        ks[j].layers.extend(ks[i].layers)
    return [k for i, k in enumerate(ks) if i not in into]


#: A finite additive mask ``v`` before a softmax with ``exp(v)`` a denormal float32 (between
#: 2^-149 and 2^-126: -103.28 < v < -87.34). Its masked probabilities (e.g. Swin's -100:
#: exp(-100) = 3.7e-44) are denormals, which x86 cores handle in microcode: the softmax and
#: the product reading its output run many times slower (swin_t: 4.0 ms against 0.26 ms for
#: the same product unmasked). A mask of -inf or -1e4 gives exact zeros and costs nothing.
DENORMAL_MASK_RANGE = (-103.28, -87.34)


def _mark_denormal_masks(graph: Graph, ks: list[Kernel]) -> None:
    """Set ``masked_bytes`` of the softmax kernels whose input adds a denormal-range mask
    (:data:`DENORMAL_MASK_RANGE`, from the layer's ``static_min``) and ``masked_macs`` of the
    matmul kernels reading their output (through alias layers)."""
    producer = {t.name: layer for layer in graph.layers for t in layer.outputs}

    def source(tensor: str) -> Layer | None:
        layer = producer.get(tensor)
        for _ in range(16):  # through reshapes, dropouts and other aliases
            if layer is None or layer.op not in ALIAS_KINDS or not layer.inputs:
                break
            layer = producer.get(layer.inputs[0].name)
        return layer

    lo, hi = DENORMAL_MASK_RANGE
    masked: set[str] = set()
    for layer in graph.layers:
        if layer.op is not OpKind.SOFTMAX or not layer.inputs:
            continue
        src = source(layer.inputs[0].name)
        v = src.attr(STATIC_MIN_ATTR) if src is not None else None
        if v is not None and lo < float(v) < hi:
            masked.add(layer.name)
    if not masked:
        return
    layers = {layer.name: layer for layer in graph.layers}
    for k in ks:
        if k.type == "softmax" and k.name in masked:
            k.features["masked_bytes"] = k.features["out_bytes"]
        elif k.type == "matmul":
            anchor = layers.get(k.name)
            reads = anchor.inputs if anchor is not None else []
            if any((s := source(t.name)) is not None and s.name in masked for t in reads):
                k.features["masked_macs"] = k.features["macs"]


# ----------------------------------------------------------------------------- the model


@dataclass
class TypeModel:
    """``latency_ms = intercept_ms + coef_ms . features`` (coefficients >= 0, ms per unit)."""

    features: list[str]
    intercept_ms: float
    coef_ms: list[float]
    samples: int = 0
    fit_median_abs_rel_error: float = 0.0

    def predict(self, f: dict[str, float]) -> float:
        return max(
            self.intercept_ms
            + sum(c * f.get(n, 0.0) for n, c in zip(self.features, self.coef_ms, strict=True)),
            0.0,
        )


@dataclass
class Predictor:
    """A calibrated per-kernel-type latency predictor for one runtime, precision and host."""

    runtime: str
    precision: str
    device: str
    cpu: str
    threads: int
    models: dict[str, TypeModel]
    per_kernel_ms: float = 0.0
    per_inference_ms: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)
    #: per kernel type: the nonlinear factor on its linear model (:mod:`latency_correction`)
    corrections: dict[str, Correction] = field(default_factory=dict)

    def type_model(self, kind: str) -> tuple[str, TypeModel]:
        """The model used for ``kind``: its own, else its fallback chain's (name, model)."""
        k: str | None = kind
        while k is not None:
            if k in self.models:
                return k, self.models[k]
            k = FALLBACK.get(k)
        raise PredictorError(
            f"the calibrated predictor has no model for kernel type '{kind}' (nor a fallback): "
            f"recalibrate with 'edgecnn calibrate --runtime {self.runtime} --precision {self.precision}'"
        )

    def predict_kernel(self, kernel: Kernel) -> float:
        """Predicted latency of one kernel in ms, without the per-kernel dispatch overhead."""
        return self.predict_features(kernel.type, kernel.features)

    def predict_features(self, kind: str, features: dict[str, float]) -> float:
        """Latency (ms) of a ``kind`` kernel with ``features``: the type model's linear
        prediction times its correction factor (the model used is the kind's own or its
        fallback's, and so is the correction)."""
        used, m = self.type_model(kind)
        ms = m.predict(features)
        corr = self.corrections.get(used)
        if corr is None:
            return ms
        x = correction_features(m.features, features, self.precision)
        return max(ms, 1e-6) * math.exp(corr.log_factor(x))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "runtime": self.runtime,
            "precision": self.precision,
            "device": self.device,
            "cpu": self.cpu,
            "threads": self.threads,
            "per_kernel_ms": self.per_kernel_ms,
            "per_inference_ms": self.per_inference_ms,
            "models": {k: asdict(m) for k, m in self.models.items()},
            "corrections": {k: c.to_dict() for k, c in self.corrections.items()},
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Predictor:
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ValueError("not an edgecnn latency predictor")
        if d.get("version") not in READABLE_VERSIONS:
            raise ValueError(f"predictor format version {d.get('version')!r}")
        models: dict[str, TypeModel] = {}
        for k, m in d["models"].items():
            feats = [str(x) for x in m["features"]]
            coef = [float(x) for x in m["coef_ms"]]
            if len(feats) != len(coef) or not all(map(math.isfinite, coef)):
                raise ValueError(f"model '{k}' has malformed coefficients")
            models[str(k)] = TypeModel(
                features=feats,
                intercept_ms=float(m["intercept_ms"]),
                coef_ms=coef,
                samples=int(m.get("samples", 0)),
                fit_median_abs_rel_error=float(m.get("fit_median_abs_rel_error", 0.0)),
            )
        return cls(
            runtime=str(d["runtime"]),
            precision=str(d["precision"]),
            device=str(d["device"]),
            cpu=str(d["cpu"]),
            threads=int(d["threads"]),
            models=models,
            per_kernel_ms=float(d["per_kernel_ms"]),
            per_inference_ms=float(d["per_inference_ms"]),
            meta=dict(d.get("meta", {})),
            corrections={
                str(k): Correction.from_dict(c) for k, c in d.get("corrections", {}).items()
            },
        )


@dataclass
class KernelPrediction:
    name: str
    type: str
    model: str  # the type model used (the kernel's own or its fallback)
    layers: list[str]
    latency_ms: float  # kernel_ms + per_kernel_ms


@dataclass
class ModelPrediction:
    """Whole-model prediction: ``latency_ms = per_inference_ms + sum(kernel latency_ms)``."""

    runtime: str
    precision: str
    latency_ms: float
    per_inference_ms: float
    kernels: list[KernelPrediction]
    #: the factor every time was scaled by (:func:`~edgecnn.runtime.anchor.speed_factor`)
    speed: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def predict_graph(predictor: Predictor, graph: Graph, speed: float = 1.0) -> ModelPrediction:
    """Predict ``graph``'s latency (ms) as the sum of its kernels' plus the per-inference overhead.

    ``speed`` scales every time: the host's speed now relative to the calibration's, as the
    speed anchor measures it (:func:`~edgecnn.runtime.anchor.speed_factor`; 1.0: as calibrated).
    """
    if not (math.isfinite(speed) and speed > 0):
        raise PredictorError(f"speed factor must be a positive number, got {speed}")
    rows: list[KernelPrediction] = []
    for k in kernels(graph, predictor.precision):
        used, _ = predictor.type_model(k.type)
        rows.append(
            KernelPrediction(
                k.name,
                k.type,
                used,
                k.layers,
                speed
                * max(
                    predictor.predict_features(k.type, k.features) + predictor.per_kernel_ms, 0.0
                ),
            )
        )
    per_inference = speed * predictor.per_inference_ms
    total = per_inference + sum(r.latency_ms for r in rows)
    return ModelPrediction(
        predictor.runtime, predictor.precision, total, per_inference, rows, speed
    )


# ----------------------------------------------------------------------------- fitting


def fit_type_model(
    features: Sequence[str],
    x: np.ndarray,
    y_ms: np.ndarray,
    relative: bool = True,
    weights: np.ndarray | None = None,
) -> TypeModel:
    """Non-negative least squares of ``y_ms`` (n) on ``[1, x]`` (x: n x len(features)).

    With ``relative`` each sample is weighted by ``1 / y`` so that the fit minimises relative
    errors (small kernels count as much as big ones); ``weights`` (n, >= 0) multiply that
    weight (e.g. to trust kernels measured inside networks more than isolated ones).
    """
    from scipy.optimize import nnls

    x = np.asarray(x, dtype=np.float64).reshape(len(y_ms), len(features))
    y = np.asarray(y_ms, dtype=np.float64)
    a = np.hstack([np.ones((len(y), 1)), x])
    scale = np.abs(a).max(axis=0)
    scale[scale == 0] = 1.0
    w = 1.0 / np.maximum(y, 1e-6) if relative else np.ones_like(y)
    if weights is not None:
        w = w * np.sqrt(np.asarray(weights, dtype=np.float64))
    coef, _ = nnls((a / scale) * w[:, None], y * w, maxiter=50 * a.shape[1])
    coef = coef / scale
    model = TypeModel(list(features), float(coef[0]), [float(c) for c in coef[1:]], len(y))
    pred = np.array([model.predict(dict(zip(features, row, strict=True))) for row in x])
    model.fit_median_abs_rel_error = float(np.median(np.abs(pred - y) / np.maximum(y, 1e-9)))
    return model


# ----------------------------------------------------------------------------- storage


def cpu_key(cpu: str | None = None) -> str:
    """The host key of predictor files: the CPU model name as a lower-case slug."""
    from edgecnn.analysis.devices import cpu_model

    slug = re.sub(r"[^a-z0-9]+", "-", (cpu if cpu is not None else cpu_model()).lower())
    return slug.strip("-")[:80] or "unknown-cpu"


def default_path(runtime: str, precision: str, cpu: str | None = None) -> Path:
    """``~/.cache/edgecnn/predictors/<runtime>-<precision>-<cpu-key>.json``."""
    from edgecnn.analysis.devices import cache_dir

    return cache_dir() / "predictors" / f"{runtime}-{precision}-{cpu_key(cpu)}.json"


def save_predictor(predictor: Predictor, path: str | Path | None = None) -> Path:
    """Write ``predictor`` as JSON (atomically) at ``path`` or its default path."""
    from edgecnn.io import atomic_write_text

    p = Path(path) if path is not None else default_path(predictor.runtime, predictor.precision)
    p.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(p, json.dumps(predictor.to_dict(), indent=1))


def load_predictor(
    runtime: str = "ort", precision: str = "fp32", path: str | Path | None = None
) -> Predictor:
    """Load a calibrated predictor with plain ``json`` (never unpickled).

    Without ``path``, the host's default file; a missing or corrupt file raises
    :class:`PredictorError` whose one-line message says how to calibrate.
    """
    how = f"run 'edgecnn calibrate --runtime {runtime} --precision {precision}'"
    p = Path(path) if path is not None else default_path(runtime, precision)
    if not p.is_file():
        raise PredictorError(
            f"no calibrated predictor for {runtime}/{precision} on this host: {how}"
        )
    try:
        pred = Predictor.from_dict(json.loads(p.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as e:
        raise PredictorError(
            f"calibrated predictor '{p}' is unreadable ({type(e).__name__}): {how} again"
        ) from None
    if pred.runtime != runtime or pred.precision != precision:
        raise PredictorError(
            f"predictor '{p}' is for {pred.runtime}/{pred.precision}, not {runtime}/{precision}: {how}"
        )
    return pred
