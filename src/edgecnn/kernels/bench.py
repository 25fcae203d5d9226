"""Timing of every algorithm against ``torch.nn.functional.conv2d`` (oneDNN) on representative
layers, single-threaded and interleaved.

Each repeat runs every candidate once, in a rotating order, so slow drifts of a shared machine
hit all candidates alike; the reported time is the median over repeats (seconds). GFLOP/s are
"effective": ``2 * MACs`` of the direct convolution divided by the time, for every algorithm,
so they compare times, not arithmetic. ``ratio`` is time / oneDNN's time (lower is better).
Weight-side work is done once per layer, outside the timed region, as an inference runtime
would at load time: Winograd's filter transform, im2col's GEMM weight layout (groups = 1) and
FFT's filter spectra.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from edgecnn.errors import ConfigError
from edgecnn.hardware.tiling import ConvShape
from edgecnn.kernels.compare import conv_kwargs, parse_layer, random_operands
from edgecnn.kernels.conv import CONV_ALGOS, Algorithm, conv2d, winograd_m
from edgecnn.kernels.fft import fft_conv2d, filter_spectra
from edgecnn.kernels.im2col import Im2colConv
from edgecnn.kernels.winograd import WinogradConv
from edgecnn.schema import ResultKind

ONEDNN = "onednn"

#: Representative layers (batch 1; the benchmark sets the batch): name -> layer spec.
BENCH_LAYERS: dict[str, str] = {
    "r50-conv2-3x3": "56x56x64x64k3",
    "r50-conv3-3x3": "28x28x128x128k3",
    "r50-conv4-3x3": "14x14x256x256k3",
    "r50-conv5-3x3": "7x7x512x512k3",
    "r50-conv2-1x1": "56x56x64x256k1",
    "r50-conv3-1x1": "28x28x512x128k1",
    "r50-conv4-1x1": "14x14x1024x256k1",
    "r50-conv5-1x1": "7x7x2048x512k1",
    "mbv2-dw-112": "112x112x32x32k3g32",
    "mbv2-dw-56": "56x56x144x144k3g144",
    "mbv2-dw-14": "14x14x384x384k3g384",
    "mbv2-dw-7": "7x7x960x960k3g960",
    "r50-stem-7x7s2": "224x224x3x64k7s2p3",
}

#: Algorithms timed by default (``direct_loops`` is a pure-Python reference, ``auto`` a chooser).
BENCH_ALGORITHMS: tuple[Algorithm, ...] = (
    Algorithm.DIRECT,
    Algorithm.IM2COL,
    Algorithm.WINOGRAD_F2,
    Algorithm.WINOGRAD_F4,
    Algorithm.WINOGRAD_F6,
    Algorithm.FFT,
)


@dataclass(frozen=True)
class BenchRow:
    """One (layer, batch, algorithm) timing. Times in seconds; ``None`` when not applicable."""

    layer: str
    spec: str
    batch: int
    algorithm: str
    time_s: float | None
    gflops: float | None
    ratio_to_onednn: float | None
    note: str | None = None

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return {
            "layer": self.layer,
            "spec": self.spec,
            "batch": self.batch,
            "algorithm": self.algorithm,
            "time_s": self.time_s,
            "gflops": self.gflops,
            "ratio_to_onednn": self.ratio_to_onednn,
            "note": self.note,
        }


@dataclass(frozen=True)
class BenchResult:
    """All rows of a benchmark run and its settings."""

    threads: int
    repeats: int
    rows: list[BenchRow]

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return {
            "kind": ResultKind.KERNELS_BENCH.value,
            "threads": self.threads,
            "repeats": self.repeats,
            "rows": [r.to_dict() for r in self.rows],
        }


def with_batch(s: ConvShape, batch: int) -> ConvShape:
    """``s`` with another batch size."""
    fields = {k: getattr(s, k) for k in s.__dataclass_fields__}
    return ConvShape(**{**fields, "batch": batch})


def _candidates(
    s: ConvShape, algorithms: tuple[Algorithm, ...], x: torch.Tensor, w: torch.Tensor
) -> tuple[dict[str, Callable[[], torch.Tensor]], dict[str, str]]:
    kw = conv_kwargs(s)
    fns: dict[str, Callable[[], torch.Tensor]] = {}
    skipped: dict[str, str] = {}
    pt, pb, pl, pr = kw["padding"]
    if pt == pb and pl == pr:
        pad = (pt, pl)

        def onednn() -> torch.Tensor:
            return F.conv2d(x, w, None, kw["stride"], pad, kw["dilation"], s.groups)
    else:
        padding = (pl, pr, pt, pb)

        def onednn() -> torch.Tensor:
            xp = F.pad(x, padding)
            return F.conv2d(xp, w, None, kw["stride"], 0, kw["dilation"], s.groups)

    fns[ONEDNN] = onednn
    for algo in algorithms:
        reason = CONV_ALGOS[algo].unsupported(s)
        if reason:
            skipped[algo.value] = reason
            continue
        m = winograd_m(algo)
        if m is not None:
            prepared = WinogradConv.prepare(w, m, groups=s.groups)
            fns[algo.value] = (
                lambda p=prepared: p(x, None, kw["padding"], kw["dilation"])  # type: ignore[misc]
            )
        elif algo is Algorithm.IM2COL and s.groups == 1:
            im2 = Im2colConv.prepare(w)
            fns[algo.value] = lambda p=im2: p(x, s)  # type: ignore[misc]
        elif algo is Algorithm.FFT:
            spectra = filter_spectra(w, s)
            fns[algo.value] = lambda sp=spectra: fft_conv2d(x, w, None, s, None, None, sp)  # type: ignore[misc]
        else:
            fns[algo.value] = lambda a=algo: conv2d(x, w, algorithm=a, **kw)  # type: ignore[misc]
    return fns, skipped


def time_interleaved(
    fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1
) -> dict[str, float]:
    """Median wall time in seconds of each callable, run in rotating interleaved order."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times: dict[str, list[float]] = {n: [] for n in names}
    for rep in range(repeats):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for name in order:
            t0 = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t0)
    return {n: statistics.median(v) for n, v in times.items()}


