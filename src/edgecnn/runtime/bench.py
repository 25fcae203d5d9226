"""Latency measurement: warm-up, order statistics, and an interleaved A/B runner.

Conventions: a *sample* is the wall-clock time of one call (``time.perf_counter``), in seconds;
statistics are reported in milliseconds. Percentiles use linear interpolation between order
statistics, so ``min <= median <= p90 <= p99 <= max`` always holds. Throughput is
``batch / median`` in items per second.

:func:`interleaved` runs several candidates round-robin (the starting candidate rotates each
round), so slow drift of the machine (frequency, other load) affects every candidate alike; speed
ratios should be taken from one interleaved run, never from two separate runs.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

import numpy as np

from edgecnn.errors import ConfigError


@dataclass(frozen=True)
class LatencyStats:
    """Latency of one candidate: order statistics in milliseconds over ``runs`` timed calls."""

    runs: int
    warmup: int
    batch: int
    min_ms: float
    median_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    throughput_per_s: float  # items (batch elements) per second at the median latency

    @classmethod
    def from_samples(cls, samples_s: list[float], warmup: int = 0, batch: int = 1) -> LatencyStats:
        """Summarise per-call times given in seconds."""
        if not samples_s:
            raise ConfigError("no latency samples: runs must be >= 1")
        ms = np.asarray(samples_s, dtype=np.float64) * 1e3
        lo, hi = float(ms.min()), float(ms.max())
        # one call, then a running max and clipping: guards the ordering against rounding
        q = np.clip(np.maximum.accumulate(np.percentile(ms, [50, 90, 99])), lo, hi)
        median = float(q[0])
        return cls(
            runs=len(ms),
            warmup=warmup,
            batch=batch,
            min_ms=lo,
            median_ms=median,
            p90_ms=float(q[1]),
            p99_ms=float(q[2]),
            max_ms=hi,
            mean_ms=min(max(float(ms.mean()), lo), hi),
            throughput_per_s=batch / (median / 1e3) if median > 0 else float("inf"),
        )

    def to_dict(self) -> dict:
        return asdict(self)


def _check_counts(runs: int, warmup: int) -> None:
    if runs < 1:
        raise ConfigError(f"runs must be >= 1, got {runs}")
    if warmup < 0:
        raise ConfigError(f"warm-up runs must be >= 0, got {warmup}")


def measure_latency(
    fn: Callable[[], object], runs: int = 50, warmup: int = 5, batch: int = 1
) -> LatencyStats:
    """Call ``fn()`` ``warmup`` times untimed, then ``runs`` times timed; return the statistics."""
    _check_counts(runs, warmup)
    for _ in range(warmup):
        fn()
    samples: list[float] = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return LatencyStats.from_samples(samples, warmup=warmup, batch=batch)


def interleaved(
    candidates: Mapping[str, Callable[[], object]],
    runs: int = 50,
    warmup: int = 5,
    batch: int = 1,
    on_round: Callable[[int], None] | None = None,
) -> dict[str, LatencyStats]:
    """Time several candidates round-robin; return their statistics keyed like ``candidates``.

    Each round calls every candidate once, starting with a different one each round. Warm-up
    rounds are untimed. ``on_round(i)`` is called after each timed round (for progress bars).
    """
    _check_counts(runs, warmup)
    if not candidates:
        raise ConfigError("interleaved() needs at least one candidate")
    names = list(candidates)
    for _ in range(warmup):
        for n in names:
            candidates[n]()
    samples: dict[str, list[float]] = {n: [] for n in names}
    k = len(names)
    for r in range(runs):
        for j in range(k):
            n = names[(r + j) % k]
            f = candidates[n]
            t0 = time.perf_counter()
            f()
            samples[n].append(time.perf_counter() - t0)
        if on_round is not None:
            on_round(r)
    return {n: LatencyStats.from_samples(samples[n], warmup=warmup, batch=batch) for n in names}


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far, in bytes (``getrusage`` high-water mark)."""
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(ru if sys.platform == "darwin" else ru * 1024)


def current_rss_bytes() -> int:
    """Current resident set size of this process, in bytes."""
    import psutil

    return int(psutil.Process().memory_info().rss)


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    """Return ``(fn(), seconds)``."""
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0
