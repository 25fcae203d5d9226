"""OpenVINO backend: ``openvino.convert_model`` reads the ONNX model, ``save_model`` writes IR.

fp32: the fp32 ONNX export, saved with ``compress_to_fp16=False`` (weights stay fp32) and
compiled with ``INFERENCE_PRECISION_HINT=f32`` (no silent bf16 on CPUs that have it). int8: the
QDQ INT8 ONNX model from ONNX Runtime's quantizer; OpenVINO's low-precision transformations turn
its QuantizeLinear/DequantizeLinear pairs into int8 kernels. Artifacts: ``NAME.xml`` +
``NAME.bin``. CPU plugin, one stream, ``threads`` inference threads, latency hint.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgecnn.runtime.backends._common import Runner, conversion_step


def convert(
    module: nn.Module,
    example_input: torch.Tensor,
    onnx_path: Path,
    out_dir: Path,
    precision: str,
    int8_onnx_path: Path | None = None,
) -> Path:
    import openvino as ov

    src = int8_onnx_path if precision == "int8" else onnx_path
    xml = Path(out_dir) / f"{onnx_path.stem}{'.int8' if precision == 'int8' else ''}.xml"
    with conversion_step("openvino", "openvino.convert_model (ONNX frontend)"):
        model = ov.convert_model(str(src))
    with conversion_step("openvino", "openvino.save_model"):
        ov.save_model(model, str(xml), compress_to_fp16=False)
    return xml


def load(artifact: Path, threads: int) -> Runner:
    import openvino as ov

    core = ov.Core()
    config = {
        "INFERENCE_NUM_THREADS": int(threads),
        "NUM_STREAMS": 1,
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": "f32",
    }
    with conversion_step("openvino", "Core.compile_model on CPU"):
        compiled = core.compile_model(str(artifact), "CPU", config)
    request = compiled.create_infer_request()
    out = compiled.output(0)

    def run(x: np.ndarray) -> np.ndarray:
        return np.array(request.infer({0: x})[out])

    return run


def low_precision_kernels(artifact: Path) -> int:
    """How many convolutions of the compiled model run in an 8-bit precision (u8/i8) on the CPU
    (``runtimePrecision`` of the CPU plugin's executable graph)."""
    import openvino as ov

    compiled = ov.Core().compile_model(str(artifact), "CPU", {"INFERENCE_NUM_THREADS": 1})
    n = 0
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if "runtimePrecision" not in info or "layerType" not in info:
            continue
        prec = info["runtimePrecision"].astype(str)
        n += info["layerType"].astype(str) == "Convolution" and prec in ("u8", "i8")
    return n
