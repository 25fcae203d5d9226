"""DRAM traffic of a network run group by group (the compute-vs-bandwidth study's model).

Each fused group (conv/linear with its folded BatchNorm and fused activation, or any other
layer) reads its weights and its input feature maps from DRAM and writes its output feature map
back, so without an on-chip buffer every intermediate feature map crosses the DRAM boundary twice
(once written, once read by each reader). Aliases (reshape, flatten, dropout) move nothing.

With an on-chip buffer of ``onchip_bytes``, a feature map stays on chip, and costs no DRAM
traffic, when it fits beside the feature maps already held there; held maps are released after
their last reader (:func:`edgecnn.analysis.residency.allocate_resident`, the allocator the
accelerator model uses too). The network's inputs are always read
from DRAM and its outputs always written to DRAM. Weights are always read from DRAM.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgecnn.analysis.fusion import FusedGroup, alias_roots
from edgecnn.analysis.residency import Step, allocate_resident
from edgecnn.graph.ir import Graph


@dataclass(frozen=True)
class GroupTraffic:
    """Bytes one fused group moves across the DRAM boundary."""

    name: str
    weight_bytes: int
    read_bytes: int  #: activation bytes read from DRAM
    write_bytes: int  #: activation bytes written to DRAM

    @property
    def dram_bytes(self) -> int:
        return self.weight_bytes + self.read_bytes + self.write_bytes


def dram_traffic(
    graph: Graph, groups: list[FusedGroup], bytes_per_elem: int, onchip_bytes: int = 0
) -> list[GroupTraffic]:
    """Per-group DRAM traffic, in the order of ``groups`` (one entry per group)."""
    roots = alias_roots(graph)

    def root(name: str) -> str:
        return roots.get(name, name)

    steps = [
        Step((), ())
        if g.is_alias
        else Step(
            tuple((root(t.name), t.numel * bytes_per_elem) for t in g.inputs),
            tuple((t.name, t.numel * bytes_per_elem) for t in g.outputs),
        )
        for g in groups
    ]
    residency = allocate_resident(steps, onchip_bytes, {root(t.name) for t in graph.outputs})
    result: list[GroupTraffic] = []
    for g, step in zip(groups, steps, strict=True):
        if g.is_alias:
            result.append(GroupTraffic(g.name, 0, 0, 0))
            continue
        first: dict[str, int] = {}  # a tensor read twice (or two views of it) is read once
        for r, b in step.reads:
            first.setdefault(r, b)
        reads = sum(b for r, b in first.items() if r not in residency)
        writes = sum(b for name, b in step.writes if name not in residency)
        result.append(GroupTraffic(g.name, g.weight_elems() * bytes_per_elem, reads, writes))
    return result
