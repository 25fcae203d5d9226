"""Predicted vs measured: the analyser's roofline latency on ``host`` beside ONNX Runtime.

For each model: the IR is profiled with :func:`edgecnn.analysis.profile` on the ``host`` device
profile (GEMM and copy-bandwidth probe run once, with ``threads`` torch threads, the same thread
count ORT uses), giving ``predicted_ms`` (the sum of the fused groups' roofline bounds); the model
is built with random weights at its own input size, exported (checked) and timed in ORT
(``measured_ms``, median). ``ratio`` = measured / predicted (> 1: slower than the roofline).

Summary statistics: Spearman's rank correlation between predicted and measured (average ranks
for ties) and the median ratio, overall and per precision. The point is an honest picture of how
far a roofline estimate is from a real runtime, not a fitted predictor. Beside it, when
``edgecnn calibrate`` has fitted this host's per-kernel ORT predictor for a precision,
``calibrated_ms`` is that predictor's latency (:mod:`edgecnn.analysis.latency_predictor`).
"""

from __future__ import annotations

import statistics
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from edgecnn.errors import ConfigError, EdgecnnError
from edgecnn.models.zoo import ZOO_STUDY_MODELS
from edgecnn.schema import ResultKind

#: The study's zoo without its four heaviest members (VGG-16, Inception v3, ResNet-101/152),
#: so that measuring every model stays quick.
DEFAULT_MODELS = tuple(
    m for m in ZOO_STUDY_MODELS if m not in ("vgg16", "inception_v3", "resnet101", "resnet152")
)
PRECISIONS = ("fp32", "int8")


@dataclass
class PvmRow:
    """One model at one precision: predicted and measured latency (milliseconds)."""

    model: str
    precision: str
    input_shape: list[int]
    macs: int
    predicted_ms: float
    measured_ms: float
    measured_p90_ms: float
    ratio: float  # measured / predicted
    bound: str  # which roof dominates the prediction: "compute" or "memory" (by time share)
    calibrated_ms: float | None = None  # the calibrated per-kernel ORT predictor's latency
    calibrated_error_pct: float | None = None  # (calibrated - measured) / measured x 100


@dataclass
class PredictedVsMeasured:
    device: str
    threads: int
    runs: int
    rows: list[PvmRow]
    spearman: float
    median_ratio: float
    by_precision: dict[str, dict[str, float]] = field(default_factory=dict)
    host: dict = field(default_factory=dict)  # the probed peak ops and bandwidth
    skipped: list[dict[str, str]] = field(default_factory=list)
    environment: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"kind": ResultKind.PREDICTED_VS_MEASURED.value, **_finite(asdict(self))}


