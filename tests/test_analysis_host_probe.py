"""The host probe: one thread, scaled by threads, cached per CPU/threads/torch, refreshable."""

from __future__ import annotations

import json

import pytest

from edgecnn.analysis import devices


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setattr(devices, "cache_dir", lambda: tmp_path)
    calls = []

    def fake_measure(threads):
        calls.append(threads)
        return devices.Device(
            name="host",
            description="fake",
            peak_ops_per_s={"fp32": 1e9 * len(calls), "fp16": 1e9, "int8": 2e9},
            dram_bytes_per_s=1e10,
        )

    monkeypatch.setattr(devices, "_measure_host", fake_measure)
    return tmp_path, calls


def test_probe_is_cached_and_refreshed(cache):
    path, calls = cache
    first = devices.probe_host()
    again = devices.probe_host()
    assert len(calls) == 1 and again == first  # second call read the cache file
    data = json.loads((path / "host-probe.json").read_text())
    (key,) = data
    assert "threads=" in key and "torch=" in key
    fresh = devices.probe_host(refresh=True)
    assert len(calls) == 2 and fresh.peak_ops_per_s["fp32"] == 2e9
    assert devices.probe_host().peak_ops_per_s["fp32"] == 2e9  # the refreshed entry is kept


def test_cache_key_includes_threads(cache, monkeypatch):
    import torch

    _, calls = cache
    devices.probe_host()
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(max(1, before - 1) if before > 1 else 2)
        devices.probe_host()
    finally:
        torch.set_num_threads(before)
    assert len(calls) == 2


def test_corrupt_cache_is_remeasured(cache):
    path, calls = cache
    (path / "host-probe.json").write_text("{not json")
    devices.probe_host()
    assert len(calls) == 1
    assert json.loads((path / "host-probe.json").read_text())


def test_real_measurement_is_one_thread_times_threads(monkeypatch, tmp_path):
    import torch

    monkeypatch.setattr(devices, "cache_dir", lambda: tmp_path)
    monkeypatch.setattr(devices, "PROBE_MIN_SECONDS", 0.01)
    rates = []
    monkeypatch.setattr(
        devices, "_gemm_rate", lambda dtype: rates.append(torch.get_num_threads()) or 1e9
    )
    monkeypatch.setattr(devices, "_copy_bandwidth", lambda: 5e9)
    dev = devices.probe_host(refresh=True)
    assert rates and set(rates) == {1}  # measured on one thread
    assert dev.peak_ops_per_s["fp32"] == 1e9 * torch.get_num_threads()


def test_devices_refresh_host_flag(cache, capsys):
    from cli_helpers import run_cli

    _, calls = cache
    for args, measured in (
        (["devices", "--json"], 1),
        (["devices", "--json"], 1),
        (["devices", "--refresh-host", "--json"], 2),
    ):
        code, out, _ = run_cli(args, capsys)
        assert code == 0 and len(calls) == measured
        host = json.loads(out)["devices"][0]
        assert host["name"] == "host" and host["peak_ops_per_s"]["fp32"] == 1e9 * measured
