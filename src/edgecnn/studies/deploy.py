"""Deploy: convert a model with one runtime's own tools, check it against PyTorch, time it.

:func:`run_deploy` resolves the model, exports it to ONNX (checked in ONNX Runtime, see
:func:`edgecnn.runtime.export.export_onnx`), for ``precision="int8"`` quantizes that ONNX model
with :func:`edgecnn.compress.quantize.quantize_int8` (static QDQ U8S8, calibrated on the
calibration split of ``data``), converts it with the runtime's backend
(:mod:`edgecnn.runtime.backends`) into ``out_dir``, loads the artifact, compares its output with
PyTorch's and times it.

Output check: fp32 is fed a standard-normal input (seed 1); int8 the first test image of
``data`` (a random input lies outside the calibrated ranges). Both are compared with the fp32
PyTorch output as ``max|runtime - torch| / (max - min of the torch output)`` against
:data:`~edgecnn.runtime.backends.RELATIVE_TOLERANCE`; a failed check raises and the caller
writes nothing. For int8, ``int8_eval`` also gives top-1 accuracy (fraction 0-1) of the runtime
and of fp32 PyTorch on ``eval_samples`` test images and how often their top-1 agree.

Units: latencies in milliseconds (median of ``runs`` timed calls after ``warmup``, see
:func:`edgecnn.runtime.bench.measure_latency`), times in seconds, sizes in bytes. Artifact names
are relative to ``out_dir``.
"""

from __future__ import annotations

import re
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from edgecnn.errors import ConfigError, EdgecnnError
from edgecnn.runtime.backends import OutputCheck, Runner, compare_outputs, require_backend
from edgecnn.runtime.bench import LatencyStats, measure_latency
from edgecnn.schema import ResultKind

RANDOM_CHECK_INPUT = "random normal (seed 1)"


@dataclass
class DeployResult:
    """One model converted for one runtime: artifacts, output check and latency."""

    model: str
    runtime: str
    runtime_label: str
    precision: str
    input_shape: list[int]
    threads: int
    artifact: str  # main artifact, relative to the output directory
    artifacts: dict[str, int]  # every file written: name -> size in bytes
    check: OutputCheck
    latency: LatencyStats
    export_time_s: float
    convert_time_s: float
    load_time_s: float
    versions: dict[str, str] = field(default_factory=dict)
    calibration: dict | None = None  # int8: data name and number of calibration images
    int8_eval: dict | None = None  # int8: top-1 of runtime and fp32 torch, agreement
    int8_kernels: dict | None = None  # int8: how the runtime runs the quantized model
    warnings: list[str] = field(default_factory=list)
    environment: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d: dict = {"kind": ResultKind.DEPLOY.value}
        for k, v in self.__dict__.items():
            d[k] = v.to_dict() if hasattr(v, "to_dict") else v
        return d


def artifact_stem(name: str) -> str:
    """A file-name-safe stem for a model name (``pkg.mod:factory`` -> ``pkg.mod_factory``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"


def torch_output(module: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    """The module's first output on ``x`` (eval mode, no grad) as a float32 array."""
    with torch.inference_mode():
        out = module(x)
    while isinstance(out, (list, tuple)):
        out = out[0]
    if isinstance(out, dict):
        out = next(iter(out.values()))
    return out.detach().float().numpy()


def random_check_input(shape: Sequence[int]) -> torch.Tensor:
    return torch.randn(tuple(shape), generator=torch.Generator().manual_seed(1))


