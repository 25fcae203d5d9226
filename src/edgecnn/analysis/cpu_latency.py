"""CPU latency model for catalog CPUs: an achievable-rate roofline per kernel, with the thread
count and the runtime's convolution algorithm as inputs.

Per fused group (one kernel: a conv/linear with its folded BatchNorm and fused activation, or
any other layer; :mod:`edgecnn.analysis.fusion`)::

    t = max(flops / (core_peak x gemm_efficiency x K / (K + reduction_half) x speedup(threads)),
            dram_bytes / sustained_bandwidth)
    speedup(n) = 1 + parallel_efficiency x (n - 1)          (n = 1: exactly one core)

and the network's latency is the sum over kernels.

* ``core_peak`` is one core's FP32 peak, the catalog's ``peak_ops_fp32 / cores`` (datasheet
  clock x FLOP/cycle).
* ``K`` is the kernel's reduction length, the multiply-adds per output element (conv:
  C/G x kh x kw; Winograd: C/G; linear: in features; 1 for every other op): a GEMM micro-kernel
  loads and stores its accumulator tile once per output, so short reductions (depthwise 3x3:
  K = 9, elementwise ops: 1) reach a smaller share of the peak than long ones.
* ``sustained_bandwidth`` is the catalog's measured DRAM bandwidth, shared by all threads (not
  multiplied by the thread count).
* ``dram_bytes`` follows :mod:`edgecnn.analysis.traffic` with the device's on-chip cache as the
  feature-map buffer; weights are read from DRAM on every inference.
* A runtime that runs 3x3 stride-1 dilation-1 convolutions with Winograd F(m x m, 3 x 3)
  (:data:`RUNTIMES`: ncnn, m = 6 up to 128 channels, else 4) executes ``(m + 2)^2`` elementwise products per output tile, input and
  output channel instead of ``9 m^2`` MACs (tiles are ``ceil(OH / m) x ceil(OW / m)``: partial
  tiles cost a full tile), the ratio of
  :func:`edgecnn.kernels.counts.winograd_tile_savings`, and streams the transformed filters,
  ``(m + 2)^2 / 9`` times the weights. Transform arithmetic is not counted
  separately: ``winograd_efficiency`` (below) carries it.

Four parameters are fitted (:data:`FITTED`, :func:`fit`: least squares in log latency on
stated calibration references); the rest comes from the device catalog. The fourth,
``winograd_efficiency``, scales a Winograd kernel's rate::

    t_winograd = flops_winograd / (rate x winograd_efficiency)

because the runtime's Winograd path is not as fast as its multiplication count says (ncnn on the
Raspberry Pi 4 gets about 0.55 of a direct GEMM's rate per transformed-domain FLOP).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from edgecnn.analysis.costs import layer_cost
from edgecnn.analysis.devices import Device
from edgecnn.analysis.fusion import fused_groups
from edgecnn.analysis.traffic import dram_traffic
from edgecnn.errors import ConfigError
from edgecnn.graph.ir import PRECISION_BYTES, Graph, Layer, OpKind


@dataclass(frozen=True)
class Runtime:
    """What of a runtime's algorithm choice the model needs."""

    name: str
    winograd: tuple[tuple[int | None, int], ...]
    """Winograd F(m x m, 3 x 3) for 3x3 s1 convs: ``(max_channels, m)`` rules, the first whose
    ``max_channels`` (None: any) bounds both channel counts per group wins; () for none."""
    source: str

    def winograd_m(self, cin: int, cout: int) -> int | None:
        for bound, m in self.winograd:
            if bound is None or (cin <= bound and cout <= bound):
                return m
        return None


RUNTIMES: dict[str, Runtime] = {
    "ncnn": Runtime(
        "ncnn",
        ((128, 6), (None, 4)),
        "Tencent/ncnn src/layer/arm/convolution_arm.cpp (create_pipeline/forward): with "
        "use_winograd_convolution (benchncnn sets it) a 3x3 s1 d1 conv with >= 8 input or output "
        "channels runs conv3x3s1_winograd63 (F(6x6, 3x3)) when both channel counts are <= 128, "
        "else conv3x3s1_winograd43 (F(4x4, 3x3))",
    ),
    "tflite": Runtime("tflite", (), "TFLite / XNNPACK fp32: direct/IGEMM convolutions"),
    "pytorch": Runtime(
        "pytorch", (), "PyTorch CPU fp32 at batch 1: im2col + GEMM (NNPACK needs batch >= 16)"
    ),
}