def bench_layers(
    layers: dict[str, str] | None = None,
    batches: tuple[int, ...] = (1, 8),
    algorithms: tuple[Algorithm, ...] = BENCH_ALGORITHMS,
    repeats: int = 5,
    threads: int = 1,
    progress: Callable[[str], None] | None = None,
) -> BenchResult:
    """Time ``algorithms`` and oneDNN on ``layers`` (name -> spec) at each batch size.

    Sets ``torch.set_num_threads(threads)`` for the run and restores the previous value.
    Also checks every algorithm's output against oneDNN's (raises on a mismatch larger than
    1e-3 of the output range, which would make the timing meaningless).
    """
    if repeats < 1 or threads < 1:
        raise ConfigError(f"repeats and threads must be >= 1, got {repeats} and {threads}")
    layers = layers if layers is not None else BENCH_LAYERS
    prev = torch.get_num_threads()
    torch.set_num_threads(threads)
    rows: list[BenchRow] = []
    try:
        for name, spec in layers.items():
            for batch in batches:
                if progress:
                    progress(f"{name} b{batch}")
                s = with_batch(parse_layer(spec), batch)
                x, w = random_operands(s)
                fns, skipped = _candidates(s, algorithms, x, w)
                with torch.no_grad():
                    ref = fns[ONEDNN]()
                    rng = float(ref.max() - ref.min()) or 1.0
                    for algo_name, fn in fns.items():
                        err = float((fn() - ref).abs().max()) / rng
                        if err > 1e-3:
                            raise AssertionError(
                                f"{algo_name} disagrees with oneDNN on {spec}: {err:.2e}"
                            )
                    med = time_interleaved(fns, repeats)
                flops = 2 * s.macs
                base = med[ONEDNN]
                for algo_name, t in med.items():
                    rows.append(
                        BenchRow(name, spec, batch, algo_name, t, flops / t / 1e9, t / base)
                    )
                for algo_name, reason in skipped.items():
                    rows.append(BenchRow(name, spec, batch, algo_name, None, None, None, reason))
    finally:
        torch.set_num_threads(prev)
    return BenchResult(threads, repeats, rows)
