"""The ``bench`` command's API: ONNX Runtime latency, optionally PyTorch eager or a baseline ONNX.

Two entry points, both returning a :class:`BenchResult` (``kind: "bench"``):

* :func:`bench_onnx` — an ``.onnx`` file in ORT; with ``baseline`` (e.g. the fp32 model of an
  int8 one) both run interleaved in one loop and ``speed_ratio_vs_baseline`` is
  ``baseline median / model median`` (> 1: the model is faster than its baseline).
* :func:`bench_source` — a PyTorch source (torchvision/edge name, checkpoint, module): exported
  to a temporary ONNX file (checked against PyTorch), then ORT and PyTorch eager run interleaved;
  ``speed_ratio_ort_vs_torch`` is ``torch median / ORT median``.

Units: latencies in milliseconds, ``load_time_s`` (ORT session creation) and ``export_time_s`` in
seconds, memory in bytes. ``peak_rss_bytes`` is the high-water mark of the whole process (Python,
PyTorch and ORT together), read after the timed runs.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import onnx
import torch

from edgecnn.errors import ModelLoadError, ShapeError
from edgecnn.runtime.bench import (
    LatencyStats,
    current_rss_bytes,
    interleaved,
    peak_rss_bytes,
    timed,
)
from edgecnn.runtime.environment import environment_info
from edgecnn.runtime.memory import check_model_memory, onnx_memory_bytes, require_memory
from edgecnn.runtime.session import input_feeds, make_session
from edgecnn.schema import ResultKind

INT8_OPS = frozenset(
    {
        "QuantizeLinear",
        "DequantizeLinear",
        "QLinearConv",
        "ConvInteger",
        "MatMulInteger",
        "QLinearMatMul",
    }
)


@dataclass
class BenchResult:
    """Measured latencies of one model (and its comparison candidates) on this machine."""

    model: str
    source: str  # "onnx" or "pytorch"
    precision: str  # "fp32", "fp16" or "int8" (detected from the ONNX graph)
    input_shape: list[int]
    batch: int
    threads: int
    runs: int
    warmup: int
    load_time_s: float
    peak_rss_bytes: int
    rss_after_load_bytes: int
    latency: dict[str, LatencyStats]  # "ort", and "torch" or "baseline" when measured
    onnx_path: str | None = None
    onnx_size_bytes: int | None = None
    export_time_s: float | None = None
    baseline: str | None = None
    baseline_precision: str | None = None
    speed_ratio_vs_baseline: float | None = None
    speed_ratio_ort_vs_torch: float | None = None
    environment: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = {"kind": ResultKind.BENCH.value}
        for k, v in self.__dict__.items():
            d[k] = {n: s.to_dict() for n, s in v.items()} if k == "latency" else v
        return d


def onnx_precision(model: onnx.ModelProto) -> str:
    """``int8`` if the graph holds quantization ops, ``fp16`` if float16 weights, else ``fp32``."""
    ops = {n.op_type for n in model.graph.node}
    if ops & INT8_OPS:
        return "int8"
    if any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer):
        return "fp16"
    return "fp32"


def _load_proto(path: Path) -> onnx.ModelProto:
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise ModelLoadError(
            f"'{path}' is not a readable ONNX model ({type(e).__name__}); export it again with 'edgecnn export'"
        ) from None


def _ort_runner(path: Path, threads: int, batch: int | None, input_shape: Sequence[int] | None):
    sess, load_s = timed(lambda: make_session(path, threads=threads))
    first = sess.get_inputs()[0]
    fixed = first.shape[0] if first.shape and isinstance(first.shape[0], int) else None
    if batch is not None and fixed is not None and fixed != batch:
        raise ShapeError(
            f"'{path.name}' was exported with a fixed batch of {fixed}, not {batch}: "
            f"use --batch {fixed} or re-export with the batch you want"
        )
    feeds = input_feeds(sess, batch=batch, input_shape=input_shape)

    def run() -> object:
        return sess.run(None, feeds)

    run()  # surface shape errors before timing
    return sess, run, load_s, list(next(iter(feeds.values())).shape)


def _onnx_need(
    path: Path, batch: int | None, input_shape: Sequence[int] | None
) -> tuple[int, list[int]] | None:
    """Weights + peak activations of an ONNX model at the shape the run will feed
    (``input_shape`` or the declared one, dim 0 = ``batch``) and that shape; None when it
    cannot be estimated (missing or corrupt file, symbolic dims: the run reports those)."""
    if not path.is_file():
        return None
    shape = list(input_shape) if input_shape is not None else None
    if shape is None:
        try:
            proto = _load_proto(path)
        except ModelLoadError:
            return None
        inits = {i.name for i in proto.graph.initializer}
        first = next((i for i in proto.graph.input if i.name not in inits), None)
        if first is None:
            return None
        shape = [
            d.dim_value if d.HasField("dim_value") else 0 for d in first.type.tensor_type.shape.dim
        ]
        if shape and shape[0] <= 0:
            shape[0] = 1
    if batch is not None and shape:
        shape[0] = batch
    if any(d <= 0 for d in shape):
        return None
    need = onnx_memory_bytes(path, shape)
    return None if need is None else (need, shape)


def _check_onnx_memory(
    paths: list[Path], batch: int | None, input_shape: Sequence[int] | None
) -> None:
    """Refuse a benchmark whose models (loaded together) do not fit in the available memory."""
    needs = [n for n in (_onnx_need(p, batch, input_shape) for p in paths) if n is not None]
    if needs:
        require_memory(
            sum(n for n, _ in needs),
            f"benchmarking {' and '.join(p.name for p in paths)} at input "
            f"{'x'.join(map(str, needs[0][1]))}",
            "use a smaller --batch or --input-shape",
        )


def bench_onnx(
    path: str | os.PathLike[str],
    batch: int | None = None,
    threads: int = 1,
    runs: int = 50,
    warmup: int = 5,
    input_shape: Sequence[int] | None = None,
    baseline: str | os.PathLike[str] | None = None,
    on_round: Callable[[int], None] | None = None,
) -> BenchResult:
    """Benchmark an ONNX file in ORT, interleaved with ``baseline`` (another ONNX file) if given."""
    p = Path(path)
    _check_onnx_memory([p] + ([Path(baseline)] if baseline is not None else []), batch, input_shape)
    _, run, load_s, shape = _ort_runner(p, threads, batch, input_shape)
    precision = onnx_precision(_load_proto(p))
    rss_load = current_rss_bytes()
    cands: dict[str, Callable[[], object]] = {"ort": run}
    base_prec = None
    if baseline is not None:
        b = Path(baseline)
        _, brun, _, _ = _ort_runner(b, threads, batch, input_shape or shape)
        base_prec = onnx_precision(_load_proto(b))
        cands["baseline"] = brun
    bsz = shape[0] if shape else 1
    lat = interleaved(cands, runs=runs, warmup=warmup, batch=bsz, on_round=on_round)
    ratio = lat["baseline"].median_ms / lat["ort"].median_ms if baseline is not None else None
    return BenchResult(
        model=p.stem,
        source="onnx",
        precision=precision,
        input_shape=shape,
        batch=bsz,
        threads=threads,
        runs=runs,
        warmup=warmup,
        load_time_s=load_s,
        peak_rss_bytes=peak_rss_bytes(),
        rss_after_load_bytes=rss_load,
        latency=lat,
        onnx_path=str(p),
        onnx_size_bytes=p.stat().st_size,
        baseline=str(baseline) if baseline is not None else None,
        baseline_precision=base_prec,
        speed_ratio_vs_baseline=ratio,
        environment=environment_info(threads),
    )


def bench_source(
    source: object,
    batch: int | None = None,
    threads: int = 1,
    runs: int = 50,
    warmup: int = 5,
    input_shape: Sequence[int] | None = None,
    opset: int = 17,
    on_round: Callable[[int], None] | None = None,
) -> BenchResult:
    """Benchmark a PyTorch source: ORT (exported, checked) and PyTorch eager, interleaved."""
    from edgecnn.models.resolve import resolve_model
    from edgecnn.runtime.export import export_onnx

    rm = resolve_model(source, input_shape, batch=batch)  # type: ignore[arg-type]
    check_model_memory(
        rm.module, rm.input_shape, rm.name, "benchmarking", "use a smaller --batch or --input-shape"
    )
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with tempfile.TemporaryDirectory(prefix="edgecnn-bench-") as d:
            onnx_path = Path(d) / f"{rm.name}.onnx"
            _, export_s = timed(
                lambda: export_onnx(rm.module, onnx_path, rm.input_shape, opset=opset)
            )
            _, run, load_s, shape = _ort_runner(
                onnx_path, threads, rm.input_shape[0], rm.input_shape
            )
            size = onnx_path.stat().st_size
            rss_load = current_rss_bytes()
            x = torch.randn(rm.input_shape)
            module = rm.module

            def torch_run() -> object:
                with torch.inference_mode():
                    return module(x)

            lat = interleaved(
                {"ort": run, "torch": torch_run},
                runs=runs,
                warmup=warmup,
                batch=shape[0],
                on_round=on_round,
            )
    finally:
        torch.set_num_threads(prev_threads)
    return BenchResult(
        model=rm.name,
        source="pytorch",
        precision="fp32",
        input_shape=list(rm.input_shape),
        batch=rm.input_shape[0],
        threads=threads,
        runs=runs,
        warmup=warmup,
        load_time_s=load_s,
        peak_rss_bytes=peak_rss_bytes(),
        rss_after_load_bytes=rss_load,
        latency=lat,
        onnx_size_bytes=size,
        export_time_s=export_s,
        speed_ratio_ort_vs_torch=lat["torch"].median_ms / lat["ort"].median_ms,
        environment=environment_info(threads),
    )
