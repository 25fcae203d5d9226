"""Memory checks before allocating: refuse work that cannot fit instead of being OOM-killed.

:func:`require_memory` compares an estimate in bytes with :func:`available_memory_bytes` (what
``psutil`` reports as available, capped by a cgroup memory limit when the process has one) and
raises :class:`~edgecnn.errors.ConfigError` naming both figures and the option to change.

:func:`model_memory_bytes` is the estimate for running a model in PyTorch and ONNX Runtime (export
check, benchmark): ``2 * (weight bytes + peak activation bytes)`` at fp32, from
:func:`edgecnn.analysis.profile` of the model's graph recorded on the meta device (no tensor is
allocated). The factor 2: PyTorch and the ORT session each hold the weights and, while they run,
a peak of live activations.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgecnn.errors import ConfigError

#: Copies of weights + peak activations that exporting or benchmarking holds (PyTorch + ORT).
RUNTIME_COPIES = 2

_CGROUP_FILES = (
    ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),  # cgroup v2
    (
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        "/sys/fs/cgroup/memory/memory.usage_in_bytes",
    ),  # cgroup v1
)


def _cgroup_headroom() -> int | None:
    for limit_file, usage_file in _CGROUP_FILES:
        try:
            limit = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 2**60:  # "max" or a huge v1 value: no limit
            return max(0, int(limit) - usage)
    return None


def available_memory_bytes() -> int:
    """Bytes this process can still allocate: ``psutil.virtual_memory().available``, or less
    under a cgroup memory limit."""
    import psutil

    avail = int(psutil.virtual_memory().available)
    headroom = _cgroup_headroom()
    return min(avail, headroom) if headroom is not None else avail


def _gib(n: int) -> str:
    return f"{n / 2**30:.3g} GiB"


def require_memory(needed_bytes: int, what: str, fix: str) -> None:
    """Raise ``ConfigError`` when ``needed_bytes`` exceeds the available memory.

    ``what`` says what needs it (``"exporting resnet18 at 64x3x224x224"``), ``fix`` which option
    to change (``"use a smaller --input-shape"``).
    """
    avail = available_memory_bytes()
    if needed_bytes > avail:
        raise ConfigError(
            f"{what} needs about {_gib(needed_bytes)} ({needed_bytes:,} bytes) of memory but "
            f"only {_gib(avail)} ({avail:,} bytes) is available: {fix}"
        )


def graph_memory_bytes(graph: Any, copies: int = RUNTIME_COPIES) -> int:
    """``copies * (weight bytes + peak activation bytes)`` of an IR graph at fp32."""
    from edgecnn.analysis import profile

    t = profile(graph).totals
    return copies * (t.weight_bytes + t.peak_activation_bytes)


def model_memory_bytes(module: Any, input_shape: Sequence[int], name: str | None = None) -> int:
    """Estimate for running ``module`` (real or meta weights) at ``input_shape`` in PyTorch and
    ONNX Runtime; nothing is allocated (the graph is recorded on the meta device)."""
    from edgecnn.graph.from_torch import graph_from_module
    from edgecnn.runtime.export import captured_output

    with captured_output():  # the recording runs forward(), which may print
        graph = graph_from_module(module, tuple(input_shape), name=name)
    return graph_memory_bytes(graph)


def onnx_memory_bytes(path: str | Path, input_shape: Sequence[int] | None) -> int | None:
    """Estimate for running the ONNX model at ``path`` in ORT with ``input_shape`` (None: its
    declared shape): weights + peak activations; None when the ONNX frontend cannot build its
    graph (the run itself then reports the problem)."""
    from edgecnn.errors import EdgecnnError
    from edgecnn.graph.from_onnx import graph_from_onnx

    try:
        graph = graph_from_onnx(Path(path), tuple(input_shape) if input_shape else None)
    except EdgecnnError:  # e.g. symbolic dims, opset < 11: ORT's own load and run report it
        return None
    return graph_memory_bytes(graph, copies=1)


def check_model_memory(
    module: Any, input_shape: Sequence[int], name: str, action: str, fix: str
) -> None:
    """:func:`require_memory` with :func:`model_memory_bytes` (``action``: ``"exporting"``)."""
    need = model_memory_bytes(module, input_shape, name)
    shape = "x".join(map(str, input_shape))
    require_memory(need, f"{action} {name} at input {shape}", fix)


__all__ = [
    "RUNTIME_COPIES",
    "available_memory_bytes",
    "check_model_memory",
    "graph_memory_bytes",
    "model_memory_bytes",
    "onnx_memory_bytes",
    "require_memory",
]
