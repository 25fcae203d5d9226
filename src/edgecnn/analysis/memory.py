"""Peak activation memory from tensor liveness over the graph's execution order.

A tensor is allocated when its producer runs and freed after its last reader; graph inputs are
live from the start, graph outputs until the end. Aliases (reshape, flatten, dropout, views) share
their source's storage. Memory is counted at ``bytes_per_elem`` for every tensor (the precision
the network runs in), and in-place reuse of an input by its consumer is not assumed.
"""

from __future__ import annotations

from edgecnn.analysis.fusion import alias_roots
from edgecnn.graph.ir import ALIAS_KINDS, Graph


def live_bytes_per_step(graph: Graph, bytes_per_elem: int = 4) -> list[int]:
    """Bytes of live activation tensors while each layer runs (its inputs and outputs included)."""
    roots = alias_roots(graph)

    def root(name: str) -> str:
        return roots.get(name, name)

    size: dict[str, int] = {}
    born: dict[str, int] = {}
    last: dict[str, int] = {}
    for t in graph.inputs:
        size[t.name] = t.numel * bytes_per_elem
        born[t.name] = 0
        last[t.name] = 0
    n = len(graph.layers)
    for i, layer in enumerate(graph.layers):
        for t in layer.inputs:
            r = root(t.name)
            last[r] = max(last.get(r, i), i)
            if r not in size:  # a tensor the graph never produced (external): live from start
                size[r] = t.numel * bytes_per_elem
                born[r] = 0
        if layer.op in ALIAS_KINDS:
            continue
        for t in layer.outputs:
            size[t.name] = t.numel * bytes_per_elem
            born[t.name] = i
            last.setdefault(t.name, i)
    for t in graph.outputs:
        last[root(t.name)] = n - 1
    delta = [0] * (n + 1)
    for name, b in size.items():
        delta[born[name]] += b
        delta[last.get(name, born[name]) + 1] -= b
    steps, running = [], 0
    for i in range(n):
        running += delta[i]
        steps.append(running)
    return steps


def peak_activation_bytes(graph: Graph, bytes_per_elem: int = 4) -> int:
    """Largest total of simultaneously live activation tensors, in bytes."""
    steps = live_bytes_per_step(graph, bytes_per_elem)
    if not steps:
        return sum(t.numel for t in graph.inputs) * bytes_per_elem
    return max(steps)
