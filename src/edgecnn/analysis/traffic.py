"""DRAM traffic of a network run group by group (the compute-vs-bandwidth study's model).

Each fused group (conv/linear with its folded BatchNorm and fused activation, or any other
layer) reads its weights and its input feature maps from DRAM and writes its output feature map
back, so without an on-chip buffer every intermediate feature map crosses the DRAM boundary twice
(once written, once read by each reader). Aliases (reshape, flatten, dropout) move nothing.

With an on-chip buffer of ``onchip_bytes``, a feature map stays on chip, and costs no DRAM
traffic, when it fits beside the feature maps already held there; held maps are released after
their last reader (a greedy, order-preserving allocation). The network's inputs are always read
from DRAM and its outputs always written to DRAM. Weights are always read from DRAM.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgecnn.analysis.fusion import FusedGroup, alias_roots
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

    last_reader: dict[str, int] = {}
    for i, g in enumerate(groups):
        if g.is_alias:
            continue
        for t in g.inputs:
            last_reader[root(t.name)] = i
    graph_outputs = {root(t.name) for t in graph.outputs}
    resident: dict[str, int] = {}
    result: list[GroupTraffic] = []
    for i, g in enumerate(groups):
        if g.is_alias:
            result.append(GroupTraffic(g.name, 0, 0, 0))
            continue
        reads = 0
        seen: set[str] = set()
        for t in g.inputs:
            r = root(t.name)
            if r in seen:
                continue
            seen.add(r)
            if r not in resident:
                reads += t.numel * bytes_per_elem
        writes = 0
        for t in g.outputs:
            size = t.numel * bytes_per_elem
            held = sum(resident.values())
            if onchip_bytes > 0 and t.name not in graph_outputs and held + size <= onchip_bytes:
                resident[t.name] = size
            else:
                writes += size
        for r in [r for r in resident if last_reader.get(r, -1) <= i]:
            del resident[r]
        result.append(GroupTraffic(g.name, g.weight_elems() * bytes_per_elem, reads, writes))
    return result
