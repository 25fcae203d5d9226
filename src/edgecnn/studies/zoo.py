"""The compute-vs-bandwidth study of the CNN zoo (AlexNet to EfficientNet).

Each model is profiled at its DEFAULT weights' crop size (``zoo_entry(name).input_shape``: 224x224x3,
Inception v3 299x299x3), batch 1, with BatchNorm folded
and activations fused; DRAM traffic is weights plus every feature map written and read back
(:mod:`edgecnn.analysis.traffic`). Our counts group-aware and stride-correct; the published
study's companion code is not reused (see the README's "Conventions").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

from edgecnn.analysis.profile import profile
from edgecnn.graph.from_torch import graph_from_module
from edgecnn.models.zoo import ZOO_STUDY_MODELS, build_zoo_model, zoo_entry
from edgecnn.schema import ResultKind


@dataclass
class ZooRow:
    model: str
    input_size: int
    macs: int
    flops: int
    params: int
    weight_bytes: int
    activation_traffic_bytes: int
    dram_bytes: int
    peak_activation_bytes: int
    arithmetic_intensity: float
    latency_s: float | None


@dataclass
class ZooStudy:
    precision: str
    device: str | None
    rows: list[ZooRow]

    def to_dict(self) -> dict:
        return {"kind": ResultKind.ZOO.value, **asdict(self)}


def run_zoo_study(
    models: tuple[str, ...] = ZOO_STUDY_MODELS,
    precision: str = "fp32",
    device: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> ZooStudy:
    """Profile each model of the study and collect one row per model."""
    rows = []
    for name in models:
        if progress:
            progress(name)
        entry = zoo_entry(name)
        size = entry.crop_size
        graph = graph_from_module(build_zoo_model(name, entry.num_classes), entry.input_shape, name)
        t = profile(graph, precision, device).totals
        rows.append(
            ZooRow(
                model=name,
                input_size=size,
                macs=t.macs,
                flops=t.flops,
                params=t.params,
                weight_bytes=t.dram_weight_bytes,
                activation_traffic_bytes=t.dram_activation_bytes,
                dram_bytes=t.dram_bytes,
                peak_activation_bytes=t.peak_activation_bytes,
                arithmetic_intensity=t.arithmetic_intensity,
                latency_s=t.latency_s,
            )
        )
    return ZooStudy(precision=precision, device=device, rows=rows)
