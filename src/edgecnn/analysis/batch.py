"""The largest batch that fits a device's memory.

Convention: a batch *fits* when the weights plus the peak of simultaneously live activations
(:func:`edgecnn.analysis.memory.peak_activation_bytes`, inputs included) at the chosen precision
are at most the device's ``memory_bytes`` (the RAM the model and its feature maps share; see
``devices.toml``). Weights are every parameter tensor the network reads (the profile's
``weight_bytes``: BatchNorm statistics included, as an unfolded runtime holds them). Runtime
workspace, the framework and the operating system are not counted: the answer is an upper bound.

:func:`max_batch` takes a function that builds the graph at a batch size, so it works for any
frontend; it estimates the answer from the batch-1 and batch-2 graphs (activations grow linearly
with the batch) and then checks it exactly: the returned batch fits and the next one does not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

from edgecnn.analysis.memory import peak_activation_bytes
from edgecnn.errors import ConfigError
from edgecnn.graph.ir import Graph

BYTES_PER_ELEM = {"fp32": 4, "fp16": 2, "int8": 1}

MAX_SEARCH_BATCH = 1 << 20
"""Batches above this are not searched (the answer is reported as this cap)."""


@dataclass(frozen=True)
class MaxBatchResult:
    """Largest fitting batch and the bytes it needs (weights + peak activations)."""

    batch: int
    memory_bytes: int
    weight_bytes: int
    peak_activation_bytes: int  # at ``batch``
    needed_bytes: int  # weights + peak activations at ``batch``
    next_needed_bytes: int  # at ``batch + 1`` (> memory_bytes unless capped)
    capped: bool  # True when the search stopped at MAX_SEARCH_BATCH

    def to_dict(self) -> dict:
        return asdict(self)


def weight_bytes(graph: Graph, bytes_per_elem: int) -> int:
    """Bytes of every parameter tensor the graph reads, at ``bytes_per_elem`` per element."""
    return sum(layer.weight_numel for layer in graph.layers) * bytes_per_elem


def needed_bytes(graph: Graph, bytes_per_elem: int) -> tuple[int, int]:
    """``(weight bytes, peak activation bytes)`` of one graph."""
    return weight_bytes(graph, bytes_per_elem), peak_activation_bytes(graph, bytes_per_elem)


def max_batch(
    graph_at: Callable[[int], Graph],
    memory_bytes: int,
    precision: str = "fp32",
    device: str = "the device",
) -> MaxBatchResult:
    """Largest batch whose weights plus peak activations fit ``memory_bytes``.

    ``graph_at(b)`` builds the network at batch ``b``. Raises ``ConfigError`` when even batch 1
    does not fit or ``memory_bytes`` is not positive.
    """
    if precision not in BYTES_PER_ELEM:
        raise ConfigError(f"unknown precision '{precision}': choose fp32, fp16 or int8")
    if memory_bytes <= 0:
        raise ConfigError(f"memory of {device} must be positive, got {memory_bytes} bytes")
    bpe = BYTES_PER_ELEM[precision]
    cache: dict[int, int] = {}
    weights = 0

    def need(b: int) -> int:
        nonlocal weights
        if b not in cache:
            w, a = needed_bytes(graph_at(b), bpe)
            weights = w
            cache[b] = w + a
        return cache[b]

    if need(1) > memory_bytes:
        raise ConfigError(
            f"the model needs {need(1) / 2**20:.1f} MiB at batch 1 ({precision}: weights plus "
            f"peak activations) but {device} has {memory_bytes / 2**20:.1f} MiB: use a smaller "
            "input, int8 or a smaller model"
        )
    per_item = max(need(2) - need(1), 1)
    guess = 1 + (memory_bytes - need(1)) // per_item
    guess = max(1, min(guess, MAX_SEARCH_BATCH))
    # exact search around the linear estimate: lo fits, hi does not (or hi is the cap + 1)
    if need(guess) <= memory_bytes:
        lo, step = guess, 1
        while lo + step <= MAX_SEARCH_BATCH and need(lo + step) <= memory_bytes:
            lo, step = lo + step, step * 2
        hi = min(lo + step, MAX_SEARCH_BATCH + 1)
    else:
        hi, step = guess, 1
        while hi - step >= 1 and need(hi - step) > memory_bytes:
            hi, step = hi - step, step * 2
        lo = max(hi - step, 1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if need(mid) <= memory_bytes:
            lo = mid
        else:
            hi = mid
    capped = lo >= MAX_SEARCH_BATCH
    return MaxBatchResult(
        batch=lo,
        memory_bytes=int(memory_bytes),
        weight_bytes=weights,
        peak_activation_bytes=need(lo) - weights,
        needed_bytes=need(lo),
        next_needed_bytes=need(lo + 1) if not capped else need(lo),
        capped=capped,
    )