def run_deploy(
    source: object,
    runtime: str,
    out_dir: str | Path,
    precision: str = "fp32",
    threads: int = 1,
    runs: int = 50,
    warmup: int = 5,
    input_shape: Sequence[int] | None = None,
    data: object = "mnist",
    calib_samples: int = 200,
    eval_samples: int = 500,
    on_step: Callable[[str], None] | None = None,
) -> DeployResult:
    """Convert ``source`` for ``runtime`` into ``out_dir`` (an existing, empty directory).

    ``data`` (int8 only): a ``--data`` spec (``mnist``, ``digits``, a folder) or loaded
    :class:`~edgecnn.data.loaders.DataSplits`.
    """
    from edgecnn.models.resolve import resolve_model
    from edgecnn.runtime.environment import environment_info
    from edgecnn.runtime.export import export_onnx
    from edgecnn.runtime.memory import check_model_memory

    step = on_step or (lambda _m: None)
    backend = require_backend(runtime)
    backend.check_precision(precision)
    if threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")
    rm = resolve_model(source, input_shape)  # type: ignore[arg-type]
    if backend.batch1_only and rm.input_shape[0] != 1:
        raise ConfigError(
            f"runtime '{runtime}' takes one image (batch 1), not input "
            f"{'x'.join(map(str, rm.input_shape))}: use --input-shape with batch 1"
        )
    check_model_memory(
        rm.module, rm.input_shape, rm.name, "deploying", "use a smaller --input-shape"
    )
    splits = None
    if precision == "int8":
        from edgecnn.data.loaders import DataSplits, check_input_shape, load_data

        if isinstance(data, DataSplits):
            splits = data
        else:
            step(f"loading calibration data '{data}'")
            splits = load_data(str(data))
        check_input_shape(rm.input_shape, splits)
    out = Path(out_dir)
    stem = artifact_stem(rm.name)
    notes: list[str] = []
    calibration = int8_kernels = None
    with tempfile.TemporaryDirectory(prefix="edgecnn-deploy-") as tmp:
        step("exporting to ONNX (checked in ONNX Runtime)")
        onnx_path = Path(tmp) / f"{stem}.onnx"
        t0 = time.perf_counter()
        export_onnx(rm.module, onnx_path, rm.input_shape)
        export_s = time.perf_counter() - t0
        int8_path = None
        if precision == "int8":
            import onnx

            from edgecnn.compress.quantize import (
                QuantConfig,
                prepare_for_quantization,
                quantize_int8,
            )

            assert splits is not None
            step(f"quantizing to INT8 on {min(calib_samples, len(splits.y_calib))} images")
            # the exporter's Identity nodes and shared initializers stop ORT fusing integer
            # convs (3 of 10 on edge-resnet); prepared, the graph computes the same function
            # and keeps the exporter's names (ORT's quantizer fails on some renamed graphs)
            compact_path = Path(tmp) / f"{stem}.prepared.onnx"
            onnx.save(prepare_for_quantization(onnx.load(str(onnx_path))), str(compact_path))
            int8_path = Path(tmp) / f"{stem}.int8.onnx"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                q = quantize_int8(
                    compact_path,
                    int8_path,
                    splits.x_calib.numpy(),
                    QuantConfig(calib_samples=calib_samples),
                )
            notes.extend(q.warnings)
            calibration = {
                "data": splits.name,
                "samples": int(min(calib_samples, len(splits.y_calib))),
                "method": "minmax",
                "scheme": "QDQ, uint8 activations (asymmetric), int8 weights per channel",
            }
            int8_kernels = {
                "ort_integer_convs": q.int8_convs,
                "ort_total_convs": q.total_convs,
            }
        step(f"converting with {backend.label}")
        x_example = random_check_input(rm.input_shape)
        t0 = time.perf_counter()
        artifact = backend.convert(rm.module, x_example, onnx_path, out, precision, int8_path)
        convert_s = time.perf_counter() - t0
    step(f"loading in {backend.label}")
    t0 = time.perf_counter()
    runner = backend.load(artifact, threads)
    load_s = time.perf_counter() - t0
    if precision == "int8" and runtime == "openvino":
        from edgecnn.runtime.backends.openvino import low_precision_kernels

        int8_kernels = {
            **(int8_kernels or {}),
            "openvino_8bit_convs": low_precision_kernels(artifact),
        }
    step("checking the output against PyTorch")
    if splits is not None:
        x_check = splits.x_test[: rm.input_shape[0]].reshape(rm.input_shape).float()
        n_img = rm.input_shape[0]
        what = f"{splits.name} test image{' 0' if n_img == 1 else f's 0-{n_img - 1}'}"
    else:
        x_check, what = random_check_input(rm.input_shape), RANDOM_CHECK_INPUT
    check = compare_outputs(
        runner(x_check.numpy()), torch_output(rm.module, x_check), precision, what
    )
    if not check.passed:
        raise EdgecnnError(
            f"runtime '{runtime}' ({precision}) output differs from PyTorch by up to "
            f"{check.max_abs_error:.3g} = {check.relative_error:.3g} of the output range "
            f"(allowed {check.relative_tolerance:g}) on {what}: the conversion is not faithful; "
            "try another --runtime"
        )
    int8_eval = None
    if splits is not None and rm.input_shape[0] == 1 and eval_samples > 0:
        step(f"top-1 on {min(eval_samples, len(splits.y_test))} test images")
        int8_eval = top1_agreement(rm.module, runner, splits.x_test, splits.y_test, eval_samples)
        int8_eval["data"] = splits.name
    step(f"timing {runs} runs")
    x_np = x_check.numpy()
    latency = measure_latency(
        lambda: runner(x_np), runs=runs, warmup=warmup, batch=rm.input_shape[0]
    )
    return DeployResult(
        model=rm.name,
        runtime=runtime,
        runtime_label=backend.label,
        precision=precision,
        input_shape=list(rm.input_shape),
        threads=threads,
        artifact=artifact.name,
        artifacts={p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.is_file()},
        check=check,
        latency=latency,
        export_time_s=export_s,
        convert_time_s=convert_s,
        load_time_s=load_s,
        versions=backend.versions(),
        calibration=calibration,
        int8_eval=int8_eval,
        int8_kernels=int8_kernels,
        warnings=notes,
        environment=environment_info(threads),
    )


def top1_agreement(
    module: torch.nn.Module, runner: Runner, x: torch.Tensor, y: torch.Tensor, n: int
) -> dict:
    """Top-1 accuracy (fractions 0-1) of ``runner`` and of ``module`` on the first ``n`` images
    (one at a time), and the fraction of images where their top-1 classes agree."""
    n = min(n, len(y))
    xs = x[:n].float()
    with torch.inference_mode():
        ref = module(xs).argmax(1).numpy()
    got = np.array([int(np.argmax(runner(xs[i : i + 1].numpy()))) for i in range(n)])
    labels = y[:n].numpy()
    return {
        "samples": int(n),
        "runtime_top1": float(np.mean(got == labels)),
        "torch_fp32_top1": float(np.mean(ref == labels)),
        "top1_agreement": float(np.mean(got == ref)),
    }
