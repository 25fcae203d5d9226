"""Calibrate a per-kernel latency predictor on this host for ONNX Runtime (nn-Meter's method).

:func:`calibrate` samples kernel configurations from parametric ranges shaped like the
torchvision zoo (channels growing as the feature map shrinks, 1x1/3x3/5x5/7x7 kernels, strides
1/2, depthwise and grouped convs, SE-style broadcast multiplies, classifier and transformer
linears, attention matmuls), builds each as a tiny single-kernel ONNX model with
:mod:`onnx.helper` (no zoo model is used to derive them, so none is "used in calibration"), runs
it in ONNX Runtime with one intra-op thread and ORT's profiler, and takes the kernel's own time:
the sum of the per-node ``kernel_time`` minima over the runs (:data:`TIMING_STATISTIC`), without the model's boundary nodes (NCHWc
``ReorderInput``/``ReorderOutput``, and in int8 the input ``QuantizeLinear`` and output
``DequantizeLinear``, but not the conversions of an op ORT runs in float, which it pays inside
a network too), which a whole network runs only once, and without the untimed ReLU
``tail`` each model ends with (so that ORT fuses the kernel's activation as inside a network). A model of one tiny ReLU gives the
per-inference overhead (wall time minus kernel time), a chain of tiny ReLUs the per-kernel
correction: the executor's dispatch cost of one more kernel minus the time ORT's profiler books
for it (the profiler inflates tiny kernels by a few microseconds, so this is usually negative).
Each sampled kernel is replicated (:func:`replicate`) until the model's data exceeds the last-level
cache, so that the kernels read cold weights and activations as they do deep in a network.

Random networks (``chains``): isolated kernels miss the context of a network (a kernel reads
the activations its producer just wrote, from the cache, but weights that other kernels
evicted; batch-1 classifier linears stream their weights at a fraction of the isolated rate).
:func:`sample_chain` draws random sequential CNNs whose shapes chain (convs, depthwise and
grouped convs, pools, SE-style multiplies, residual adds, concats, BN, an MLP classifier) and
:func:`sample_token_chain` transformer-like ones (layer norm, linears on ``[1, T, D]`` or
``[1, h, h, D]`` tokens, GELU, residual add); :func:`build_chain` glues the single-kernel
models into one network with the names of kernel ``i`` prefixed ``k<i>_``, and
:func:`measure_chain` attributes each profiled node to its kernel by that prefix. These
in-context samples weigh :data:`CHAIN_SAMPLE_WEIGHT` times the isolated ones in the fit; the
networks' wall time minus their kernel times (:func:`chain_per_kernel_ms`) is recorded for
comparison, the predictor keeping the ReLU chain's per-kernel figure. No network is derived from a zoo model. Each kernel type's model
is then fitted by :func:`edgecnn.analysis.latency_predictor.fit_type_model`, its nonlinear
correction by :func:`fit_corrections`, and the predictor saved as JSON.

INT8: each single-kernel model is quantized with ONNX Runtime's static QDQ quantizer with the
settings :class:`edgecnn.compress.quantize.QuantConfig` uses by default (activations uint8
asymmetric, weights int8 symmetric per channel, min/max calibration, dedicated QDQ pairs); the
runtime package may not import ``compress``, so the settings are repeated here
(:data:`INT8_SETTINGS`) and a test checks they agree.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import re
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgecnn.analysis.latency_correction import (
    MIN_SAMPLES,
    Correction,
    correction_features,
    fit_correction,
)
from edgecnn.analysis.latency_predictor import (
    FEATURES,
    PRECISIONS,
    Kernel,
    Predictor,
    TypeModel,
    conv_features,
    fit_type_model,
    kernels,
    memory_features,
)
from edgecnn.errors import ConfigError
from edgecnn.graph.ir import Graph
from edgecnn.runtime.anchor import AnchorClock
from edgecnn.runtime.network_samples import attribute_nodes
from edgecnn.runtime.onnx_prep import prepare_for_quantization
from edgecnn.schema import ResultKind

#: ORT quantizer settings, the same as ``compress.quantize.QuantConfig()``'s defaults.
INT8_SETTINGS: dict[str, Any] = {
    "activation_type": "uint8",
    "weight_type": "int8",
    "per_channel": True,
    "symmetric_activations": False,
    "symmetric_weights": True,
    "calibration": "minmax",
}

#: Share of the samples given to each kernel type (the rest of ``samples`` is split evenly).
TYPE_WEIGHTS: dict[str, float] = {
    "conv": 4.0,
    "dwconv": 2.0,
    "gconv": 1.0,
    "linear": 1.0,
    "maxpool": 0.5,
    "avgpool": 0.5,
    "gpool": 0.75,
    "add": 0.75,
    "mul": 0.75,
    "activation": 0.75,
    "concat": 0.75,
    "matmul": 1.0,
    "softmax": 0.5,
    "norm": 0.5,
    "memory": 1.5,
    "bn": 0.5,
}
#: The sampled data-movement kernels (:func:`_memory_shapes`).
MEMORY_FNS = ("transpose", "transpose_rows", "transpose_mixed", "pad", "slice")
MAX_SAMPLE_MACS = 6e8  #: sampled kernels are at most this many MACs (keeps calibration short)
MIN_PER_TYPE = 1
OPSET = 17
#: Copies of a sampled kernel in one calibration model: enough that their data (inputs,
#: weights, outputs) exceeds the last-level cache, so every kernel reads cold data, as a kernel
#: deep in a network does. At most this many.
MAX_COPIES = 16
#: The speed anchor is timed after every this many calibration samples (and at the start).
ANCHOR_EVERY = 10
#: Every time here is the fastest of the timed runs (per node for profiled kernel times):
#: on a machine shared with other work the median drifts by tens of percent from one minute to
#: the next, the minimum by a few; the predictor therefore predicts the uncontended latency.
TIMING_STATISTIC = "min"
COLD_BYTES = 96 * 2**20


@dataclass
class Sample:
    """One measured kernel: its type, configuration, features and kernel time (ms)."""

    type: str
    config: dict[str, Any]
    features: dict[str, float]
    kernel_ms: float
    wall_ms: float
    ort_ops: list[str] = field(default_factory=list)
    #: "kernel": a replicated single-kernel model; "chain": one kernel of a random network;
    #: "network": one kernel of a whole network given to :func:`calibrate` as ``networks``
    source: str = "kernel"
    #: the factor ``kernel_ms`` was scaled by to the calibration's median speed
    #: (:func:`normalise_to_anchor`; the measured time is ``kernel_ms / anchor_scale``)
    anchor_scale: float = 1.0


@dataclass
class CalibrationResult:
    """What ``edgecnn calibrate`` did: the predictor file, the samples and the fit per type."""

    runtime: str
    precision: str
    device: str
    cpu: str
    path: str
    samples: int
    seconds: float
    per_inference_ms: float
    per_kernel_ms: float
    types: dict[str, dict[str, float]]
    rows: list[dict[str, Any]] = field(default_factory=list)
    #: per random network: kernels, extra graph inputs, wall_ms and the sum of its kernel times
    chains: list[dict[str, float]] = field(default_factory=list)
    #: per whole network (``networks``): its name, kernels, wall_ms, kernel_sum_ms and the
    #: profiled time attributed to no kernel (unattributed_ms)
    networks: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": ResultKind.CALIBRATION.value, **asdict(self)}


# ----------------------------------------------------------------------------- sampling


def _channels(rng: np.random.Generator, hw: int, lo: int = 8, hi: int = 2048) -> int:
    """Channels typical at feature-map size ``hw``: ~64 at 56x56, doubling as hw halves;
    multiples of 8 (4 below 32), 15% of them (16 or more) 1-3 past one."""
    base = 64.0 * 56.0 / max(hw, 1)
    c = base * 2.0 ** rng.uniform(-2.0, 1.5)
    step = 8 if c >= 32 else 4
    c = min(max(round(c / step) * step, lo), hi)
    if c >= 16 and rng.random() < 0.15:  # channels off the multiples of 4 (ShuffleNet's 58)
        c += int(rng.choice([1, 2, 2, 3]))
    return int(min(c, hi))


def _hw(rng: np.random.Generator) -> int:
    return int(rng.choice([7, 14, 28, 56, 112, 7, 14, 28, 56, 13, 27, 35, 17]))


def sample_config(kind: str, rng: np.random.Generator) -> dict[str, Any]:
    """A random configuration of a ``kind`` kernel (dimensions, kernel, stride, activation)."""
    for _ in range(200):
        cfg = _draw(kind, rng)
        if _macs(cfg) <= MAX_SAMPLE_MACS:
            return cfg
    return cfg


def _draw(kind: str, rng: np.random.Generator) -> dict[str, Any]:
    hw = _hw(rng)
    if kind == "conv":
        k = int(rng.choice([1, 1, 1, 3, 3, 5, 7]))
        stride = int(rng.choice([1, 1, 1, 2]))
        cin = _channels(rng, hw)
        if rng.random() < 0.1:  # a stem: few input channels on a large image
            cin, hw = int(rng.choice([3, 3, 16, 24])), int(rng.choice([224, 112]))
            # mostly strided; VGG's (and dense-prediction nets') stems keep the resolution
            k, stride = int(rng.choice([3, 3, 7] if cin == 3 else [3])), int(rng.choice([2, 2, 1]))
        cout = _channels(rng, hw)
        residual = bool(stride == 1 and rng.random() < 0.3)
        if residual:
            cout = cin
        act = str(
            rng.choice(
                ["none", "relu", "relu6", "hardswish", "silu", "gelu"],
                p=[0.3, 0.35, 0.1, 0.1, 0.1, 0.05],
            )
        )
        return dict(
            type=kind, cin=cin, cout=cout, hw=hw, k=k, stride=stride, groups=1, act=act,
            residual=residual,
        )  # fmt: skip
    if kind == "dwconv":
        c = _channels(rng, hw, lo=16)
        return dict(
            type=kind, cin=c, cout=c, hw=hw, k=int(rng.choice([3, 3, 5, 7])),
            stride=int(rng.choice([1, 1, 2])), groups=c,
            act=str(rng.choice(["none", "relu", "relu6", "hardswish", "silu", "gelu"])),
            residual=False,
        )  # fmt: skip
    if kind == "gconv":
        # group widths of ResNeXt (4-32), RegNetX/Y (8-232) and the like
        groups = int(rng.choice([2, 4, 8, 16, 32, 64]))
        gw = int(rng.choice([4, 8, 16, 24, 32, 48, 56, 64, 112, 120, 128, 232]))
        if groups * gw > 4096:
            groups = max(4096 // gw, 1)
        c = groups * gw
        return dict(
            type=kind, cin=c, cout=c, hw=hw, k=3, stride=int(rng.choice([1, 1, 2])),
            groups=groups, act=str(rng.choice(["none", "relu"])), residual=False,
        )  # fmt: skip
    if kind == "linear":
        rows = 1 if rng.random() < 0.6 else int(rng.choice([49, 50, 64, 197]))
        return dict(
            type=kind, rows=rows, k=int(2 ** rng.uniform(7, 12)), n=int(2 ** rng.uniform(3, 12))
        )
    if kind in ("maxpool", "avgpool"):
        k, s = (3, 2) if rng.random() < 0.6 else ((2, 2) if rng.random() < 0.6 else (3, 1))
        return dict(type=kind, c=_channels(rng, hw), hw=max(hw, 7) * 2, k=k, stride=s)
    if kind == "gpool":
        return dict(type=kind, c=_channels(rng, hw, hi=4096), hw=hw)
    if kind in ("add", "activation"):
        fn = str(rng.choice(["relu", "hardswish", "sigmoid", "silu", "gelu"]))
        return dict(type=kind, c=_channels(rng, hw), hw=hw, fn=fn)
    if kind == "mul":
        return dict(type=kind, c=_channels(rng, hw), hw=hw, broadcast=bool(rng.random() < 0.7))
    if kind == "concat":
        return dict(type=kind, c=_channels(rng, hw), hw=hw, n=int(rng.choice([2, 2, 3, 4])))
    if kind == "matmul":
        # attention's batched products: b = heads (ViT: 12-16) x windows (Swin: up to 64 x 3)
        b = int(rng.choice([1, 3, 4, 6, 8, 12, 16, 24, 48, 96, 192, 384, 768]))
        return dict(
            type=kind, b=b, m=int(rng.choice([49, 50, 64, 144, 197, 256])),
            k=int(rng.choice([32, 64, 96, 49, 197])), n=int(rng.choice([32, 49, 50, 64, 197, 256])),
        )  # fmt: skip
    if kind == "softmax":  # attention scores: [1, b, m, m]
        b = int(rng.choice([1, 3, 6, 12, 16, 24, 48, 96, 192, 384]))
        m = int(rng.choice([49, 50, 64, 144, 197, 256]))
        return dict(type=kind, c=b, hw=1, shape=[1, b, m, m])
    if kind == "norm":  # a layer norm over the last axis of [1, T, D] tokens
        t_ = int(rng.choice([1, 49, 50, 196, 197, 784, 3136]))
        d = int(rng.choice([64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536]))
        return dict(type=kind, c=d, hw=1, shape=[1, t_, d])
    if kind == "bn":
        return dict(type=kind, c=_channels(rng, hw), hw=hw, act=str(rng.choice(["none", "relu"])))
    if kind == "memory":
        # ORT's data-movement kernels differ ~10x per byte by access pattern: a transpose that
        # moves one axis (NCHW <-> NHWC), one that keeps the innermost axis (Swin's window
        # partitions and head splits), one that gathers element by element (MaxViT's), a pad,
        # a slice
        fn = str(rng.choice(MEMORY_FNS, p=[0.25, 0.25, 0.2, 0.15, 0.15]))
        cfg = dict(type=kind, c=_channels(rng, hw), hw=hw, fn=fn)
        if fn == "pad":
            cfg["pad"] = int(rng.choice([1, 1, 2, 3]))
        return cfg
    raise ConfigError(f"unknown kernel type '{kind}'")


def _lead(cfg: dict[str, Any]) -> list[int]:
    """The leading dimensions of a linear's input: ``cfg["lead"]``, else [1] or [1, rows]."""
    if "lead" in cfg:
        return [int(x) for x in cfg["lead"]]
    return [1] if cfg["rows"] == 1 else [1, cfg["rows"]]


