"""FP16 conversion and INT8 post-training quantization through ONNX Runtime, with a fusion check.

Default configuration (:class:`QuantConfig`): static QDQ, activations **uint8** asymmetric,
weights **int8** symmetric per output channel (U8S8), calibration by min/max on the calibration
split. On x86 with VNNI, ONNX Runtime fuses every ``DQ -> Conv -> Q`` of such a model into an
integer ``QLinearConv`` (including convs after residual ``Add``s, which become ``QLinearAdd``),
whereas ORT's documented default S8S8 leaves residual adds and the convs after them in float and
can be slower than FP32. :func:`int8_conv_report` checks this on the graph ORT actually runs
(``SessionOptions.optimized_model_filepath``) and :func:`quantize_int8` warns when not every
conv runs as an integer kernel.

Calibration methods: ``minmax``, ``percentile``, ``entropy`` (ORT's calibrators) and ``mse`` (our
own: for every activation tensor, the clipping range minimising the mean squared quantization
error on the calibration activations, searched over a grid of shrink factors of the observed
range and passed to ORT as ``TensorQuantOverrides`` rmin/rmax). ORT's ``distribution`` method is
refused for INT8: it computes ranges for float8 and silently yields useless INT8 models.
Dynamic quantization is never applied to convolutions by default: ORT runs dynamically quantized
convs as ``ConvInteger`` plus float rescaling, 5-8x slower than FP32 for CNNs.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx

from edgecnn.errors import ConfigError, EdgecnnError
from edgecnn.runtime.onnx_prep import (  # noqa: F401 - prepare_for_quantization re-exported
    _drop_identities,
    _toposort,
    _unshare_conv_initializers,
    prepare_for_quantization,
)

CALIBRATIONS = ("minmax", "percentile", "entropy", "mse")
INT_CONV_OPS = {"QLinearConv", "ConvInteger", "NhwcQLinearConv", "QLinearConvTranspose"}
FLOAT_CONV_OPS = {"Conv", "FusedConv", "NhwcFusedConv", "ConvTranspose"}


@dataclass(frozen=True)
class QuantConfig:
    """INT8 static PTQ settings (defaults: U8S8 QDQ, per-channel weights, min/max calibration).

    ``activation_type``/``weight_type``: ``uint8`` or ``int8``. ``symmetric_*``: zero point 0
    (symmetric) or fitted (asymmetric). ``calibration``: one of :data:`CALIBRATIONS`;
    ``percentile`` is used by the percentile method (in percent). ``calib_samples`` caps the
    calibration images. ``nodes_to_exclude`` keeps those ONNX nodes in float (mixed precision).
    """

    activation_type: str = "uint8"
    weight_type: str = "int8"
    per_channel: bool = True
    symmetric_activations: bool = False
    symmetric_weights: bool = True
    calibration: str = "minmax"
    percentile: float = 99.999
    calib_samples: int = 200
    nodes_to_exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("activation_type", "weight_type"):
            v = getattr(self, name)
            if v not in ("uint8", "int8"):
                raise ConfigError(f"{name} must be 'uint8' or 'int8', got '{v}'")
        if self.calibration == "distribution":
            raise ConfigError(
                "calibration 'distribution' is refused for INT8: ONNX Runtime's Distribution "
                "calibrator computes float8 ranges and silently produces a useless INT8 model; "
                f"use one of {', '.join(CALIBRATIONS)}"
            )
        if self.calibration not in CALIBRATIONS:
            raise ConfigError(
                f"unknown calibration '{self.calibration}': choose one of {', '.join(CALIBRATIONS)}"
            )
        if not 50.0 < self.percentile <= 100.0:
            raise ConfigError(f"percentile must be in (50, 100], got {self.percentile}")
        if self.calib_samples < 1:
            raise ConfigError(f"calib_samples must be >= 1, got {self.calib_samples}")


@dataclass
class QuantResult:
    """Outcome of a quantization: file size (bytes), integer-conv fusion and the op census."""

    path: str
    size_bytes: int
    int8_convs: int
    total_convs: int
    optimized_ops: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    config: dict = field(default_factory=dict)

    @property
    def int8_conv_fraction(self) -> float:
        """Fraction of convs ORT runs as integer kernels (1.0 when there are no convs)."""
        return self.int8_convs / self.total_convs if self.total_convs else 1.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["int8_conv_fraction"] = self.int8_conv_fraction
        return d


# ----------------------------------------------------------------------------- helpers


def compact_onnx(model: onnx.ModelProto) -> onnx.ModelProto:
    """Shorten node/tensor names and drop doc strings and value_info (size only; same function).

    Conv/Gemm weights and biases shared between nodes (the exporter deduplicates equal constants,
    e.g. the all-zero biases of freshly folded BNs) get one copy per node: ORT's quantizer would
    quantize a shared bias once, with one conv's scale, and ORT then refuses to fuse the others.
    ``Identity`` nodes (left by exporting folded BNs followed by in-place ReLUs) are removed:
    they sit between a conv and its activation and would stop ORT fusing the quantized conv.
    Graph input and output names are kept. Applied to every ONNX file the pipeline writes, FP32
    and INT8 alike, so file sizes compare weights rather than exporter naming.
    """
    _drop_identities(model.graph)
    _unshare_conv_initializers(model.graph)
    _toposort(model.graph)
    keep = {i.name for i in model.graph.input} | {o.name for o in model.graph.output}
    names: dict[str, str] = {}

    def short(x: str) -> str:
        if not x or x in keep:
            return x
        if x not in names:
            names[x] = format(len(names), "x")
        return names[x]

    for n in model.graph.node:
        n.name = ""
        n.doc_string = ""
        for i, x in enumerate(n.input):
            n.input[i] = short(x)
        for i, x in enumerate(n.output):
            n.output[i] = short(x)
    for t in model.graph.initializer:
        t.name = short(t.name)
    del model.graph.value_info[:]
    model.doc_string = ""
    return model


def _input_name(model: onnx.ModelProto) -> str:
    inits = {t.name for t in model.graph.initializer}
    return next(i.name for i in model.graph.input if i.name not in inits)


class _Reader:
    """ORT CalibrationDataReader over ``N x C x H x W`` float32 images, one image per call."""

    def __init__(self, name: str, x: np.ndarray) -> None:
        self.name, self.x, self.i = name, x, 0

    def get_next(self) -> dict | None:
        if self.i >= len(self.x):
            return None
        self.i += 1
        return {self.name: self.x[self.i - 1 : self.i]}

    def rewind(self) -> None:
        self.i = 0


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence ORT's quantizer chatter (prints on stdout and root-logger warnings)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(x, dtype=np.float32))


def collect_activations(model: onnx.ModelProto, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every float node output (and the input) of ``model`` on images ``x``, concatenated.

    Runs an un-optimised ORT session with all intermediate tensors exposed as outputs.
    """
    import onnxruntime as ort

    m = onnx.ModelProto()
    m.CopyFrom(model)
    m = onnx.shape_inference.infer_shapes(m)
    float_vals = {
        v.name for v in m.graph.value_info if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    }
    existing = {o.name for o in m.graph.output}
    for n in m.graph.node:
        for o in n.output:
            if o in float_vals and o not in existing:
                m.graph.output.append(
                    onnx.helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None)
                )
                existing.add(o)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    inp = _input_name(model)
    names = [o.name for o in sess.get_outputs()]
    acc: dict[str, list[np.ndarray]] = {n: [] for n in names}
    acc[inp] = []
    for i in range(len(x)):
        xi = x[i : i + 1]
        acc[inp].append(xi.ravel())
        for n, v in zip(names, sess.run(names, {inp: xi}), strict=True):
            acc[n].append(np.asarray(v).ravel())
    return {n: np.concatenate(v) for n, v in acc.items() if v}