@dataclass(frozen=True)
class CpuParams:
    """The model's parameters for one device."""

    core_peak_flops: float  #: one core's FP32 peak, FLOP/s
    cores: int
    sustained_bytes_per_s: float  #: DRAM bandwidth the cores share
    gemm_efficiency: float = 1.0  #: fitted: share of a core's peak a kernel reaches
    parallel_efficiency: float = 1.0  #: fitted: each extra thread adds this many cores
    reduction_half: float = 0.0  #: fitted: reduction length at which a kernel runs at half rate
    winograd_efficiency: float = 1.0
    """fitted: rate of a Winograd convolution's multiply stage relative to a direct GEMM of
    the same reduction length (what the input/output transforms, the tile scatter and gather
    and the transformed-domain GEMM's shorter rows cost together)"""

    def speedup(self, threads: int) -> float:
        if not 1 <= threads <= self.cores:
            raise ConfigError(f"threads must be 1..{self.cores}, got {threads}")
        return 1.0 + self.parallel_efficiency * (threads - 1)


def device_params(device: Device) -> CpuParams:
    """Unfitted parameters of a catalog CPU (efficiencies 1, ``reduction_half`` 0)."""
    if device.cores is None:
        raise ConfigError(f"device '{device.name}' has no core count: not a CPU in the catalog")
    bandwidth = device.sustained_dram_bytes_per_s or device.dram_bytes_per_s
    return CpuParams(device.peak_ops("fp32") / device.cores, device.cores, bandwidth)


def catalog_params(device: Device) -> CpuParams | None:
    """The device's fitted parameters from the catalog (``cpu_model``), or None without them."""
    if device.cores is None or not device.cpu_model:
        return None
    unknown = set(device.cpu_model) - set(FITTED)
    if unknown:
        raise ConfigError(
            f"device '{device.name}': unknown cpu_model keys {sorted(unknown)}: use {list(FITTED)}"
        )
    return replace(device_params(device), **device.cpu_model)


def network_latency_s(
    graph: Graph, device: Device, threads: int | None = None, runtime: str | None = None
) -> float | None:
    """fp32 latency of ``graph`` on a catalog CPU with fitted parameters, at ``threads`` (default:
    all cores) under ``runtime``'s algorithms (default: direct convolution); None if the device
    has no fitted CPU model."""
    params = catalog_params(device)
    if params is None:
        return None
    return latency_s(kernel_work(graph, device, runtime), params, threads or params.cores)


@dataclass(frozen=True)
class KernelWork:
    """What one fused group does: FLOPs executed (after the algorithm choice) and DRAM bytes."""

    name: str
    algorithm: str  #: "winograd", "direct" (other MAC layers) or "other"
    flops: float
    dram_bytes: float
    reduction: int = 1  #: multiply-adds per output element (1 for ops without a reduction)


def is_winograd_conv(layer: Layer) -> bool:
    """A 3x3 stride-1 dilation-1 conv with >= 8 input or output channels per group (ncnn runs
    these with Winograd; a grouped conv runs as one convolution per group; depthwise never)."""
    if layer.op is not OpKind.CONV or not layer.inputs:
        return False
    groups = int(layer.attr("groups", 1))
    cin, cout = layer.inputs[0].shape[1] // groups, layer.outputs[0].shape[1] // groups
    return (
        tuple(layer.attr("kernel", (1, 1))) == (3, 3)
        and tuple(layer.attr("stride", (1, 1))) == (1, 1)
        and tuple(layer.attr("dilation", (1, 1))) == (1, 1)
        and (cin >= 8 or cout >= 8)
    )


def winograd_flops(layer: Layer, m: int) -> int:
    """2 x the elementwise products of F(m x m, 3 x 3): ``(m+2)^2`` per tile, input and output
    channel, over ``ceil(OH/m) x ceil(OW/m)`` tiles per image."""
    n, k, oh, ow = layer.outputs[0].shape
    c = layer.inputs[0].shape[1] // int(layer.attr("groups", 1))
    tiles = math.ceil(oh / m) * math.ceil(ow / m)
    return 2 * n * tiles * (m + 2) ** 2 * c * k


def winograd_weight_ratio(m: int) -> float:
    """Transformed-filter elements per direct one: ``(m + 2)^2 / 9``."""
    return (m + 2) ** 2 / 9