def _out_hw(hw: int, k: int, stride: int) -> int:
    return (hw + 2 * (k // 2) - k) // stride + 1


def _pool_pad(cfg: dict[str, Any]) -> int:
    """A pool's padding (pixels per side): ``k // 2`` for a stride-1 pool, which networks pad to
    keep the size (Inception's 3x3 average pools, GoogLeNet's 3x3 max pools), else 0."""
    return cfg["k"] // 2 if cfg["stride"] == 1 else 0


def _pool_out_hw(cfg: dict[str, Any]) -> int:
    return (cfg["hw"] + 2 * _pool_pad(cfg) - cfg["k"]) // cfg["stride"] + 1


def in_conv_context(cfg: dict[str, Any], precision: str) -> bool:
    """Whether :func:`build_model` puts the kernel between two untimed convolutions.

    True for INT8 pools: ORT's QDQ quantizer leaves a pool that the float graph input feeds in
    float, so an isolated pool times ORT's FP32 kernel; between two quantized convolutions it
    runs as in a network (``QLinearAveragePool``, ``NhwcMaxPool`` on int8 NHWC tensors)."""
    return precision == "int8" and cfg["type"] in ("maxpool", "avgpool")


def _macs(cfg: dict[str, Any]) -> float:
    t = cfg["type"]
    if t in ("conv", "dwconv", "gconv"):
        o = _out_hw(cfg["hw"], cfg["k"], cfg["stride"])
        return cfg["cout"] * o * o * cfg["cin"] / cfg["groups"] * cfg["k"] ** 2
    if t == "linear":
        return cfg["rows"] * cfg["k"] * cfg["n"]
    if t == "matmul":
        return cfg["b"] * cfg["m"] * cfg["k"] * cfg["n"]
    return 0.0


def features_of(cfg: dict[str, Any], precision: str) -> tuple[str, dict[str, float]]:
    """The predictor's type and features of a sampled configuration (same functions as the IR's)."""
    bpe = {"fp32": 4, "int8": 1}[precision]
    t = cfg["type"]
    if t in ("conv", "dwconv", "gconv"):
        o = _out_hw(cfg["hw"], cfg["k"], cfg["stride"])
        act = None if cfg["act"] == "none" else cfg["act"]
        return conv_features(
            cfg["cin"], cfg["cout"], o, o, cfg["k"], cfg["k"], cfg["groups"],
            cfg["cin"] * cfg["hw"] ** 2, precision, act, cfg["residual"],
        )  # fmt: skip
    if t == "linear":
        return t, {
            "macs": float(cfg["rows"] * cfg["k"] * cfg["n"]),
            "in_bytes": float(cfg["rows"] * cfg["k"] * bpe),
            "out_bytes": float(cfg["rows"] * cfg["n"] * bpe),
            "weight_bytes": float((cfg["k"] * cfg["n"] + cfg["n"]) * bpe),
        }
    if t in ("maxpool", "avgpool"):
        o = _pool_out_hw(cfg)
        return t, {
            "in_bytes": float(cfg["c"] * cfg["hw"] ** 2 * bpe),
            "out_bytes": float(cfg["c"] * o * o * bpe),
            "window_elems": float(cfg["c"] * o * o * cfg["k"] ** 2),
        }
    if t == "matmul":
        b, m, k, nn_ = cfg["b"], cfg["m"], cfg["k"], cfg["n"]
        return t, {
            "macs": float(b * m * k * nn_),
            "in_bytes": float((b * m * k + b * k * nn_) * bpe),
            "out_bytes": float(b * m * nn_ * bpe),
            "gemms": float(b),
            "masked_macs": 0.0,  # the sampled products read no denormal-masked softmax
        }
    n = math.prod(cfg["shape"]) if "shape" in cfg else cfg["c"] * cfg["hw"] ** 2
    if t == "gpool":
        return t, {"in_bytes": float(n * bpe), "out_bytes": float(cfg["c"] * bpe)}
    if t == "add":
        return t, {"in_bytes": float(2 * n * bpe), "out_bytes": float(n * bpe)}
    if t == "mul":
        small = cfg["c"] if cfg["broadcast"] else n
        return t, {
            "in_bytes": float((n + small) * bpe),
            "out_bytes": float(n * bpe),
            "broadcast_bytes": float(n * bpe if cfg["broadcast"] else 0),
        }
    if t == "bn":
        return t, {
            "in_bytes": float(n * bpe),
            "out_bytes": float(n * bpe),
            "act_bytes": float(n * bpe if cfg["act"] != "none" else 0),
        }
    if t == "activation":
        from edgecnn.analysis.latency_predictor import _act_class

        f = dict.fromkeys(FEATURES["activation"], 0.0)
        f[f"{_act_class(cfg['fn'])}_bytes"] = float(n * bpe)
        return t, f
    if t == "concat":
        return t, {"in_bytes": float(n * cfg["n"] * bpe), "out_bytes": float(n * cfg["n"] * bpe)}
    if t == "softmax":
        return t, {"in_bytes": float(n * bpe), "out_bytes": float(n * bpe), "masked_bytes": 0.0}
    if t == "memory" and cfg.get("fn") in MEMORY_FNS:
        shape_in, shape_out, perm = _memory_shapes(cfg)
        kind = "transpose" if cfg["fn"].startswith("transpose") else cfg["fn"]
        return t, memory_features(kind, [shape_in], [shape_out], perm, precision)
    if t == "memory":
        return t, memory_features("copy", [[n]], [[n]], None, precision)
    return t, {"in_bytes": float(n * bpe), "out_bytes": float(n * bpe)}


# ----------------------------------------------------------------------------- ONNX builders


def _init(name: str, arr: np.ndarray) -> TensorProto:
    return numpy_helper.from_array(arr.astype(np.float32), name)


def _vi(name: str, shape: list[int]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _act_nodes(fn: str, x: str, y: str, p: str) -> tuple[list[onnx.NodeProto], list[TensorProto]]:
    if fn in ("none", None):
        return [helper.make_node("Identity", [x], [y], name=f"{p}id")], []
    if fn == "relu":
        return [helper.make_node("Relu", [x], [y], name=f"{p}relu")], []
    if fn == "relu6":
        inits = [_init(f"{p}lo", np.array(0.0)), _init(f"{p}hi", np.array(6.0))]
        return [helper.make_node("Clip", [x, f"{p}lo", f"{p}hi"], [y], name=f"{p}clip")], inits
    if fn == "hardswish":
        return [helper.make_node("HardSwish", [x], [y], name=f"{p}hs")], []
    if fn == "sigmoid":
        return [helper.make_node("Sigmoid", [x], [y], name=f"{p}sig")], []
    if fn == "silu":
        return [
            helper.make_node("Sigmoid", [x], [f"{p}s"], name=f"{p}sig"),
            helper.make_node("Mul", [x, f"{p}s"], [y], name=f"{p}mul"),
        ], []
    if fn == "gelu":  # the exporter's erf form
        inits = [
            _init(f"{p}r2", np.array(math.sqrt(2.0))),
            _init(f"{p}one", np.array(1.0)),
            _init(f"{p}half", np.array(0.5)),
        ]
        return [
            helper.make_node("Div", [x, f"{p}r2"], [f"{p}a"], name=f"{p}div"),
            helper.make_node("Erf", [f"{p}a"], [f"{p}b"], name=f"{p}erf"),
            helper.make_node("Add", [f"{p}b", f"{p}one"], [f"{p}c"], name=f"{p}add"),
            helper.make_node("Mul", [x, f"{p}c"], [f"{p}d"], name=f"{p}mul"),
            helper.make_node("Mul", [f"{p}d", f"{p}half"], [y], name=f"{p}mul2"),
        ], inits
    raise ConfigError(f"unknown activation '{fn}'")


def _memory_shapes(cfg: dict[str, Any]) -> tuple[list[int], list[int], list[int] | None]:
    """``(input shape, output shape, perm)`` of a sampled data-movement kernel: a transpose of
    the last two axes of ``[1, c, hw, hw]`` (``transpose``: one axis moves), of the middle two
    of ``[1, hw, hw, c]`` (``transpose_rows``: it copies runs of ``c``), (0, 3, 2, 1) of
    ``[1, c, hw, hw]`` (``transpose_mixed``: it gathers element by element), a pad of
    ``[1, hw, hw, c]`` by ``pad`` on both sides of H and W (Swin's), the first half of the
    channels of ``[1, c, hw, hw]`` (``slice``)."""
    c, hw, fn = cfg["c"], cfg["hw"], cfg["fn"]
    if fn == "transpose":
        return [1, c, hw, hw], [1, c, hw, hw], [0, 1, 3, 2]
    if fn == "transpose_rows":
        return [1, hw, hw, c], [1, hw, hw, c], [0, 2, 1, 3]
    if fn == "transpose_mixed":
        return [1, c, hw, hw], [1, hw, hw, c], [0, 3, 2, 1]
    if fn == "pad":
        p = int(cfg.get("pad", 1))
        return [1, hw, hw, c], [1, hw + 2 * p, hw + 2 * p, c], None
    if fn == "slice":
        return [1, c, hw, hw], [1, max(c // 2, 1), hw, hw], None
    raise ConfigError(f"unknown memory kernel '{fn}'")


def _memory_nodes(cfg: dict[str, Any]) -> tuple[list[onnx.NodeProto], list[int]]:
    """The node (reading graph input ``x``, writing ``y``) of :func:`_memory_shapes`' kernel
    and its output shape; constant operands are ``Constant`` nodes."""
    shape_in, shape_out, perm = _memory_shapes(cfg)
    fn = cfg["fn"]
    if perm is not None:
        return [helper.make_node("Transpose", ["x"], ["y"], name="tr", perm=perm)], shape_out

    def const(name: str, vals: list[int]) -> onnx.NodeProto:
        arr = numpy_helper.from_array(np.array(vals, dtype=np.int64), name)
        return helper.make_node("Constant", [], [name], name=name, value=arr)

    if fn == "pad":
        p = (shape_out[1] - shape_in[1]) // 2
        nodes = [const("pads", [0, p, p, 0, 0, p, p, 0])]
        nodes.append(helper.make_node("Pad", ["x", "pads"], ["y"], name="pad"))
    else:
        nodes = [const("st", [0]), const("en", [shape_out[1]]), const("ax", [1])]
        nodes.append(helper.make_node("Slice", ["x", "st", "en", "ax"], ["y"], name="slice"))
    return nodes, shape_out


def build_model(cfg: dict[str, Any], seed: int = 0, conv_context: bool = False) -> onnx.ModelProto:
    """The single-kernel FP32 ONNX model of a sampled configuration.

    ``conv_context`` (pools only, see :func:`in_conv_context`): the pool reads the output of an
    untimed 1x1 convolution + ReLU (``head_conv``) and feeds another (``tail_conv``), so that
    after INT8 quantization ORT runs the pool on the int8 tensors a network's pool reads."""
    rng = np.random.default_rng(seed)
    t = cfg["type"]
    nodes: list[onnx.NodeProto] = []
    inits: list[TensorProto] = []
    inputs: list[onnx.ValueInfoProto] = []
    out_shape: list[int]
    if t in ("conv", "dwconv", "gconv"):
        cin, cout, hw, k, s, g = (cfg[x] for x in ("cin", "cout", "hw", "k", "stride", "groups"))
        o = _out_hw(hw, k, s)
        inputs.append(_vi("x_in", [1, cin, hw, hw]))
        # an untimed 1x1 max-pool head: the conv (and a shortcut) read a tensor another kernel
        # wrote, in ORT's blocked layout as inside a network, not the graph's NCHW input
        nodes.append(
            helper.make_node("MaxPool", ["x_in"], ["head"], name="head", kernel_shape=[1, 1])
        )
        w = rng.standard_normal((cout, cin // g, k, k)) * (1.0 / math.sqrt(cin // g * k * k))
        inits += [_init("w", w), _init("b", rng.standard_normal(cout) * 0.1)]
        nodes.append(
            helper.make_node(
                "Conv",
                ["head", "w", "b"],
                ["c"],
                name="conv",
                kernel_shape=[k, k],
                strides=[s, s],
                pads=[k // 2] * 4,
                group=g,
            )  # fmt: skip
        )
        cur = "c"
        if cfg["residual"]:  # an identity shortcut, as in a ResNet block: conv(x) + x
            nodes.append(helper.make_node("Add", ["c", "head"], ["s"], name="add"))
            cur = "s"
        n, i = _act_nodes(cfg["act"], cur, "y", "a_")
        nodes += n
        inits += i
        out_shape = [1, cout, o, o]
    elif t == "linear":
        lead = _lead(cfg)
        inputs.append(_vi("x", [*lead, cfg["k"]]))
        w = rng.standard_normal((cfg["k"], cfg["n"])) / math.sqrt(cfg["k"])
        inits += [_init("w", w), _init("b", rng.standard_normal(cfg["n"]) * 0.1)]
        if lead == [1]:
            nodes.append(helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="gemm"))
            out_shape = [1, cfg["n"]]
        else:
            nodes += [
                helper.make_node("MatMul", ["x", "w"], ["m"], name="matmul"),
                helper.make_node("Add", ["m", "b"], ["y"], name="bias"),
            ]
            out_shape = [*lead, cfg["n"]]
    elif t in ("maxpool", "avgpool"):
        c, hw, k, s = cfg["c"], cfg["hw"], cfg["k"], cfg["stride"]
        inputs.append(_vi("x", [1, c, hw, hw]))
        src = "x"
        if conv_context:
            w = rng.standard_normal((c, c, 1, 1)) / math.sqrt(c)
            inits += [_init("head_w", w), _init("head_b", rng.standard_normal(c) * 0.1)]
            nodes += [
                helper.make_node("Conv", ["x", "head_w", "head_b"], ["hc"], name="head_conv"),
                helper.make_node("Relu", ["hc"], ["hr"], name="head_relu"),
            ]
            src = "hr"
        op = "MaxPool" if t == "maxpool" else "AveragePool"
        attrs: dict[str, Any] = dict(kernel_shape=[k, k], strides=[s, s], pads=[_pool_pad(cfg)] * 4)
        if t == "avgpool":  # PyTorch's default, as exported from torchvision
            attrs["count_include_pad"] = 1
        pooled = "p" if conv_context else "y"
        nodes.append(helper.make_node(op, [src], [pooled], name="pool", **attrs))
        if conv_context:
            w = rng.standard_normal((c, c, 1, 1)) / math.sqrt(c)
            inits += [_init("tail_w", w), _init("tail_b", rng.standard_normal(c) * 0.1)]
            nodes.append(
                helper.make_node("Conv", ["p", "tail_w", "tail_b"], ["y"], name="tail_conv")
            )
        o = _pool_out_hw(cfg)
        out_shape = [1, c, o, o]
    elif t == "matmul":
        b, m, k, n = cfg["b"], cfg["m"], cfg["k"], cfg["n"]
        inputs += [_vi("x", [1, b, m, k]), _vi("z", [1, b, k, n])]
        nodes.append(helper.make_node("MatMul", ["x", "z"], ["y"], name="bmm"))
        out_shape = [1, b, m, n]
    else:
        c, hw = cfg["c"], cfg["hw"]
        shape = list(cfg["shape"]) if "shape" in cfg else [1, c, hw, hw]
        if t == "memory" and cfg.get("fn") in MEMORY_FNS:
            shape = _memory_shapes(cfg)[0]
        inputs.append(_vi("x", shape))
        out_shape = shape
        if t == "gpool":
            nodes.append(helper.make_node("GlobalAveragePool", ["x"], ["y"], name="gap"))
            out_shape = [1, c, 1, 1]
        elif t == "add":
            inputs.append(_vi("z", shape))
            nodes.append(helper.make_node("Add", ["x", "z"], ["y"], name="add"))
        elif t == "mul":
            inputs.append(_vi("z", [1, c, 1, 1] if cfg["broadcast"] else shape))
            nodes.append(helper.make_node("Mul", ["x", "z"], ["y"], name="mul"))
        elif t == "activation":
            nodes, inits = _act_nodes(cfg["fn"], "x", "y", "a_")
        elif t == "concat":
            names = ["x"] + [f"z{i}" for i in range(1, cfg["n"])]
            inputs += [_vi(nm, shape) for nm in names[1:]]
            nodes.append(helper.make_node("Concat", names, ["y"], name="concat", axis=1))
            out_shape = [1, c * cfg["n"], hw, hw]
        elif t == "bn":
            c_ = cfg["c"]
            inits += [
                _init("sc", np.ones(c_)), _init("bi", np.zeros(c_)),
                _init("mu", np.zeros(c_)), _init("va", np.ones(c_)),
            ]  # fmt: skip
            nodes.append(
                helper.make_node(
                    "BatchNormalization", ["x", "sc", "bi", "mu", "va"], ["n"], name="bn"
                )
            )
            n_, i_ = _act_nodes(cfg["act"], "n", "y", "a_")
            nodes += n_
            inits += i_
        elif t in ("memory", "softmax", "norm"):
            fn = {"softmax": "softmax", "norm": "layernorm"}.get(t) or cfg["fn"]
            if fn in MEMORY_FNS:
                nodes, out_shape = _memory_nodes(cfg)
            elif fn == "softmax":
                nodes.append(helper.make_node("Softmax", ["x"], ["y"], name="sm", axis=-1))
            elif fn == "layernorm":
                inits += [_init("g", np.ones(shape[-1])), _init("bb", np.zeros(shape[-1]))]
                nodes.append(
                    helper.make_node(
                        "LayerNormalization", ["x", "g", "bb"], ["y"], name="ln", axis=-1
                    )
                )
            else:
                inits += [
                    _init(nm, v)
                    for nm, v in (
                        ("sc", np.ones(c)), ("bi", np.zeros(c)),
                        ("mu", np.zeros(c)), ("va", np.ones(c)),
                    )
                ]  # fmt: skip
                nodes.append(
                    helper.make_node(
                        "BatchNormalization", ["x", "sc", "bi", "mu", "va"], ["y"], name="bn"
                    )
                )
        else:
            raise ConfigError(f"unknown kernel type '{t}'")
    # a ReLU tail after the kernel (not timed): ORT fuses an activation into a conv only when
    # the activation's output is no graph output, as inside a network
    for nd in nodes:
        for j, o in enumerate(nd.output):
            if o == "y":
                nd.output[j] = "y_pre"
    nodes.append(helper.make_node("Relu", ["y_pre"], ["y"], name="tail"))
    graph = helper.make_graph(nodes, t, inputs, [_vi("y", out_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model


# ----------------------------------------------------------------------------- measurement


def _feeds(model: onnx.ModelProto, rng: np.random.Generator) -> dict[str, np.ndarray]:
    out = {}
    for vi in model.graph.input:
        shape = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        out[vi.name] = rng.standard_normal(shape).astype(np.float32)
    return out


@contextlib.contextmanager
def _quiet():
    logging.disable(logging.WARNING)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging.NOTSET)


def quantize_model(model: onnx.ModelProto, workdir: Path, samples: int = 4) -> onnx.ModelProto:
    """Static QDQ INT8 of ``model`` with :data:`INT8_SETTINGS` (random calibration inputs)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import CalibrationDataReader

    rng = np.random.default_rng(1)
    batches = [_feeds(model, rng) for _ in range(samples)]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(batches)

        def get_next(self):  # noqa: ANN201 - ORT's interface
            return next(self.it, None)

    src, dst = workdir / "k.onnx", workdir / "k-int8.onnx"
    onnx.save(model, str(src))
    qt = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    with _quiet():
        quantize_static(
            str(src),
            str(dst),
            Reader(),
            quant_format=QuantFormat.QDQ,
            activation_type=qt[INT8_SETTINGS["activation_type"]],
            weight_type=qt[INT8_SETTINGS["weight_type"]],
            per_channel=INT8_SETTINGS["per_channel"],
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={
                "ActivationSymmetric": INT8_SETTINGS["symmetric_activations"],
                "WeightSymmetric": INT8_SETTINGS["symmetric_weights"],
                "DedicatedQDQPair": True,
            },
        )
    return onnx.load(str(dst))


def replicate(model: onnx.ModelProto, copies: int) -> onnx.ModelProto:
    """``copies`` independent copies of ``model``'s graph in one model (names prefixed ``r<i>_``)."""
    from onnx import compose

    if copies <= 1:
        return model
    parts = [compose.add_prefix(model, prefix=f"r{i}_") for i in range(copies)]
    g = helper.make_graph(
        [n for p in parts for n in p.graph.node],
        model.graph.name,
        [x for p in parts for x in p.graph.input],
        [x for p in parts for x in p.graph.output],
        [x for p in parts for x in p.graph.initializer],
    )
    out = helper.make_model(g, opset_imports=list(model.opset_import))
    out.ir_version = model.ir_version
    return out


def copies_for(model: onnx.ModelProto) -> int:
    """Copies of ``model`` whose data exceeds :data:`COLD_BYTES` (1 to :data:`MAX_COPIES`)."""
    elems = sum(math.prod(i.dims) for i in model.graph.initializer)
    for vi in [*model.graph.input, *model.graph.output]:
        elems += math.prod(d.dim_value for d in vi.type.tensor_type.shape.dim)
    return int(min(max(math.ceil(COLD_BYTES / max(4 * elems, 1)), 1), MAX_COPIES))


LAYOUT_OPS = frozenset(
    {"QuantizeLinear", "DequantizeLinear", "ReorderInput", "ReorderOutput", "Transpose"}
)
NHWC_PERMS = ([0, 2, 3, 1], [0, 3, 1, 2])


def _is_layout(n: onnx.NodeProto) -> bool:
    if n.op_type == "Transpose":
        perm = [list(a.ints) for a in n.attribute if a.name == "perm"]
        return bool(perm) and perm[0] in NHWC_PERMS
    return n.op_type in LAYOUT_OPS or "tail" in n.name or "head" in n.name


def _boundary_nodes(optimized: onnx.ModelProto) -> set[str]:
    """Nodes a whole network runs once, not per kernel: the chains of layout and quantization
    ops (NCHWc reorders, NCHW<->NHWC transposes, Q, DQ) that connect the graph inputs to the
    kernel and the kernel to the graph outputs.

    Except a kernel's own conversions in an INT8 model: the DequantizeLinear that feeds a float
    compute node and the QuantizeLinear that a float compute node feeds. An op ORT runs in
    float between int8 neighbours (an unfolded BatchNorm, a softmax, a layer norm, GELU) pays
    them in a network too: int8 in, float, int8 out (DenseNet-121's 62 BN + ReLU: DQ + BN + Q
    take 2.6x the BN alone)."""
    g = optimized.graph
    consts = {i.name for i in g.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    producer: dict[str, onnx.NodeProto] = {}
    for n in g.node:
        for x in n.input:
            consumers.setdefault(x, []).append(n)
        for o in n.output:
            producer[o] = n

    def own_dequantize(n: onnx.NodeProto) -> bool:
        return n.op_type == "DequantizeLinear" and any(
            not _is_layout(c) for o in n.output for c in consumers.get(o, [])
        )

    def own_quantize(n: onnx.NodeProto) -> bool:
        src = producer.get(n.input[0]) if n.input else None
        return n.op_type == "QuantizeLinear" and src is not None and not _is_layout(src)

    known = {i.name for i in g.input} | consts
    skip: set[str] = set()
    for n in g.node:
        if _is_layout(n) and not own_dequantize(n) and all(x in known for x in n.input if x):
            skip.add(n.name)
            known.update(n.output)
    tail = {o.name for o in g.output}
    for n in reversed(g.node):
        if (
            n.name not in skip
            and _is_layout(n)
            and not own_quantize(n)
            and all(o in tail for o in n.output if o)
        ):
            skip.add(n.name)
            tail.update(n.input)
    return skip


def measure_kernel(
    model: onnx.ModelProto,
    runs: int = 0,
    budget_s: float = 0.25,
    seed: int = 0,
    copies: int = 1,
) -> tuple[float, float, list[str]]:
    """``(kernel_ms, wall_ms, ops)`` of a single-kernel model in ORT on 1 thread.

    ``kernel_ms``: sum over the non-boundary nodes of their fastest profiled kernel time;
    ``wall_ms``: the fastest ``run`` without the profiler (the minimum, not the median: a
    co-tenant on a shared last-level cache slows random runs by up to ~50%, see
    :data:`TIMING_STATISTIC`); ``ops``: the op types ORT runs.
    ``runs=0`` picks the run count from ``budget_s`` (5 to 40 runs). ``copies``: the model holds
    that many independent copies of the kernel (:func:`replicate`, node names ``r<i>_...``);
    per-node times are pooled over the copies and ``wall_ms`` is divided by ``copies``.
    """
    wall, profiled, opt = _time_and_profile(model, runs, budget_s, 40, seed, optimized=True)
    assert opt is not None
    skip = _boundary_nodes(opt)
    ops = [nd.op_type for nd in opt.graph.node if nd.name not in skip]
    per_node = {
        node: v
        for node, v in profiled.items()
        if node not in skip and "tail" not in node and "head" not in node
    }
    kernel = sum(min(v[1:] or v) for v in per_node.values()) / copies
    return kernel, wall / copies, ops


def _time_and_profile(
    model: onnx.ModelProto,
    runs: int,
    budget_s: float,
    max_runs: int,
    seed: int,
    optimized: bool = False,
) -> tuple[float, dict[str, list[float]], onnx.ModelProto | None]:
    """Run ``model`` in ORT on 1 thread: the fastest of ``n`` timed runs (ms; ``runs=0``: ``n``
    from ``budget_s``, 5 to ``max_runs``), then ``n + 1`` runs under ORT's profiler. Returns
    ``(wall_ms, {node: [kernel ms per profiled run]}, the ORT-optimized model if
    ``optimized`` else None)``."""
    import onnxruntime as ort

    from edgecnn.runtime.bench import measure_latency

    data = model.SerializeToString()
    feeds = _feeds(model, np.random.default_rng(seed))
    opt = None
    with tempfile.TemporaryDirectory(prefix="edgecnn-cal-") as d:
        so = _options(ort)
        if optimized:
            so.optimized_model_filepath = str(Path(d) / "opt.onnx")
        sess = ort.InferenceSession(data, sess_options=so, providers=["CPUExecutionProvider"])
        t0 = time.perf_counter()
        sess.run(None, feeds)
        once = time.perf_counter() - t0
        n = runs or int(min(max(budget_s / 2 / max(once, 1e-6), 5), max_runs))
        wall = measure_latency(lambda: sess.run(None, feeds), runs=n, warmup=1).min_ms
        if optimized:
            opt = onnx.load(str(Path(d) / "opt.onnx"))
        del sess
        so = _options(ort)
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(d) / "prof")
        sess = ort.InferenceSession(data, sess_options=so, providers=["CPUExecutionProvider"])
        for _ in range(n + 1):
            sess.run(None, feeds)
        events = json.loads(Path(sess.end_profiling()).read_text())
    per_node: dict[str, list[float]] = {}
    for e in events:
        name = e.get("name", "")
        if e.get("cat") == "Node" and name.endswith("_kernel_time"):
            per_node.setdefault(name[: -len("_kernel_time")], []).append(float(e["dur"]) / 1e3)
    return wall, per_node, opt


def _options(ort):  # noqa: ANN001, ANN202 - onnxruntime module
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return so


def _relu_chain(n: int) -> onnx.ModelProto:
    nodes = [
        helper.make_node("Relu", [f"t{i}"], [f"t{i + 1}" if i + 1 < n else "y"], name=f"r{i}")
        for i in range(n)
    ]
    nodes[0].input[0] = "x"
    g = helper.make_graph(nodes, "chain", [_vi("x", [1, 8, 1, 1])], [_vi("y", [1, 8, 1, 1])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])
    m.ir_version = 8
    return m


def measure_overheads(precision: str, workdir: Path) -> tuple[float, float]:
    """``(per_inference_ms, per_kernel_ms)`` from one tiny ReLU and a chain of 32 of them."""
    chain = 32
    one = _relu_chain(1)
    many = _relu_chain(chain)
    if precision == "int8":
        one, many = quantize_model(one, workdir), quantize_model(many, workdir)
    k1, w1, _ = measure_kernel(one, runs=200)
    kn, wn, _ = measure_kernel(many, runs=200)
    per_inference = max(w1 - k1, 0.0)
    # wall-clock cost of one more kernel minus what the profiler books for it: the dispatch
    # overhead net of the profiler's own per-node inflation of kernel_time (can be negative)
    per_kernel = ((wn - w1) - (kn - k1)) / (chain - 1)
    return per_inference, per_kernel


# ----------------------------------------------------------------------------- random networks

#: Kernel types a random calibration network (:func:`sample_chain`) is made of, with weights.
CHAIN_WEIGHTS: dict[str, float] = {
    "conv": 5.0,
    "dwconv": 2.5,
    "gconv": 1.0,
    "maxpool": 0.3,
    "avgpool": 0.2,
    "add": 0.6,
    "mul": 0.8,
    "activation": 0.5,
    "concat": 0.4,
    "bn": 0.4,
}
#: Kernel types not drawn right after a convolution: the IR and ORT fuse them into it.
FUSED_AFTER_CONV = frozenset({"activation", "bn", "add"})


def _chain_step(kind: str, c: int, hw: int, rng: np.random.Generator) -> dict[str, Any]:
    """A ``kind`` kernel reading a ``c`` x ``hw`` x ``hw`` tensor (shapes chain)."""
    if kind == "conv":
        k = int(rng.choice([1, 1, 1, 3, 3, 5, 7]))
        stride = int(rng.choice([1, 1, 1, 1, 2])) if hw >= 14 else 1
        residual = bool(stride == 1 and rng.random() < 0.3)
        cout = c if residual else _channels(rng, hw // stride, lo=8)
        act = str(
            rng.choice(
                ["none", "relu", "relu6", "hardswish", "silu", "gelu"],
                p=[0.3, 0.3, 0.15, 0.1, 0.1, 0.05],
            )
        )
        cfg = dict(
            type=kind, cin=c, cout=cout, hw=hw, k=k, stride=stride, groups=1, act=act,
            residual=residual,
        )  # fmt: skip
        return cfg if _macs(cfg) <= MAX_SAMPLE_MACS else dict(cfg, k=1, stride=1)
    if kind == "dwconv":
        return dict(
            type=kind, cin=c, cout=c, hw=hw, k=int(rng.choice([3, 3, 5, 7])),
            stride=int(rng.choice([1, 1, 2])) if hw >= 14 else 1, groups=c,
            act=str(rng.choice(["none", "relu", "relu6", "hardswish", "silu", "gelu"])),
            residual=False,
        )  # fmt: skip
    if kind == "gconv":
        divs = [g for g in (2, 4, 8, 16, 32, 64) if c % g == 0 and c // g >= 4]
        g = int(rng.choice(divs)) if divs else 1
        return dict(
            type="gconv" if g > 1 else "conv", cin=c, cout=c, hw=hw, k=3,
            stride=int(rng.choice([1, 1, 2])) if hw >= 14 else 1, groups=g,
            act=str(rng.choice(["none", "relu"])), residual=False,
        )  # fmt: skip
    if kind in ("maxpool", "avgpool"):
        return dict(type=kind, c=c, hw=hw, k=int(rng.choice([2, 3])), stride=2)
    if kind == "add":
        return dict(type=kind, c=c, hw=hw, fn="add")
    if kind == "activation":
        fn = str(rng.choice(["relu", "hardswish", "sigmoid", "silu", "gelu"]))
        return dict(type=kind, c=c, hw=hw, fn=fn)
    if kind == "mul":
        return dict(type=kind, c=c, hw=hw, broadcast=bool(rng.random() < 0.8))
    if kind == "concat":
        return dict(type=kind, c=c, hw=hw, n=2)
    if kind == "bn":
        return dict(type=kind, c=c, hw=hw, act=str(rng.choice(["none", "relu"])))
    raise ConfigError(f"kernel type '{kind}' cannot be chained")


def _chain_out(cfg: dict[str, Any]) -> tuple[int, int]:
    t = cfg["type"]
    if t in ("conv", "dwconv", "gconv"):
        return cfg["cout"], _out_hw(cfg["hw"], cfg["k"], cfg["stride"])
    if t in ("maxpool", "avgpool"):
        return cfg["c"], _pool_out_hw(cfg)
    if t == "concat":
        return cfg["c"] * cfg["n"], cfg["hw"]
    return cfg["c"], cfg["hw"]


def sample_chain(rng: np.random.Generator, length: int = 0) -> list[dict[str, Any]]:
    """A random sequential CNN of ``length`` kernels (random 8 to 40 if 0) whose shapes chain:
    each kernel reads the previous one's output, as in a network; the feature map starts at
    7 to 224 pixels and shrinks only through strided kernels, channels follow :func:`_channels`.
    It ends with a global pool and a classifier linear."""
    n = length or int(rng.integers(8, 41))
    hw = int(rng.choice([224, 112, 56, 56, 28, 28, 14, 14, 7]))
    c = int(rng.choice([3, 3, 16, 24])) if hw >= 112 and rng.random() < 0.5 else _channels(rng, hw)
    kinds, w = list(CHAIN_WEIGHTS), np.array(list(CHAIN_WEIGHTS.values()))
    out: list[dict[str, Any]] = []
    while len(out) < n:
        kind = str(rng.choice(kinds, p=w / w.sum()))
        if c < 8 and kind != "conv":
            continue
        if kind in ("maxpool", "avgpool") and hw < 14:
            continue
        if kind == "concat" and c > 1024:
            continue
        if kind in FUSED_AFTER_CONV and out and out[-1]["type"] in ("conv", "dwconv", "gconv"):
            continue
        cfg = _chain_step(kind, c, hw, rng)
        out.append(cfg)
        c, hw = _chain_out(cfg)
    out.append(dict(type="gpool", c=c, hw=hw))
    if rng.random() < 0.3:  # a VGG/AlexNet-style MLP classifier: large cold weights
        for width in rng.choice([1024, 2048, 4096], size=int(rng.integers(1, 3))):
            out.append(dict(type="linear", rows=1, k=c, n=int(width)))
            c = int(width)
    if rng.random() < 0.8:
        out.append(dict(type="linear", rows=1, k=c, n=int(rng.choice([10, 100, 1000, 1000]))))
    return out


def sample_token_chain(rng: np.random.Generator, blocks: int = 0) -> list[dict[str, Any]]:
    """A random transformer-like chain on ``T`` tokens of width ``D`` (``blocks`` blocks, 1 to 6
    if 0): each block is a layer norm, a linear widening to ``r D`` (r 1 to 4), a GELU (MLP
    blocks), a linear back to ``D`` and a residual add, as in ViT/Swin/ConvNeXt blocks; the
    tokens are ``[1, T, D]`` or, ConvNeXt/Swin-style, ``[1, h, h, D]``."""
    h = int(rng.choice([7, 7, 14, 14, 28, 56]))
    t_tokens = int(rng.choice([49, 50, 64, 197, 256])) if rng.random() < 0.4 else h * h
    lead = [1, t_tokens] if t_tokens != h * h or rng.random() < 0.3 else [1, h, h]
    d = int(rng.choice([64, 96, 128, 192, 256, 384, 512, 768, 1024]))
    while math.prod(lead) * d * d * 4 > MAX_SAMPLE_MACS and d > 64:
        d //= 2
    out: list[dict[str, Any]] = []
    rows = math.prod(lead)
    for _ in range(blocks or int(rng.integers(1, 7))):
        mlp = bool(rng.random() < 0.6)
        r = 4 if mlp else int(rng.choice([1, 3]))
        shape = [*lead, d]
        out.append(dict(type="norm", c=d, hw=1, shape=shape))
        out.append(dict(type="linear", rows=rows, k=d, n=r * d, lead=lead))
        if mlp:
            out.append(dict(type="activation", c=r * d, hw=1, fn="gelu", shape=[*lead, r * d]))
        out.append(dict(type="linear", rows=rows, k=r * d, n=d, lead=lead))
        out.append(dict(type="add", c=d, hw=1, fn="add", shape=shape))
    return out


def build_chain(cfgs: list[dict[str, Any]], seed: int = 0) -> onnx.ModelProto:
    """One FP32 ONNX network of the kernels ``cfgs`` in sequence (see :func:`sample_chain`).

    Each kernel is :func:`build_model`'s with its names prefixed ``k<i>_``; its main input is the
    previous kernel's output (the heads and tails of the single-kernel models are dropped, but
    the network starts with an untimed 1x1 max-pool ``head`` and ends with the last model's
    ReLU ``tail``); its other inputs (the second addend, the broadcast scale, the concatenated
    tensors) stay graph inputs.
    """
    from onnx import compose

    nodes: list[onnx.NodeProto] = []
    inits: list[TensorProto] = []
    inputs: list[onnx.ValueInfoProto] = []
    first = cfgs[0]
    if first["type"] == "linear":
        inputs.append(_vi("x_net", [*_lead(first), first["k"]]))
    elif "shape" in first:
        inputs.append(_vi("x_net", list(first["shape"])))
    else:
        c0 = first["cin"] if "cin" in first else first["c"]
        inputs.append(_vi("x_net", [1, c0, first["hw"], first["hw"]]))
    if "shape" in first or first["type"] == "linear":  # tokens: a ReLU head
        nodes.append(helper.make_node("Relu", ["x_net"], ["head"], name="head"))
    else:
        nodes.append(
            helper.make_node("MaxPool", ["x_net"], ["head"], name="head", kernel_shape=[1, 1])
        )
    prev = "head"
    out_vi: onnx.ValueInfoProto | None = None
    for i, cfg in enumerate(cfgs):
        m = compose.add_prefix(build_model(cfg, seed=seed + i), prefix=f"k{i}_")
        g = m.graph
        main = f"k{i}_x_in" if cfg["type"] in ("conv", "dwconv", "gconv") else f"k{i}_x"
        if cfg["type"] == "linear" and cfg["rows"] == 1:  # [1, c, 1, 1] -> [1, c]
            nodes.append(helper.make_node("Flatten", [prev], [f"k{i}_flat"], name=f"k{i}_flat"))
            prev = f"k{i}_flat"
        rename = {main: prev, f"k{i}_head": prev}
        last = i == len(cfgs) - 1
        for nd in g.node:
            if nd.name in (f"k{i}_head",) or (nd.name == f"k{i}_tail" and not last):
                continue
            for j, x in enumerate(nd.input):
                nd.input[j] = rename.get(x, x)
            nodes.append(nd)
        inits += list(g.initializer)
        inputs += [x for x in g.input if x.name != main]
        prev = f"k{i}_y_pre"
        out_vi = g.output[0]
    assert out_vi is not None
    graph = helper.make_graph(nodes, "chain", inputs, [out_vi], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model


_KERNEL_OF_NODE = re.compile(r"(?:^|[^a-z0-9])k(\d+)_")


def measure_chain(
    model: onnx.ModelProto, n_kernels: int, runs: int = 0, budget_s: float = 0.6, seed: int = 0
) -> tuple[list[float], float]:
    """``(kernel_ms per kernel, wall_ms)`` of a :func:`build_chain` network in ORT on 1 thread.

    A kernel's time is the sum of the fastest profiled times of the nodes ORT runs for it (its
    fused kernel and any reorder, transpose or (de)quantization named after its tensors); the
    nodes are attributed by the ``k<i>_`` prefix of their names. The untimed head and tail and
    the nodes named after no kernel (the graph input's reorder) are left out.
    """
    wall, per_node, _ = _time_and_profile(model, runs, budget_s, 30, seed)
    out = [0.0] * n_kernels
    for node, v in per_node.items():
        if "tail" in node or node.startswith("head"):
            continue
        ks = _KERNEL_OF_NODE.findall(node)
        if not ks:
            continue
        i = int(ks[0])
        if i < n_kernels:
            out[i] += min(v[1:] or v)
    return out, wall


def measure_network(
    model: onnx.ModelProto,
    graph: Graph,
    runs: int = 0,
    budget_s: float = 2.0,
    seed: int = 0,
    precision: str = "fp32",
) -> tuple[list[tuple[Kernel, float]], dict[str, float]]:
    """Each kernel of a whole network with its time in context (ms), and a summary.

    ``graph`` is the IR of the same ONNX ``model`` (its layer and tensor names are the file's); the
    kernels are :func:`~edgecnn.analysis.latency_predictor.kernels` of it at ``precision``, and
    every profiled node's fastest time goes to the kernel :func:`attribute_nodes` finds for it.
    Summary: ``kernels``, ``wall_ms`` (fastest unprofiled run), ``kernel_sum_ms`` and
    ``unattributed_ms``.
    """
    ks = kernels(graph, precision)
    wall, per_node, opt = _time_and_profile(model, runs, budget_s, 20, seed, optimized=True)
    node_ms = {node: min(v[1:] or v) for node, v in per_node.items()}
    times, lost = attribute_nodes(graph, ks, node_ms, opt)
    summary = {
        "kernels": len(ks),
        "wall_ms": wall,
        "kernel_sum_ms": sum(times),
        "unattributed_ms": lost,
    }
    return list(zip(ks, times, strict=True)), summary


def export_network(source: str, workdir: Path) -> Path:
    """A calibration network (a zoo name, a ``module:function`` factory or an ONNX file) as an
    fp32 ONNX file: the file itself, or the model exported into ``workdir``."""
    from edgecnn.models.resolve import is_onnx_path, resolve_model
    from edgecnn.runtime.export import export_onnx

    if is_onnx_path(source):
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"calibration network '{source}' does not exist: give an ONNX file")
        return path
    rm = resolve_model(source)
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", source)
    return export_onnx(rm.module, workdir / f"net-{safe}.onnx", rm.input_shape)


def load_network(path: Path) -> tuple[onnx.ModelProto, Graph]:
    """An fp32 ONNX file and the IR read from it (so that the layer and tensor names agree)."""
    from edgecnn.models.resolve import load_graph

    return onnx.load(str(path)), load_graph(str(path))


# ----------------------------------------------------------------------------- calibration


def samples_per_type(samples: int) -> dict[str, int]:
    """How many of ``samples`` each kernel type gets (at least :data:`MIN_PER_TYPE`)."""
    total = sum(TYPE_WEIGHTS.values())
    return {k: max(MIN_PER_TYPE, round(samples * w / total)) for k, w in TYPE_WEIGHTS.items()}


def calibrate(
    precision: str = "fp32",
    samples: int = 300,
    seed: int = 0,
    out: str | Path | None = None,
    on_sample: Callable[[int, int], None] | None = None,
    chains: int = 0,
    networks: Sequence[str] = (),
) -> tuple[Predictor, CalibrationResult]:
    """Sample, measure and fit a predictor for ORT at ``precision`` on this host; save it.

    ``samples``: the number of single kernels measured (split by :func:`samples_per_type`);
    ``chains``: the number of random networks whose kernels are measured in context, each
    giving 5 to 45 more samples (and the per-kernel overhead): two in three are CNNs
    (:func:`sample_chain`), one in three transformer-like (:func:`sample_token_chain`).
    ``networks``: whole networks (zoo names, factories or ONNX files) whose kernels are
    measured in context too (:func:`measure_network`; for int8 quantized like the single
    kernels, after :func:`~edgecnn.runtime.onnx_prep.prepare_for_quantization`, which keeps
    the names the attribution follows). They are *used in calibration*.
    ``out``: the predictor file (default :func:`~edgecnn.analysis.latency_predictor.default_path`).
    ``on_sample(i, n)`` reports progress (single kernels and networks).
    """
    import onnxruntime as ort

    from edgecnn.analysis.devices import cpu_model
    from edgecnn.analysis.latency_predictor import save_predictor

    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision '{precision}': choose fp32 or int8")
    if samples < 1:
        raise ConfigError(f"--samples must be >= 1, got {samples}")
    if chains < 0:
        raise ConfigError(f"--chains must be >= 0, got {chains}")
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    plan = samples_per_type(samples)
    nets = list(networks)
    n_total = sum(plan.values()) + chains + len(nets)
    measured: list[Sample] = []
    items: list[int] = []  # the calibration item (1-based) each sample was measured in
    chain_rows: list[dict[str, float]] = []
    network_rows: list[dict[str, Any]] = []
    i = 0
    with tempfile.TemporaryDirectory(prefix="edgecnn-cal-") as d:
        work = Path(d)
        # exported first: a network that does not resolve fails before minutes of sampling
        net_files = [export_network(source, work) for source in nets]
        per_inference, per_kernel = measure_overheads(precision, work)
        # the speed anchor, timed between the samples: its median is the calibration's speed
        clock = AnchorClock(precision)
        anchors = [clock.time_ms()]

        def tick() -> None:
            if i % ANCHOR_EVERY == 0:
                anchors.append(clock.time_ms())

        for kind, n in plan.items():
            for _ in range(n):
                cfg = sample_config(kind, rng)
                model = build_model(cfg, seed=i, conv_context=in_conv_context(cfg, precision))
                copies = copies_for(model)
                model = replicate(model, copies)
                if precision == "int8":
                    model = quantize_model(model, work)
                kernel_ms, wall_ms, ops = measure_kernel(model, seed=i, copies=copies)
                _, f = features_of(cfg, precision)
                measured.append(Sample(kind, cfg, f, kernel_ms, wall_ms, ops))
                items.append(i + 1)
                i += 1
                tick()
                if on_sample is not None:
                    on_sample(i, n_total)
        for j in range(chains):
            cfgs = sample_token_chain(rng) if j % 3 == 2 else sample_chain(rng)
            model = build_chain(cfgs, seed=i)
            if precision == "int8":
                model = quantize_model(model, work)
            times, wall_ms = measure_chain(model, len(cfgs), seed=i)
            for cfg, ms in zip(cfgs, times, strict=True):
                kind, f = features_of(cfg, precision)
                measured.append(Sample(kind, cfg, f, ms, 0.0, [], source="chain"))
                items.append(i + 1)
            chain_rows.append(
                {
                    "kernels": len(cfgs),
                    "extra_inputs": len(model.graph.input) - 1,
                    "wall_ms": wall_ms,
                    "kernel_sum_ms": sum(times),
                }
            )
            i += 1
            tick()
            if on_sample is not None:
                on_sample(i, n_total)
        for source, path in zip(nets, net_files, strict=True):
            model, graph = load_network(path)
            if precision == "int8":  # names kept: the attribution follows them (onnx_prep)
                model = quantize_model(prepare_for_quantization(model), work)
            timed, summary = measure_network(model, graph, seed=i, precision=precision)
            for k, ms in timed:
                if ms > 0:
                    measured.append(Sample(k.type, {}, k.features, ms, 0.0, [], source="network"))
                    items.append(i + 1)
            network_rows.append({"network": source, **summary})
            i += 1
            tick()
            if on_sample is not None:
                on_sample(i, n_total)
    # per_kernel_ms stays the ReLU chain's: the random networks' own estimate (kept in meta)
    # adds the costs of their extra graph inputs and of nodes named after no kernel, and
    # over-predicted the zoo's many-kernel models by up to 2x (ShuffleNet v2 x0.5: a ReLU-chain
    # -0.0018 ms per kernel, the networks' +0.012; the zoo model's wall is below the sum of its
    # profiled kernels, as a negative value says)
    chain_per_kernel = (
        chain_per_kernel_ms(chain_rows, per_inference) if len(chain_rows) >= 3 else None
    )
    normalise_to_anchor(measured, items, anchors)
    models = fit_models(measured)
    corrections = fit_corrections(measured, models, precision)
    cpu = cpu_model()
    predictor = Predictor(
        runtime="ort",
        precision=precision,
        device="host",
        cpu=cpu,
        threads=1,
        models=models,
        corrections=corrections,
        per_kernel_ms=per_kernel,
        per_inference_ms=per_inference,
        meta={
            "onnxruntime": ort.__version__,
            "samples": len(measured),
            "chains": chains,
            "networks": nets,
            "chain_per_kernel_ms": chain_per_kernel,
            "seed": seed,
            "created_unix_s": time.time(),
            "int8_settings": INT8_SETTINGS if precision == "int8" else None,
            # the speed anchor's median timing and all timings in order (ms, runtime/anchor.py)
            "anchor_ms": statistics.median(anchors),
            "anchor_timings_ms": anchors,
        },
    )
    path = save_predictor(predictor, out)
    seconds = time.perf_counter() - t0
    predictor.meta["calibration_s"] = seconds
    save_predictor(predictor, path)
    return predictor, CalibrationResult(
        runtime="ort",
        precision=precision,
        device="host",
        cpu=cpu,
        path=str(path),
        samples=len(measured),
        seconds=seconds,
        per_inference_ms=per_inference,
        per_kernel_ms=per_kernel,
        types={
            k: {"samples": m.samples, "fit_median_abs_rel_error": m.fit_median_abs_rel_error}
            for k, m in models.items()
        },
        rows=[asdict(s) for s in measured],
        chains=chain_rows,
        networks=network_rows,
    )


def normalise_to_anchor(
    samples: list[Sample], items: Sequence[int], anchors: Sequence[float]
) -> None:
    """Scale each sample's ``kernel_ms`` (in place) to the calibration's median speed.

    ``anchors[j]`` is the speed anchor's time (ms) after item ``j * ANCHOR_EVERY`` (``j = 0``:
    before the first); ``items[n]`` the 1-based item sample ``n`` was measured in. Each
    timing is first smoothed (median of it and its two neighbours: one timing is +-3% noise);
    a sample's local anchor is the mean of the two smoothed timings around its item, and its
    time is multiplied by ``median(anchors) / local`` (recorded as ``anchor_scale``). On the
    development VM the anchor moved by +-7% within one calibration.
    """
    if len(anchors) < 2 or len(samples) != len(items):
        return
    ref = statistics.median(anchors)
    smooth = [statistics.median(anchors[max(0, j - 1) : j + 2]) for j in range(len(anchors))]
    last = len(smooth) - 1
    for s, item in zip(samples, items, strict=True):
        j = (item - 1) // ANCHOR_EVERY
        local = (smooth[min(j, last)] + smooth[min(j + 1, last)]) / 2
        s.anchor_scale = ref / local
        s.kernel_ms *= s.anchor_scale


def chain_per_kernel_ms(chains: list[dict[str, float]], per_inference_ms: float) -> float:
    """The per-kernel overhead (ms) from random networks: the median over the fast networks
    (wall time <= :data:`OVERHEAD_CHAIN_MAX_MS`, else the 3 fastest) of
    ``(wall_ms - per_inference_ms - kernel_sum_ms) / (kernels + extra_inputs)``.

    It is the executor's cost of one more kernel net of the profiler's inflation of the
    kernel times, as the random networks see it; it is kept in the predictor's ``meta`` for
    comparison only, the predictor using the ReLU chain's (:func:`measure_overheads`);
    each extra graph input (a second addend, a scale) costs ``run`` about one kernel's
    dispatch (its copy and reorder), which a one-input network does not pay. Only fast
    networks count: in a slow one the overhead is a small difference of two large, separately
    measured times.
    """
    fast = [c for c in chains if c["wall_ms"] <= OVERHEAD_CHAIN_MAX_MS]
    if len(fast) < 3:
        fast = sorted(chains, key=lambda c: c["wall_ms"])[:3]
    return float(
        statistics.median(
            (c["wall_ms"] - per_inference_ms - c["kernel_sum_ms"])
            / (c["kernels"] + c["extra_inputs"])
            for c in fast
        )
    )


OVERHEAD_CHAIN_MAX_MS = 5.0


#: How much more a kernel measured inside a random network counts in the fit than an isolated
#: one: in a network it reads the activations its producer just wrote and weights that other
#: kernels evicted, as in the zoo; replicated single kernels only approximate that.
CHAIN_SAMPLE_WEIGHT = 4.0
#: Whole networks ``edgecnn calibrate`` measures by default (fp32), one small member of each
#: torchvision family whose kernels the sampled shapes miss in context (SE blocks, channel
#: shuffles, group convs, dense concats, attention, ConvNeXt's 7x7 depthwise + layer norm).
#: They are used in calibration, so the predictor's benchmark leaves them out of its scores.
DEFAULT_NETWORKS: tuple[str, ...] = (
    "mobilenet_v3_small",
    "shufflenet_v2_x0_5",
    "regnet_x_400mf",
    "regnet_y_400mf",
    "efficientnet_b0",
    "mnasnet0_5",
    "squeezenet1_1",
    "resnet18",
    "densenet121",
    "googlenet",
    "convnext_tiny",
    "swin_t",
    "vit_b_32",
    "maxvit_t",
)
#: Sample sources measured inside a network (random or whole), weighted by the chain weight.
IN_CONTEXT = frozenset({"chain", "network"})
#: Kernel types fitted on absolute rather than relative errors. A "memory" kernel (transpose,
#: slice, gather, a copying reshape) or a broadcast "add" covers ops whose cost per byte
#: differs by ~10x (a permuting transpose against a plain copy) under the same byte features;
#: a relative fit follows the many tiny ones and predicted the whole networks' sum of these
#: kernels at 0.47x (memory) / 0.57x (add) of the measured fp32 (ConvNeXt's permutes, the
#: transformers' head splits). The absolute fit gets the large ones, which dominate a
#: network's time, right first: on one benchmark's measurements (``--rescore``) fp32 38 -> 40
#: and int8 33 -> 35 of 55 held-out models within +-10%.
ABSOLUTE_FIT_TYPES = frozenset({"memory", "add"})


def fit_models(
    measured: list[Sample], chain_weight: float = CHAIN_SAMPLE_WEIGHT
) -> dict[str, TypeModel]:
    """One fitted model per kernel type that has samples (see :func:`fit_type_model`); samples
    from random networks weigh ``chain_weight`` times the isolated ones; the types in
    :data:`ABSOLUTE_FIT_TYPES` minimise absolute errors, the others relative errors."""
    models: dict[str, TypeModel] = {}
    for kind, feats in FEATURES.items():
        rows = [s for s in measured if s.type == kind and s.kernel_ms > 0]
        if not rows:
            continue
        x = np.array([[s.features.get(f, 0.0) for f in feats] for s in rows])
        y = np.array([s.kernel_ms for s in rows])
        w = np.array([chain_weight if s.source in IN_CONTEXT else 1.0 for s in rows])
        models[kind] = fit_type_model(
            feats, x, y, relative=kind not in ABSOLUTE_FIT_TYPES, weights=w
        )
    return models


def fit_corrections(
    measured: list[Sample],
    models: dict[str, TypeModel],
    precision: str,
    chain_weight: float = CHAIN_SAMPLE_WEIGHT,
    seed: int = 0,
) -> dict[str, Correction]:
    """Per kernel type with a linear model and at least
    :data:`~edgecnn.analysis.latency_correction.MIN_SAMPLES` samples: boosted trees on
    ``log(measured / linear)`` (:func:`~edgecnn.analysis.latency_correction.fit_correction`),
    samples from random networks weighing ``chain_weight`` times the isolated ones."""
    out: dict[str, Correction] = {}
    for kind, model in models.items():
        rows = [s for s in measured if s.type == kind and s.kernel_ms > 0]
        if len(rows) < MIN_SAMPLES:
            continue
        x = np.array([correction_features(model.features, s.features, precision) for s in rows])
        linear = np.array([max(model.predict(s.features), 1e-6) for s in rows])
        y = np.log(np.array([s.kernel_ms for s in rows]) / linear)
        w = np.array([chain_weight if s.source in IN_CONTEXT else 1.0 for s in rows])
        out[kind] = fit_correction(x, y, w, seed=seed)
    return out