def _finite(obj):
    """``obj`` with every NaN (an undefined statistic, e.g. Spearman of one model) as None."""
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (Pearson correlation of average ranks); NaN if undefined."""
    if len(x) != len(y):
        raise ConfigError(f"spearman needs equal lengths, got {len(x)} and {len(y)}")
    if len(x) < 2:
        return float("nan")
    rx, ry = _ranks(np.asarray(x, float)), _ranks(np.asarray(y, float))
    sx, sy = rx.std(), ry.std()
    if sx == 0 or sy == 0:
        return float("nan")
    return float(((rx - rx.mean()) * (ry - ry.mean())).mean() / (sx * sy))


def _ranks(a: np.ndarray) -> np.ndarray:
    order = np.argsort(a, kind="mergesort")
    ranks = np.empty(len(a), float)
    ranks[order] = np.arange(1, len(a) + 1, dtype=float)
    for v in np.unique(a):  # average ranks over ties
        idx = a == v
        if idx.sum() > 1:
            ranks[idx] = ranks[idx].mean()
    return ranks


def _summary(rows: list[PvmRow]) -> tuple[float, float]:
    if not rows:
        return float("nan"), float("nan")
    rho = spearman([r.predicted_ms for r in rows], [r.measured_ms for r in rows])
    return rho, float(statistics.median(r.ratio for r in rows))


def predicted_vs_measured(
    models: Sequence[str] = DEFAULT_MODELS,
    precisions: Sequence[str] = ("fp32",),
    threads: int = 1,
    runs: int = 10,
    warmup: int = 2,
    quantize: Callable[[Path, Path, tuple[int, ...]], None] | None = None,
    on_model: Callable[[str], None] | None = None,
    calibrated: bool = True,
) -> PredictedVsMeasured:
    """Run the comparison (see the module docstring).

    With ``calibrated`` (and ``threads == 1``), each precision whose calibrated ORT predictor
    exists on this host (``edgecnn calibrate``) also gets ``calibrated_ms`` per row, and
    ``by_precision`` the share of models within +-10% and its Spearman correlation.

    ``quantize(fp32_onnx, int8_onnx, input_shape)`` produces the int8 model for ``int8`` rows;
    by default the compression package's static INT8 quantizer. Models it refuses are listed in
    ``skipped``.
    """
    from edgecnn.analysis import profile
    from edgecnn.analysis.devices import probe_host
    from edgecnn.models.resolve import load_graph, resolve_model
    from edgecnn.models.zoo import zoo_names
    from edgecnn.runtime.bench import measure_latency
    from edgecnn.runtime.environment import environment_info
    from edgecnn.runtime.export import export_onnx
    from edgecnn.runtime.session import input_feeds, make_session

    bad = [p for p in precisions if p not in PRECISIONS]
    if bad:
        raise ConfigError(f"unknown precision {bad[0]!r}: choose from {', '.join(PRECISIONS)}")
    if not models:
        raise ConfigError("no models given")
    _check_names(models)
    if "int8" in precisions and quantize is None:
        quantize = default_quantizer()
    prev = torch.get_num_threads()
    torch.set_num_threads(threads)
    rows: list[PvmRow] = []
    skipped: list[dict[str, str]] = []
    predictors = _calibrated_predictors(precisions) if calibrated and threads == 1 else {}
    try:
        host = probe_host()
        zoo = set(zoo_names())
        for name in models:
            rm = resolve_model(name)
            graph = load_graph(name if name in zoo else rm.module, input_shape=rm.input_shape)
            with tempfile.TemporaryDirectory(prefix="edgecnn-pvm-") as d:
                fp32 = export_onnx(rm.module, Path(d) / "fp32.onnx", rm.input_shape)
                # the calibrated predictor reads the graph ORT runs (the torch frontend's IR
                # has no permutes, slices or copying reshapes)
                ort_graph = load_graph(fp32) if predictors else None
                del rm.module
                for prec in precisions:
                    path = fp32
                    if prec == "int8":
                        assert quantize is not None
                        path = Path(d) / "int8.onnx"
                        try:
                            quantize(fp32, path, rm.input_shape)
                        except EdgecnnError as e:
                            skipped.append({"model": name, "precision": prec, "reason": str(e)})
                            continue
                    prof = profile(graph, precision=prec, device=host)
                    sess = make_session(path, threads=threads)
                    feeds = input_feeds(sess)
                    stats = measure_latency(
                        lambda s=sess, f=feeds: s.run(None, f), runs=runs, warmup=warmup
                    )
                    pred_ms = float(prof.totals.latency_s) * 1e3
                    cal_ms = cal_err = None
                    if prec in predictors:
                        from edgecnn.analysis.latency_predictor import predict_graph

                        cal_ms = predict_graph(predictors[prec], ort_graph).latency_ms
                        cal_err = (cal_ms - stats.median_ms) / stats.median_ms * 100.0
                    comp = sum(lay.latency_s or 0 for lay in prof.layers if lay.bound == "compute")
                    mem = sum(lay.latency_s or 0 for lay in prof.layers if lay.bound == "memory")
                    rows.append(
                        PvmRow(
                            model=name,
                            precision=prec,
                            input_shape=list(rm.input_shape),
                            macs=int(prof.totals.macs),
                            predicted_ms=pred_ms,
                            measured_ms=stats.median_ms,
                            measured_p90_ms=stats.p90_ms,
                            ratio=stats.median_ms / pred_ms if pred_ms > 0 else float("inf"),
                            bound="compute" if comp >= mem else "memory",
                            calibrated_ms=cal_ms,
                            calibrated_error_pct=cal_err,
                        )
                    )
            if on_model is not None:
                on_model(name)
    finally:
        torch.set_num_threads(prev)
    rho, med = _summary(rows)
    by_prec = {}
    for p in precisions:
        sub = [r for r in rows if r.precision == p]
        if sub:
            r_p, m_p = _summary(sub)
            by_prec[p] = {"models": len(sub), "spearman": r_p, "median_ratio": m_p}
            cal = [r for r in sub if r.calibrated_ms is not None]
            if cal:
                by_prec[p]["calibrated_spearman"] = spearman(
                    [r.calibrated_ms for r in cal], [r.measured_ms for r in cal]
                )
                by_prec[p]["calibrated_share_within_10pct"] = sum(
                    1 for r in cal if abs(r.calibrated_error_pct or 0.0) <= 10.0
                ) / len(cal)
    return PredictedVsMeasured(
        device="host",
        threads=threads,
        runs=runs,
        rows=rows,
        spearman=rho,
        median_ratio=med,
        by_precision=by_prec,
        host=host.to_dict(),
        skipped=skipped,
        environment=environment_info(threads),
    )


def _calibrated_predictors(precisions: Sequence[str]) -> dict:
    """The host's calibrated ORT predictors of ``precisions`` that exist (missing ones skipped)."""
    from edgecnn.analysis.latency_predictor import PredictorError, default_path, load_predictor

    out = {}
    for p in precisions:
        if default_path("ort", p).is_file():
            try:
                out[p] = load_predictor("ort", p)
            except PredictorError:
                continue
    return out


def _check_names(models: Sequence[str]) -> None:
    """Fail before any measurement when a name is neither an edge nor a torchvision model."""
    from edgecnn.models.edge import EDGE_MODELS
    from edgecnn.models.resolve import is_checkpoint_path
    from edgecnn.models.zoo import zoo_entry, zoo_names

    zoo = set(zoo_names())
    for name in models:
        text = str(name)
        if is_checkpoint_path(text) or ":" in text or text in EDGE_MODELS or text in zoo:
            continue
        zoo_entry(text)  # raises ModelLoadError with suggestions


def default_quantizer() -> Callable[[Path, Path, tuple[int, ...]], None]:
    """The compression package's static INT8 quantizer (U8S8 QDQ).

    Calibration uses 8 standard-normal inputs: the zoo models here have random weights, so only
    the speed of the quantized graph matters, not its accuracy.
    """
    from edgecnn.compress.quantize import QuantConfig, prepare_for_quantization, quantize_int8

    def run(src: Path, dst: Path, input_shape: tuple[int, ...]) -> None:
        import onnx

        rng = np.random.default_rng(0)
        calib = rng.standard_normal((8, *input_shape[1:])).astype(np.float32)
        # drop identities and unshare the exporter's deduplicated conv biases so ORT can fuse
        # every quantized conv, keeping its names (see prepare_for_quantization)
        compact = dst.with_name(dst.stem + "-fp32-compact.onnx")
        onnx.save(prepare_for_quantization(onnx.load(str(src))), str(compact))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_int8(compact, dst, calib, QuantConfig(calib_samples=8))

    return run
