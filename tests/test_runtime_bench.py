"""Latency statistics and the interleaved runner."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgecnn.errors import ConfigError
from edgecnn.runtime.bench import (
    LatencyStats,
    interleaved,
    measure_latency,
    peak_rss_bytes,
)


@given(st.lists(st.floats(min_value=1e-7, max_value=10.0), min_size=1, max_size=200))
def test_stats_are_ordered(samples):
    s = LatencyStats.from_samples(samples, batch=4)
    assert s.min_ms <= s.median_ms <= s.p90_ms <= s.p99_ms <= s.max_ms
    assert s.min_ms <= s.mean_ms <= s.max_ms
    assert s.runs == len(samples)
    assert s.throughput_per_s == pytest.approx(4 / (s.median_ms / 1e3))


def test_stats_closed_form():
    s = LatencyStats.from_samples([0.001 * i for i in range(1, 102)])  # 1..101 ms
    assert s.min_ms == pytest.approx(1.0)
    assert s.median_ms == pytest.approx(51.0)
    assert s.p90_ms == pytest.approx(91.0)
    assert s.p99_ms == pytest.approx(100.0)
    assert s.max_ms == pytest.approx(101.0)


def test_measure_latency_counts_calls():
    calls = itertools.count()
    s = measure_latency(lambda: next(calls), runs=7, warmup=3)
    assert next(calls) == 10
    assert s.runs == 7 and s.warmup == 3


def test_interleaved_round_robin_with_rotation():
    log: list[str] = []
    cands = {n: (lambda n=n: log.append(n)) for n in ("a", "b", "c")}
    res = interleaved(cands, runs=3, warmup=1)
    assert set(res) == {"a", "b", "c"}
    assert all(r.runs == 3 for r in res.values())
    # warm-up round, then rotated rounds: every candidate runs once per round
    assert log == ["a", "b", "c", "a", "b", "c", "b", "c", "a", "c", "a", "b"]


def test_bad_counts_rejected():
    with pytest.raises(ConfigError):
        measure_latency(lambda: None, runs=0)
    with pytest.raises(ConfigError):
        interleaved({"a": lambda: None}, runs=2, warmup=-1)
    with pytest.raises(ConfigError):
        interleaved({}, runs=2)


def test_peak_rss_grows_with_allocation():
    before = peak_rss_bytes()
    block = bytearray(64 * 1024 * 1024)
    block[::4096] = b"x" * len(block[::4096])
    after = peak_rss_bytes()
    assert after >= before
    assert after >= 64 * 1024 * 1024