def kernel_work(
    graph: Graph, device: Device, runtime: str | None = None, precision: str = "fp32"
) -> list[KernelWork]:
    """Per fused group (aliases skipped): FLOPs and DRAM bytes under ``runtime``'s algorithms."""
    if runtime is not None and runtime not in RUNTIMES:
        raise ConfigError(f"unknown runtime '{runtime}': choose one of {', '.join(RUNTIMES)}")
    rt = RUNTIMES[runtime] if runtime else None
    bpe = PRECISION_BYTES[precision]
    groups = fused_groups(graph)
    traffic = dram_traffic(graph, groups, bpe, device.onchip_bytes or 0)
    out: list[KernelWork] = []
    for g, t in zip(groups, traffic, strict=True):
        if g.is_alias:
            continue
        costs = [layer_cost(layer) for layer in g.layers]
        flops = float(sum(c.flops for c in costs if c is not None))
        dram = float(t.dram_bytes)
        anchor = g.anchor
        algorithm = "direct" if anchor.op in (OpKind.CONV, OpKind.LINEAR) else "other"
        reduction = _reduction(anchor)
        m = _winograd_tile(rt, anchor)
        if m is not None:
            direct = costs[0].flops if costs[0] is not None else 0
            flops += winograd_flops(anchor, m) - direct
            w = anchor.weight_numel * bpe
            dram += w * (winograd_weight_ratio(m) - 1.0)
            algorithm = "winograd"
            reduction = anchor.inputs[0].shape[1] // int(anchor.attr("groups", 1))
        out.append(KernelWork(g.name, algorithm, flops, dram, reduction))
    return out


def _winograd_tile(rt: Runtime | None, layer: Layer) -> int | None:
    if rt is None or not is_winograd_conv(layer):
        return None
    groups = int(layer.attr("groups", 1))
    return rt.winograd_m(layer.inputs[0].shape[1] // groups, layer.outputs[0].shape[1] // groups)


def _reduction(layer: Layer) -> int:
    """Multiply-adds per output element of a MAC layer (conv: C/G x kh x kw; linear: in
    features), 1 for the rest."""
    if layer.op is OpKind.CONV and layer.inputs:
        groups = int(layer.attr("groups", 1))
        return layer.inputs[0].shape[1] // groups * math.prod(layer.attr("kernel", (1, 1)))
    if layer.op is OpKind.LINEAR and layer.inputs:
        return int(layer.inputs[0].shape[-1])
    return 1


def kernel_latency_s(work: KernelWork, params: CpuParams, threads: int) -> float:
    rate = params.core_peak_flops * params.gemm_efficiency * params.speedup(threads)
    rate *= work.reduction / (work.reduction + params.reduction_half)
    if work.algorithm == "winograd":
        rate *= params.winograd_efficiency
    compute = work.flops / rate
    memory = work.dram_bytes / params.sustained_bytes_per_s
    return max(compute, memory)


def latency_s(work: Sequence[KernelWork], params: CpuParams, threads: int) -> float:
    """Whole-network latency: the sum over kernels."""
    return sum(kernel_latency_s(w, params, threads) for w in work)


FITTED = ("gemm_efficiency", "parallel_efficiency", "reduction_half", "winograd_efficiency")
FIT_BOUNDS = {
    "gemm_efficiency": (0.05, 1.0),
    "parallel_efficiency": (0.0, 1.0),
    "reduction_half": (0.0, 256.0),
    "winograd_efficiency": (0.1, 1.0),
}


def fit(
    cases: Sequence[tuple[Sequence[KernelWork], int, float]],
    base: CpuParams,
    names: Sequence[str] = FITTED,
) -> CpuParams:
    """Least squares in log latency over ``cases`` = (work, threads, published seconds) for the
    fitted parameters (within :data:`FIT_BOUNDS`); the rest of ``base`` is kept.

    With no multi-thread case ``parallel_efficiency``, and with no Winograd kernel
    ``winograd_efficiency``, stays at ``base``'s value (nothing to fit it on).
    """
    from scipy.optimize import least_squares

    if not cases:
        raise ConfigError("the CPU latency fit needs at least one calibration reference")
    names = [n for n in names if n != "parallel_efficiency" or any(t > 1 for _, t, _ in cases)]
    has_winograd = any(w.algorithm == "winograd" for work, _, _ in cases for w in work)
    names = [n for n in names if n != "winograd_efficiency" or has_winograd]
    scale = {n: 1.0 for n in FIT_BOUNDS} | {"reduction_half": 100.0}

    def params_of(x) -> CpuParams:  # noqa: ANN001
        return replace(base, **{n: float(v) * scale[n] for n, v in zip(names, x, strict=True)})

    def residuals(x):  # noqa: ANN001, ANN202
        p = params_of(x)
        return [math.log(latency_s(w, p, th) / pub) for w, th, pub in cases]

    lo = [FIT_BOUNDS[n][0] / scale[n] for n in names]
    hi = [FIT_BOUNDS[n][1] / scale[n] for n in names]
    x0 = [(a + b) / 2 for a, b in zip(lo, hi, strict=True)]
    res = least_squares(residuals, x0, bounds=(lo, hi))
    return params_of(res.x)
