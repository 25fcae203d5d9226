"""Edge device profiles for roofline estimates: a sourced catalog plus the measured host.

``devices.toml`` (beside this module) lists each device's peak operations per second by precision
(one MAC = 2 operations), DRAM bandwidth in bytes/s and on-chip memory in bytes, with the
datasheet source of every figure. ``host`` is measured on the spot: a short fp32/int8 GEMM probe
and a large-copy memory-bandwidth probe (about 0.5 s, once per process).
"""

from __future__ import annotations

import functools
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgecnn.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PRECISIONS = ("fp32", "fp16", "int8")
CATALOG_PATH = Path(__file__).with_name("devices.toml")


@dataclass(frozen=True)
class Device:
    """A device profile. ``peak_ops`` maps precision -> operations/s (1 MAC = 2 ops)."""

    name: str
    description: str
    peak_ops_per_s: dict[str, float]
    dram_bytes_per_s: float
    onchip_bytes: int | None = None
    sources: dict[str, str] = field(default_factory=dict)

    def peak_ops(self, precision: str) -> float:
        if precision not in self.peak_ops_per_s:
            supported = ", ".join(self.peak_ops_per_s) or "none"
            raise ConfigError(
                f"device '{self.name}' has no {precision} peak (it supports: {supported}); "
                "choose one of those with --precision"
            )
        return self.peak_ops_per_s[precision]

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "peak_ops_per_s": dict(self.peak_ops_per_s),
            "dram_bytes_per_s": self.dram_bytes_per_s,
            "onchip_bytes": self.onchip_bytes,
            "sources": dict(self.sources),
        }


@functools.lru_cache(maxsize=1)
def load_catalog(path: str | None = None) -> dict[str, Device]:
    """The device catalog (``devices.toml``), keyed by name."""
    raw = tomllib.loads((Path(path) if path else CATALOG_PATH).read_text())
    out: dict[str, Device] = {}
    for name, entry in raw.items():
        peaks = {p: float(entry[f"peak_ops_{p}"]) for p in PRECISIONS if f"peak_ops_{p}" in entry}
        onchip = entry.get("onchip_bytes")
        out[name] = Device(
            name=name,
            description=entry["description"],
            peak_ops_per_s=peaks,
            dram_bytes_per_s=float(entry["dram_bytes_per_s"]),
            onchip_bytes=int(onchip) if onchip is not None else None,
            sources=dict(entry.get("sources", {})),
        )
    return out


def device_names() -> list[str]:
    return ["host", *load_catalog()]


def get_device(name: str) -> Device:
    """A catalog device by name, or ``host`` (measured now)."""
    if name == "host":
        return probe_host()
    catalog = load_catalog()
    if name not in catalog:
        raise ConfigError(
            f"unknown device '{name}': choose one of {', '.join(device_names())} (see 'edgecnn devices')"
        )
    return catalog[name]


@functools.lru_cache(maxsize=1)
def probe_host() -> Device:
    """Measure this machine: GEMM throughput (fp32, int8) and memory-copy bandwidth."""
    import torch

    threads = torch.get_num_threads()
    fp32 = _gemm_rate(torch.float32)
    peaks = {"fp32": fp32, "fp16": fp32}
    try:
        peaks["int8"] = _gemm_rate(torch.int8)
    except RuntimeError:
        peaks["int8"] = fp32
    bw = _copy_bandwidth()
    return Device(
        name="host",
        description=f"this machine, measured ({threads} threads)",
        peak_ops_per_s=peaks,
        dram_bytes_per_s=bw,
        onchip_bytes=None,
        sources={
            "peak_ops_fp32": "measured: 512x512x512 fp32 torch.mm, best of 5",
            "peak_ops_fp16": "set to the fp32 figure (CPU fp16 GEMM is emulated on most hosts)",
            "peak_ops_int8": "measured: 512x512x512 torch._int_mm, best of 5",
            "dram_bytes_per_s": "measured: 64 MiB tensor copy (read + write bytes), best of 5",
        },
    )


def _gemm_rate(dtype) -> float:
    import torch

    n = 512
    if dtype == torch.int8:
        a = torch.randint(-8, 8, (n, n), dtype=torch.int8)
        b = torch.randint(-8, 8, (n, n), dtype=torch.int8)
        op = torch._int_mm
    else:
        a = torch.randn(n, n, dtype=dtype)
        b = torch.randn(n, n, dtype=dtype)
        op = torch.mm
    op(a, b)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        op(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best


def _copy_bandwidth() -> float:
    import torch

    src = torch.ones(16 * 1024 * 1024, dtype=torch.float32)
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * src.numel() * 4 / best
