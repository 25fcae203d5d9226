"""Edge device profiles for roofline estimates: a sourced catalog plus the measured host.

``devices.toml`` (beside this module) lists each device's peak operations per second by precision
(one MAC = 2 operations), DRAM bandwidth in bytes/s and on-chip memory in bytes, with the
datasheet source of every figure. ``host`` is measured (:func:`probe_host`): a single-thread
fp32/int8 GEMM probe scaled by the thread count, and a large-copy memory-bandwidth probe, cached
in ``~/.cache/edgecnn/host-probe.json`` (``$XDG_CACHE_HOME`` honoured).
"""

from __future__ import annotations

import functools
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field, replace
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
    memory_bytes: int | None = None  # RAM that weights and feature maps share (None: unknown)
    cores: int | None = None  # CPU cores (catalog CPUs only; the CPU latency model's threads)
    sustained_dram_bytes_per_s: float | None = None  # measured (STREAM-like) DRAM bandwidth
    cpu_model: dict[str, float] = field(default_factory=dict)
    """Fitted parameters of the CPU latency model (:mod:`edgecnn.analysis.cpu_latency`), as
    ``edgecnn validate`` fits them on the catalog's stated calibration references; empty: none."""

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
            "memory_bytes": self.memory_bytes,
            "cores": self.cores,
            "sustained_dram_bytes_per_s": self.sustained_dram_bytes_per_s,
            "cpu_model": dict(self.cpu_model),
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
        memory = entry.get("memory_bytes")
        out[name] = Device(
            name=name,
            description=entry["description"],
            peak_ops_per_s=peaks,
            dram_bytes_per_s=float(entry["dram_bytes_per_s"]),
            onchip_bytes=int(onchip) if onchip is not None else None,
            sources=dict(entry.get("sources", {})),
            memory_bytes=int(memory) if memory is not None else None,
            cores=int(entry["cores"]) if "cores" in entry else None,
            sustained_dram_bytes_per_s=(
                float(entry["sustained_dram_bytes_per_s"])
                if "sustained_dram_bytes_per_s" in entry
                else None
            ),
            cpu_model={k: float(v) for k, v in entry.get("cpu_model", {}).items()},
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


PROBE_MIN_SECONDS = 0.2
"""Each GEMM probe repeats until its best-of-N runs span at least this long in total."""
PROBE_REPEATS = 7


def cache_dir() -> Path:
    """The user cache directory of edgecnn: ``$XDG_CACHE_HOME/edgecnn`` or ``~/.cache/edgecnn``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "edgecnn"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else ``platform.processor()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _probe_key(threads: int) -> str:
    import torch

    return f"{cpu_model()}|threads={threads}|torch={torch.__version__}|probe=2"


def probe_host(refresh: bool = False) -> Device:
    """This machine: GEMM throughput (fp32, int8) and memory-copy bandwidth.

    The GEMM rate is measured on ONE thread (a 512^3 product repeated, best of
    :data:`PROBE_REPEATS` runs, at least :data:`PROBE_MIN_SECONDS` of runs in total) and scaled
    by the thread count torch uses (``peak = one-thread rate x threads``: the roofline's peak,
    an upper bound on a shared machine; one thread is far steadier under load than all of
    them). The result is cached in ``cache_dir() / "host-probe.json"`` keyed by CPU model, thread
    count and torch version; ``refresh=True`` measures again and rewrites the entry.
    """
    import torch

    threads = torch.get_num_threads()
    key = _probe_key(threads)
    path = cache_dir() / "host-probe.json"
    cache: dict = {}
    if path.is_file():
        try:
            cache = json.loads(path.read_text())
        except (OSError, ValueError):
            cache = {}
    if not refresh and isinstance(cache.get(key), dict):
        try:
            return _with_host_memory(_device_from_dict(cache[key]))
        except (KeyError, TypeError, ValueError):
            pass
    dev = _with_host_memory(_measure_host(threads))
    cache[key] = dev.to_dict()
    try:
        from edgecnn.io import atomic_write_text

        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(cache, indent=1))
    except OSError:
        pass  # a read-only home: the measurement is still returned
    return dev


def host_memory_bytes() -> int:
    """Physical memory of this machine in bytes, or the cgroup (container) limit if lower."""
    import psutil

    total = int(psutil.virtual_memory().total)
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            raw = Path(path).read_text().strip()
        except OSError:
            continue
        if raw.isdigit():
            total = min(total, int(raw))
    return total


def _with_host_memory(dev: Device) -> Device:
    """The host profile with its memory read now (capacity is read, never cached)."""
    return replace(
        dev,
        memory_bytes=host_memory_bytes(),
        sources={
            **dev.sources,
            "memory_bytes": "read: physical memory (psutil), or the cgroup limit if lower",
        },
    )


def _device_from_dict(d: dict) -> Device:
    return Device(
        name=d["name"],
        description=d["description"],
        peak_ops_per_s={k: float(v) for k, v in d["peak_ops_per_s"].items()},
        dram_bytes_per_s=float(d["dram_bytes_per_s"]),
        onchip_bytes=d.get("onchip_bytes"),
        sources=dict(d.get("sources", {})),
    )


def _measure_host(threads: int) -> Device:
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fp32 = _gemm_rate(torch.float32)
        try:
            int8 = _gemm_rate(torch.int8)
        except RuntimeError:
            int8 = fp32
    finally:
        torch.set_num_threads(previous)
    peaks = {"fp32": fp32 * threads, "fp16": fp32 * threads, "int8": int8 * threads}
    bw = _copy_bandwidth()
    how = (
        f"measured: 512x512x512 {{}} on 1 thread, best of {PROBE_REPEATS} runs of >= "
        f"{PROBE_MIN_SECONDS / PROBE_REPEATS:.3f} s, x {threads} threads"
    )
    return Device(
        name="host",
        description=f"this machine, measured (1 thread x {threads} threads)",
        peak_ops_per_s=peaks,
        dram_bytes_per_s=bw,
        onchip_bytes=None,
        sources={
            "peak_ops_fp32": how.format("fp32 torch.mm"),
            "peak_ops_fp16": "set to the fp32 figure (CPU fp16 GEMM is emulated on most hosts)",
            "peak_ops_int8": how.format("int8 GEMM (faster of torch._int_mm, quantized.linear)"),
            "dram_bytes_per_s": "measured: 64 MiB tensor copy (read + write bytes), best of 5",
        },
    )


def _gemm_rate(dtype) -> float:
    """Best-of-N operations/s of a 512^3 GEMM in ``dtype`` on the current thread count.

    int8: the faster of ``torch._int_mm`` and the quantized engine's ``linear`` (FBGEMM/x86 or
    QNNPACK: the int8 GEMM CPU runtimes use; ``_int_mm`` has no fast CPU kernel on some hosts,
    e.g. 1.3 GOP/s against 96 GOP/s for FBGEMM on an AMD EPYC core)."""
    import torch

    n = 512
    if dtype == torch.int8:
        a = torch.randint(-8, 8, (n, n), dtype=torch.int8)
        b = torch.randint(-8, 8, (n, n), dtype=torch.int8)
        rates = [_time_gemm(lambda: torch._int_mm(a, b), n)]
        quantized = _quantized_linear(n)
        if quantized is not None:
            rates.append(_time_gemm(quantized, n))
        return max(rates)
    a = torch.randn(n, n, dtype=dtype)
    b = torch.randn(n, n, dtype=dtype)
    return _time_gemm(lambda: torch.mm(a, b), n)


def _quantized_linear(n: int):
    """A ``quantized.linear`` call on ``n x n`` int8 operands, or None without an engine."""
    import warnings

    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # quantized tensor creation is deprecated in torch
            w = torch.quantize_per_tensor(torch.randn(n, n), 0.05, 0, torch.qint8)
            packed = torch.ops.quantized.linear_prepack(w, None)
            x = torch.quantize_per_tensor(torch.randn(n, n), 0.05, 128, torch.quint8)
            torch.ops.quantized.linear(x, packed, 0.1, 128)
    except (RuntimeError, AttributeError):
        return None
    return lambda: torch.ops.quantized.linear(x, packed, 0.1, 128)


def _time_gemm(op, n: int) -> float:
    op()
    t0 = time.perf_counter()
    op()
    once = max(time.perf_counter() - t0, 1e-6)
    inner = max(1, math.ceil(PROBE_MIN_SECONDS / PROBE_REPEATS / once))
    best = float("inf")
    for _ in range(PROBE_REPEATS):
        t0 = time.perf_counter()
        for _ in range(inner):
            op()
        best = min(best, (time.perf_counter() - t0) / inner)
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
