"""Per-layer and total cost of a network: compute, parameters, traffic, memory, roofline.

``profile(graph, precision, device, onchip_bytes)`` is what ``edgecnn profile`` prints; without
``onchip_bytes`` the device's on-chip memory (catalog ``onchip_bytes``) is the buffer.

* ``macs``/``flops`` follow :mod:`edgecnn.analysis.costs`.
* ``params`` is the source model's own parameter count (before folding); per layer, the
  parameters that layer is the first to read.
* ``weight_bytes``/``input_bytes``/``output_bytes`` are the layer's parameter tensors and
  activation tensors at the chosen precision (fp32 4, fp16 2, int8 1 byte per element).
* ``dram_bytes`` follows :mod:`edgecnn.analysis.traffic` on the fused network: a layer folded or
  fused into the one before it reports 0 and names its group in ``fused_into``.
* ``arithmetic_intensity`` is MACs per DRAM byte.
* With a device, ``latency_s`` is the roofline bound (max of FLOPs / peak ops and DRAM bytes /
  bandwidth) of each fused group, and the total is their sum; ``bound`` says which roof.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from edgecnn.analysis.batch import MaxBatchResult
from edgecnn.analysis.costs import MAC_KINDS, layer_cost
from edgecnn.analysis.cpu_latency import network_latency_s
from edgecnn.analysis.devices import Device, get_device
from edgecnn.analysis.fusion import fused_groups
from edgecnn.analysis.latency_predictor import ModelPrediction
from edgecnn.analysis.memory import peak_activation_bytes
from edgecnn.analysis.roofline import roofline
from edgecnn.analysis.traffic import dram_traffic
from edgecnn.errors import ConfigError
from edgecnn.graph.ir import ALIAS_KINDS, PRECISION_BYTES, Graph, Layer


@dataclass
class LayerProfile:
    name: str
    op: str
    source_op: str
    input_shape: list[int]
    output_shape: list[int]
    macs: int
    flops: int
    params: int
    weight_bytes: int
    input_bytes: int
    output_bytes: int
    dram_bytes: int
    arithmetic_intensity: float
    fused_into: str | None = None
    latency_s: float | None = None
    bound: str | None = None
    unknown: bool = False
    predicted_ms: float | None = None  # calibrated runtime prediction of the kernel it starts


@dataclass
class ProfileTotals:
    macs: int
    flops: int
    params: int
    weight_bytes: int
    activation_bytes: int
    dram_bytes: int
    dram_weight_bytes: int
    dram_activation_bytes: int
    peak_activation_bytes: int
    arithmetic_intensity: float
    layers: int
    fused_groups: int
    unknown_ops: list[dict[str, str]] = field(default_factory=list)
    latency_s: float | None = None
    compute_bound_layers: int | None = None
    memory_bound_layers: int | None = None
    predicted_ms: float | None = None  # calibrated runtime prediction (--runtime), whole model
    cpu_model_latency_s: float | None = None  # fp32, all cores: analysis.cpu_latency (fitted CPUs)


@dataclass
class ProfileResult:
    model: str
    input_shape: list[int]
    precision: str
    device: str | None
    onchip_bytes: int
    layers: list[LayerProfile]
    totals: ProfileTotals
    kind: str = "profile"
    max_batch: MaxBatchResult | None = None  # with --max-batch: the largest batch that fits
    runtime: str | None = None  # the runtime of the calibrated prediction, if any
    #: the prediction's speed factor: the host's speed anchor now over at calibration
    predicted_speed: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def profile(
    graph: Graph,
    precision: str = "fp32",
    device: str | Device | None = None,
    onchip_bytes: int | None = None,
) -> ProfileResult:
    """Analyse ``graph`` at ``precision`` (fp32/fp16/int8), optionally on ``device``.

    ``onchip_bytes=None`` takes the device's on-chip memory when the catalog gives one (else 0);
    an explicit value, 0 included, wins.
    """
    if precision not in PRECISION_BYTES:
        raise ConfigError(
            f"unknown precision '{precision}': choose one of {', '.join(PRECISION_BYTES)}"
        )
    dev = get_device(device) if isinstance(device, str) else device
    if onchip_bytes is None:
        onchip_bytes = (dev.onchip_bytes or 0) if dev is not None else 0
    if onchip_bytes < 0:
        raise ConfigError(f"on-chip buffer size must be >= 0 bytes, got {onchip_bytes}")
    bpe = PRECISION_BYTES[precision]
    if dev is not None:
        dev.peak_ops(precision)  # fails early, clearly, for an unsupported precision

    groups = fused_groups(graph)
    traffic = dram_traffic(graph, groups, bpe, onchip_bytes)
    group_of: dict[str, str] = {}
    group_traffic: dict[str, Any] = {}
    for g, t in zip(groups, traffic, strict=True):
        group_traffic[g.name] = (g, t)
        for member in g.layers[1:]:
            group_of[member.name] = g.name

    rows: list[LayerProfile] = []
    unknown: list[dict[str, str]] = []
    for layer in graph.layers:
        cost = layer_cost(layer)
        if cost is None:
            unknown.append({"layer": layer.name, "op": layer.source_op or layer.op.value})
        macs = cost.macs if cost else 0
        flops = cost.flops if cost else 0
        rows.append(
            LayerProfile(
                name=layer.name,
                op=layer.op.value,
                source_op=layer.source_op,
                input_shape=list(layer.inputs[0].shape) if layer.inputs else [],
                output_shape=list(layer.outputs[0].shape) if layer.outputs else [],
                macs=macs,
                flops=flops,
                params=layer.param_count,
                weight_bytes=layer.weight_numel * bpe,
                input_bytes=layer.input_numel * bpe,
                output_bytes=layer.output_numel * bpe,
                dram_bytes=0,
                arithmetic_intensity=0.0,
                fused_into=group_of.get(layer.name),
                unknown=cost is None,
            )
        )
    by_name = {r.name: r for r in rows}
    total_latency = 0.0
    bounds = {"compute": 0, "memory": 0}
    for g, t in zip(groups, traffic, strict=True):
        row = by_name[g.name]
        row.dram_bytes = t.dram_bytes
        group_macs = sum(by_name[m.name].macs for m in g.layers)
        group_flops = sum(by_name[m.name].flops for m in g.layers)
        row.arithmetic_intensity = group_macs / t.dram_bytes if t.dram_bytes else 0.0
        if dev is not None and not g.is_alias:
            point = roofline(group_flops, t.dram_bytes, dev, precision)
            row.latency_s = point.latency_s
            row.bound = point.bound
            total_latency += point.latency_s
            bounds[point.bound] += 1

    total_macs = sum(r.macs for r in rows)
    total_dram = sum(t.dram_bytes for t in traffic)
    totals = ProfileTotals(
        macs=total_macs,
        flops=sum(r.flops for r in rows),
        params=graph.param_count,
        weight_bytes=sum(r.weight_bytes for r in rows),
        activation_bytes=sum(
            r.output_bytes for r, layer in zip(rows, graph.layers, strict=True) if not _alias(layer)
        ),
        dram_bytes=total_dram,
        dram_weight_bytes=sum(t.weight_bytes for t in traffic),
        dram_activation_bytes=sum(t.read_bytes + t.write_bytes for t in traffic),
        peak_activation_bytes=peak_activation_bytes(graph, bpe),
        arithmetic_intensity=total_macs / total_dram if total_dram else 0.0,
        layers=len(rows),
        fused_groups=sum(1 for g in groups if not g.is_alias),
        unknown_ops=unknown,
        latency_s=total_latency if dev is not None else None,
        compute_bound_layers=bounds["compute"] if dev is not None else None,
        memory_bound_layers=bounds["memory"] if dev is not None else None,
        cpu_model_latency_s=(
            network_latency_s(graph, dev) if dev is not None and precision == "fp32" else None
        ),
    )
    return ProfileResult(
        model=graph.name,
        input_shape=list(graph.inputs[0].shape) if graph.inputs else [],
        precision=precision,
        device=dev.name if dev is not None else None,
        onchip_bytes=onchip_bytes,
        layers=rows,
        totals=totals,
    )


def attach_prediction(result: ProfileResult, prediction: ModelPrediction) -> ProfileResult:
    """Fill ``predicted_ms`` of ``result`` from a calibrated prediction (per kernel, on the
    kernel's first layer; the total includes the per-inference overhead)."""
    by_name = {r.name: r for r in result.layers}
    for k in prediction.kernels:
        row = by_name.get(k.layers[0])
        if row is not None:
            row.predicted_ms = (row.predicted_ms or 0.0) + k.latency_ms
    result.totals.predicted_ms = prediction.latency_ms
    result.runtime = prediction.runtime
    result.predicted_speed = prediction.speed
    return result


def _alias(layer: Layer) -> bool:
    return layer.op in ALIAS_KINDS


def mac_layers(result: ProfileResult) -> list[LayerProfile]:
    """The layers that carry MACs (conv, linear, matmul, attention)."""
    kinds = {k.value for k in MAC_KINDS}
    return [r for r in result.layers if r.op in kinds]


def human(n: float, unit: str = "") -> str:
    """``1234567`` -> ``1.23M`` (SI prefixes), for tables."""
    if n == 0:
        return f"0{unit}"
    exp = min(int(math.log10(abs(n)) // 3), 5)
    if exp <= 0:
        return f"{n:.3g}{unit}"
    return f"{n / 10 ** (3 * exp):.3g}{'kMGTP'[exp - 1]}{unit}"
