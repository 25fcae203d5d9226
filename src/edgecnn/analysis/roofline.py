"""Roofline latency bound of a layer on a device: max(compute time, memory time)."""

from __future__ import annotations

from dataclasses import dataclass

from edgecnn.analysis.devices import Device


@dataclass(frozen=True)
class RooflinePoint:
    """Lower-bound latency of one piece of work on a device."""

    compute_s: float
    memory_s: float

    @property
    def latency_s(self) -> float:
        return max(self.compute_s, self.memory_s)

    @property
    def bound(self) -> str:
        """``"compute"`` or ``"memory"``: which roof limits this work."""
        return "compute" if self.compute_s >= self.memory_s else "memory"


def roofline(flops: int, dram_bytes: int, device: Device, precision: str) -> RooflinePoint:
    """Time to do ``flops`` at the device's peak and to move ``dram_bytes`` at its bandwidth."""
    peak = device.peak_ops(precision)
    return RooflinePoint(flops / peak, dram_bytes / device.dram_bytes_per_s)


def ridge_point(device: Device, precision: str) -> float:
    """Arithmetic intensity (FLOPs per DRAM byte) where the two roofs meet."""
    return device.peak_ops(precision) / device.dram_bytes_per_s
