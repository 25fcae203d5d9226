"""MACs, parameters and latency of compression stages, through :mod:`edgecnn.analysis` only.

MACs and params come from ``edgecnn.analysis.profile`` on the graph of an ONNX file
(:func:`onnx_costs`, through ``graph.from_onnx``: the frontend counts weights behind
``DequantizeLinear`` and ``Cast``, so FP32, FP16 and QDQ INT8 versions of one network count
the same) or of a PyTorch module (:func:`module_costs`, through ``graph.from_torch``). Analyser
failures propagate; operators the analyser has no cost for are listed in ``Costs.unknown_ops``
and warned about, never counted silently as 0 MACs.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch import nn

from edgecnn.analysis import profile
from edgecnn.graph.ir import Graph


@dataclass(frozen=True)
class Costs:
    """MACs of one inference, parameters, and the ops without a cost (``{layer, op}``)."""

    macs: int
    params: int
    unknown_ops: tuple[dict[str, str], ...] = field(default=())


def graph_costs(graph: Graph) -> Costs:
    """:class:`Costs` of ``graph`` (``analysis.profile`` totals); warns about unknown ops."""
    t = profile(graph).totals
    unknown = tuple(dict(u) for u in t.unknown_ops)
    if unknown:
        names = ", ".join(f"{u['layer']} ({u['op']})" for u in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        warnings.warn(
            f"{graph.name}: no MAC count for {len(unknown)} op(s): {names}{more}; "
            "their MACs are missing from the totals",
            stacklevel=2,
        )
    return Costs(int(t.macs), int(t.params), unknown)


def onnx_costs(path: str | os.PathLike[str]) -> Costs:
    """:class:`Costs` of the ONNX file ``path`` at its static input shape."""
    from edgecnn.graph.from_onnx import graph_from_onnx

    return graph_costs(graph_from_onnx(str(path)))


def module_costs(module: nn.Module, input_shape: tuple[int, ...]) -> Costs:
    """:class:`Costs` of ``module`` on an input of ``input_shape`` (recorded on meta tensors)."""
    from edgecnn.graph.from_torch import graph_from_module

    return graph_costs(graph_from_module(module, tuple(input_shape)))


def latency_ms(path: Path, input_shape: tuple[int, ...], runs: int = 100) -> float:
    """Median ONNX Runtime latency in ms (1 thread, batch of ``input_shape``, 10 warm-up runs)."""
    from edgecnn.runtime.bench import measure_latency
    from edgecnn.runtime.session import make_session

    sess = make_session(path, threads=1)
    x = np.random.default_rng(0).standard_normal(input_shape).astype(np.float32)
    feed = {sess.get_inputs()[0].name: x}
    return measure_latency(lambda: sess.run(None, feed), runs=runs, warmup=10).median_ms
