"""LiteRT (TFLite) backend: ``litert_torch.convert`` converts the PyTorch module itself (not ONNX).

The artifact ``NAME.tflite`` holds fp32 weights and a fixed input shape (the example input's).
It runs in ``ai_edge_litert.interpreter.Interpreter`` with ``num_threads=threads`` (XNNPACK
delegate, as LiteRT applies by default on CPU).
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
    import litert_torch

    from edgecnn.runtime.export import captured_output

    path = Path(out_dir) / f"{onnx_path.stem}.tflite"
    was_training = module.training
    try:
        with conversion_step("tflite", "litert_torch.convert"), captured_output():
            edge_model = litert_torch.convert(module.eval(), (example_input,))
        with conversion_step("tflite", "export of the .tflite flatbuffer"), captured_output():
            edge_model.export(str(path))
    finally:
        module.train(was_training)
    return path


def load(artifact: Path, threads: int) -> Runner:
    from ai_edge_litert.interpreter import Interpreter

    from edgecnn.runtime.export import captured_output

    with conversion_step("tflite", "Interpreter.allocate_tensors"), captured_output():
        interp = Interpreter(model_path=str(artifact), num_threads=int(threads))
        interp.allocate_tensors()
    inp = interp.get_input_details()[0]["index"]
    out = interp.get_output_details()[0]["index"]

    def run(x: np.ndarray) -> np.ndarray:
        interp.set_tensor(inp, x)
        interp.invoke()
        return interp.get_tensor(out)

    return run