def mse_optimal_range(
    values: np.ndarray, unsigned: bool = True, symmetric: bool = False, grid: int = 64
) -> tuple[float, float]:
    """Clipping range ``(rmin, rmax)`` minimising the 8-bit quantization MSE of ``values``.

    Candidates shrink the observed ``[min, max]`` by factors ``alpha`` in (0.05, 1]; each is
    scored by the mean squared error between the values and their fake-quantized copies
    (round to the 256-level grid, clip). Ranges always include 0 (as ORT requires).
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size > 200_000:
        v = v[np.random.default_rng(0).choice(v.size, 200_000, replace=False)]
    lo, hi = min(float(v.min()), 0.0), max(float(v.max()), 0.0)
    if hi - lo <= 0:
        return lo, hi
    best, best_range = np.inf, (lo, hi)
    qmax = 255 if unsigned else 127
    qmin = 0 if unsigned else -128
    for alpha in np.linspace(1.0, 0.05, grid):
        if symmetric:
            m = max(abs(lo), abs(hi)) * alpha
            rmin, rmax = -m, m
        else:
            rmin, rmax = lo * alpha, hi * alpha
        scale = (rmax - rmin) / (qmax - qmin)
        zp = np.round(qmin - rmin / scale)
        q = np.clip(np.round(v / scale) + zp, qmin, qmax)
        err = float(np.mean((v - (q - zp) * scale) ** 2))
        if err < best:
            best, best_range = err, (float(rmin), float(rmax))
    return best_range


def int8_conv_report(path: str | os.PathLike[str]) -> tuple[int, int, dict[str, int]]:
    """Load ``path`` in ORT with all optimisations and inspect the graph it will run.

    Returns ``(integer convs, all convs, op census)``; integer convs are ``QLinearConv`` /
    ``ConvInteger`` (any domain), float convs ``Conv`` / ``FusedConv`` (including NCHWc).
    """
    from edgecnn.runtime.session import make_session

    with tempfile.TemporaryDirectory() as tmp:
        opt_path = Path(tmp) / "optimized.onnx"
        make_session(path, threads=1, optimization="all", optimized_model_path=opt_path)
        opt = onnx.load(str(opt_path))
    census = Counter(n.op_type for n in opt.graph.node)
    n_int = sum(census[o] for o in INT_CONV_OPS)
    n_float = sum(census[o] for o in FLOAT_CONV_OPS)
    return n_int, n_int + n_float, dict(census)


# ----------------------------------------------------------------------------- FP16


def convert_fp16(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """Convert an FP32 ONNX model to FP16 weights and compute (float32 inputs/outputs kept)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    from edgecnn.io import atomic_write_bytes

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m16 = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    return atomic_write_bytes(dst, compact_onnx(m16).SerializeToString())


