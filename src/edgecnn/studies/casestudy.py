"""The seed documents' ResNet-50 accelerator case, step by step, against their claims.

The seed text (an edge device running ResNet-50 on a chip of 128 FP16 MAC units with 4 MB of
SRAM and Winograd support) claims 60% lower latency from three optimisations: BatchNorm fused
into the preceding convolution, Winograd cutting 3x3 convolution multiplications 4x, and
on-chip feature-map reuse cutting DRAM traffic 75%. We simulate the four steps on the
``seed-chip`` preset (tiled model):

1. baseline: BN and activations as separate vector passes, direct convolution, every feature
   map through DRAM;
2. + BN folding and activation fusion;
3. + Winograd F(4x4, 3x3) on the eligible (3x3, stride 1) convolutions;
4. + feature maps kept on chip while they fit (half of the 4 MB).

and compare each claim with what the model gives, saying why where they differ.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from edgecnn.graph.ir import Graph
from edgecnn.hardware.config import AcceleratorConfig, Winograd, load_preset
from edgecnn.hardware.simulate import SimOptions, SimResult, simulate
from edgecnn.hardware.workload import ArrayWork, build_workload
from edgecnn.schema import ResultKind

STEPS: tuple[tuple[str, SimOptions], ...] = (
    ("baseline", SimOptions(fuse=False, winograd=False, fmap_reuse=False)),
    ("+ BN fusion", SimOptions(fuse=True, winograd=False, fmap_reuse=False)),
    ("+ Winograd 3x3", SimOptions(fuse=True, winograd=True, fmap_reuse=False)),
    ("+ on-chip feature-map reuse", SimOptions(fuse=True, winograd=True, fmap_reuse=True)),
)


@dataclass
class CaseStep:
    """One step: latency, DRAM traffic, multiplications of the 3x3 convolutions, energy."""

    step: str
    cycles: int
    latency_s: float
    dram_bytes: int
    mults_3x3: int
    energy_j: float


@dataclass
class Claim:
    """A seed claim next to our figure.

    ``seed_value`` and ``ours_value`` are the claimed and the simulated quantity (a reduction as
    a fraction, or a ratio); the claim ``agrees`` when they differ by at most ``tolerance``.
    """

    claim: str
    seed: str
    ours: str
    seed_value: float
    ours_value: float
    tolerance: float
    why: str

    @property
    def agrees(self) -> bool:
        return abs(self.ours_value - self.seed_value) <= self.tolerance


@dataclass
class CaseStudy:
    model: str
    accelerator: str
    precision: str
    steps: list[CaseStep]
    claims: list[Claim]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for c, claim in zip(d["claims"], self.claims, strict=True):
            c["agrees"] = claim.agrees
        return {"kind": ResultKind.CASESTUDY.value, **d}


def _mults_3x3(graph: Graph, result: SimResult, fuse: bool) -> int:
    items = build_workload(graph, fuse=fuse).items
    total = 0
    for item, layer in zip(items, result.layers, strict=True):
        if isinstance(item, ArrayWork) and (item.shape.kernel_h, item.shape.kernel_w) == (3, 3):
            total += layer.effective_macs
    return total


def run_casestudy(graph: Graph, accel: AcceleratorConfig | None = None) -> CaseStudy:
    """Simulate the four steps of the seed case on ``accel`` (default: the seed-chip preset)."""
    accel = accel or load_preset("seed-chip")
    if accel.winograd == Winograd.NONE:
        accel = accel.replace(winograd=Winograd.F4)
    steps: list[CaseStep] = []
    results = []
    for name, opts in STEPS:
        res = simulate(graph, accel, opts)
        results.append(res)
        t = res.totals
        steps.append(
            CaseStep(
                name,
                t["cycles"],
                t["latency_s"],
                t["dram_bytes"],
                _mults_3x3(graph, res, opts.fuse),
                t["energy_j"],
            )
        )
    base, fused, wino, reuse = steps
    wres = results[2]
    items = build_workload(graph, fuse=True).items
    eligible = [
        (i, lr)
        for i, lr in zip(items, wres.layers, strict=True)
        if isinstance(i, ArrayWork) and lr.winograd
    ]
    elig_direct = sum(lr.macs for _, lr in eligible)
    elig_wino = sum(lr.effective_macs for _, lr in eligible)
    lat_red = 1 - reuse.latency_s / base.latency_s
    mult_ratio = fused.mults_3x3 / wino.mults_3x3
    elig_ratio = elig_direct / elig_wino if elig_wino else 1.0
    dram_red = 1 - reuse.dram_bytes / wino.dram_bytes
    dram_red_total = 1 - reuse.dram_bytes / base.dram_bytes
    weight_bytes = sum(lr.dram_read_bytes["weight"] for lr in results[3].layers)
    m = accel.winograd.m
    off_chip = [lr.dram_write_bytes["output"] for lr in results[3].layers if not lr.output_on_chip]
    fusion_gain = 1 - fused.latency_s / base.latency_s
    claims = [
        Claim(
            "ResNet-50 latency 60% lower",
            "-60%",
            f"{-lat_red:+.0%} (fusion {-fusion_gain:+.0%}, Winograd "
            f"{wino.latency_s / fused.latency_s - 1:+.0%}, reuse {reuse.latency_s / wino.latency_s - 1:+.0%})",
            0.60,
            lat_red,
            0.10,
            "On 128 MACs ResNet-50 is compute-bound, so latency follows array time: Winograd "
            "gives most of the gain, fusion removes the BN/ReLU vector passes and their DRAM "
            "round trips, and reuse mostly removes stalls that double buffering already hid.",
        ),
        Claim(
            "3x3 convolution multiplications 4x fewer",
            "4x",
            f"{elig_ratio:.2f}x on the {len(eligible)} convs run with Winograd, "
            f"{mult_ratio:.2f}x over all 3x3 convs",
            4.0,
            elig_ratio,
            0.25,
            f"F({m}x{m},3x3) needs {(m + 2) ** 2} multiplications per {m * m} outputs instead of "
            f"{9 * m * m}: exactly {9 * m * m / (m + 2) ** 2:.2f}x inside the map; maps whose size is "
            f"not a multiple of {m} (ResNet-50's 7x7 and 14x14 stages) waste part of their edge tiles, "
            "the stride-2 3x3 convs (torchvision's v1.5 downsampling) cannot use Winograd at all, "
            "and layers where the transforms (on the vector unit, weights transformed on chip) "
            "would take longer than the direct convolution keep the direct form.",
        ),
        Claim(
            "DRAM traffic 75% lower with on-chip feature-map reuse",
            "-75%",
            f"{-dram_red:+.0%} from reuse alone, {-dram_red_total:+.0%} against the baseline",
            0.75,
            dram_red,
            0.10,
            f"Reuse can only remove feature-map traffic: of the {reuse.dram_bytes / 1e6:.0f} MB "
            f"left, {weight_bytes / 1e6:.0f} MB are ResNet-50's weights (read every inference at "
            f"{accel.precision}), and {len(off_chip)} feature maps (up to "
            f"{max(off_chip, default=0) / 1e6:.1f} MB) still cross DRAM because the live set "
            "(residual branches included) exceeds the half of the SRAM reserved for feature maps.",
        ),
    ]
    return CaseStudy(graph.name, accel.name, accel.precision, steps, claims)
