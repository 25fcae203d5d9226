"""The measurement environment: versions, CPU, threads (recorded beside every timing)."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from edgecnn.analysis.devices import cpu_model
from edgecnn.schema import ResultKind


def cpu_flags() -> list[str]:
    """The SIMD flags relevant to int8/fp32 kernels that the CPU reports (Linux)."""
    wanted = {
        "avx2",
        "fma",
        "avx512f",
        "avx512_vnni",
        "avx_vnni",
        "avx512_bf16",
        "amx_int8",
        "neon",
        "asimd",
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("flags", "features")):
                return sorted(wanted & set(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return []


def environment_info(threads: int | None = None) -> dict:
    """A JSON-ready description of the machine and library versions (``kind: environment``)."""
    import numpy
    import onnx
    import onnxruntime
    import torch

    from edgecnn import __version__

    return {
        "kind": ResultKind.ENVIRONMENT.value,
        "edgecnn": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "threads": threads,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "onnxruntime": onnxruntime.__version__,
        "onnx": onnx.__version__,
        "numpy": numpy.__version__,
    }