# ----------------------------------------------------------------------------- INT8


def activation_overrides(
    model: onnx.ModelProto, calib_x: np.ndarray, config: QuantConfig
) -> dict[str, list[dict]]:
    """TensorQuantOverrides ``{tensor: [{"rmin", "rmax"}]}`` from the MSE-optimal range search."""
    acts = collect_activations(model, calib_x)
    unsigned = config.activation_type == "uint8"
    out = {}
    for name, v in acts.items():
        rmin, rmax = mse_optimal_range(v, unsigned, config.symmetric_activations)
        out[name] = [{"rmin": np.float32(rmin), "rmax": np.float32(rmax)}]
    return out


def quantize_int8(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    calib_x,
    config: QuantConfig | None = None,
    overrides: dict[str, list[dict]] | None = None,
) -> QuantResult:
    """Static INT8 QDQ quantization of the FP32 ONNX model ``src`` into ``dst`` (atomic).

    ``calib_x``: calibration images (``N x C x H x W``; at most ``config.calib_samples`` used).
    ``overrides``: extra activation ranges (``{tensor: [{"rmin", "rmax"}]}``, e.g. from QAT).
    After writing, the model is loaded in ORT with all optimisations and its convs are counted;
    a warning (in the result and via :mod:`warnings`) says when some still run in float.
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from edgecnn.io import atomic_write_bytes, check_output_path

    cfg = config or QuantConfig()
    check_output_path(dst)
    model = onnx.load(str(src))
    x = _as_numpy(calib_x)[: cfg.calib_samples]
    if len(x) == 0:
        raise EdgecnnError("INT8 static quantization needs calibration data: pass --data")
    qt = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    method = {
        "minmax": CalibrationMethod.MinMax,
        "mse": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }[cfg.calibration]
    extra: dict = {
        "ActivationSymmetric": cfg.symmetric_activations,
        "WeightSymmetric": cfg.symmetric_weights,
        # one DQ per consumer: ORT fuses DQ->Conv->Q into QLinearConv only when the DQ feeding
        # the conv is its own (a tensor read by a conv and a residual branch would otherwise share)
        "DedicatedQDQPair": True,
    }
    if cfg.calibration == "percentile":
        extra["CalibPercentile"] = cfg.percentile
    ov = dict(overrides or {})
    if cfg.calibration == "mse":
        ov = {**activation_overrides(model, x, cfg), **ov}
    if ov:
        extra["TensorQuantOverrides"] = ov
    with tempfile.TemporaryDirectory() as tmp:
        tmp_in = Path(tmp) / "in.onnx"
        tmp_out = Path(tmp) / "out.onnx"
        onnx.save(model, str(tmp_in))
        with warnings.catch_warnings(), _quiet():
            warnings.simplefilter("ignore")
            quantize_static(
                str(tmp_in),
                str(tmp_out),
                _Reader(_input_name(model), x),
                quant_format=QuantFormat.QDQ,
                activation_type=qt[cfg.activation_type],
                weight_type=qt[cfg.weight_type],
                per_channel=cfg.per_channel,
                calibrate_method=method,
                nodes_to_exclude=list(cfg.nodes_to_exclude),
                extra_options=extra,
            )
        data = compact_onnx(onnx.load(str(tmp_out))).SerializeToString()
    out = atomic_write_bytes(dst, data)
    n_int, n_all, census = int8_conv_report(out)
    res = QuantResult(str(out), len(data), n_int, n_all, census, [], asdict(cfg))
    if n_int < n_all and not cfg.nodes_to_exclude:
        msg = (
            f"only {n_int} of {n_all} convs run as integer kernels in ONNX Runtime "
            f"(activations {cfg.activation_type}, weights {cfg.weight_type}); the rest run in "
            "float with quantize/dequantize around them, which can be slower than FP32: "
            "use activation_type uint8 / weight_type int8 (U8S8)"
        )
        res.warnings.append(msg)
        warnings.warn(msg, stacklevel=2)
    return res


def quantize_dynamic_onnx(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], allow_conv: bool = False
) -> Path:
    """Dynamic INT8 quantization of MatMul/Gemm only; convolutions need ``allow_conv=True``.

    Dynamic quantization of convs runs as ``ConvInteger`` with float rescaling at run time,
    5-8x slower than FP32 for CNNs in ORT, so it is refused unless explicitly allowed.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from edgecnn.io import atomic_path

    ops = ["MatMul", "Gemm"] + (["Conv"] if allow_conv else [])
    with atomic_path(dst) as tmp, warnings.catch_warnings(), _quiet():
        warnings.simplefilter("ignore")
        quantize_dynamic(str(src), str(tmp), op_types_to_quantize=ops, weight_type=QuantType.QInt8)
    return Path(dst)


def onnx_accuracy(path: str | os.PathLike[str], x, y, threads: int = 1) -> float:
    """Top-1 accuracy (fraction 0-1) of an ONNX classifier, one image per run (batch 1)."""
    from edgecnn.runtime.session import make_session

    sess = make_session(path, threads=threads)
    name = sess.get_inputs()[0].name
    xs, ys = _as_numpy(x), np.asarray(y)
    correct = 0
    for i in range(len(ys)):
        correct += int(np.argmax(sess.run(None, {name: xs[i : i + 1]})[0]) == ys[i])
    return correct / max(1, len(ys))
