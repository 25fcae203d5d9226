"""TVM backend: the relax ONNX frontend, compiled for the host ``llvm`` target, exported as a
shared library ``NAME.so`` (needs a C compiler on the host, as ``export_library`` links it).

Loaded into a relax ``VirtualMachine`` on ``tvm.cpu()``; ``threads`` configures TVM's (process-
wide) thread pool at load time. No auto-tuning: default schedules, so latencies are those of an
untuned build. INT8 is not offered: relax's ONNX frontend has no practical QDQ-to-int8 lowering.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgecnn.runtime.backends._common import Runner, conversion_step

TARGET = "llvm"


def convert(
    module: nn.Module,
    example_input: torch.Tensor,
    onnx_path: Path,
    out_dir: Path,
    precision: str,
    int8_onnx_path: Path | None = None,
) -> Path:
    import onnx
    import tvm
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx

    from edgecnn.runtime.export import captured_output

    lib = Path(out_dir) / f"{onnx_path.stem}.so"
    with conversion_step("tvm", "relax ONNX frontend (from_onnx)"), captured_output():
        mod = from_onnx(onnx.load(str(onnx_path)), keep_params_in_input=False)
        mod = relax.transform.DecomposeOpsForInference()(mod)
    with conversion_step("tvm", f"tvm.compile for target '{TARGET}'"), captured_output():
        executable = tvm.compile(mod, target=TARGET)
    with conversion_step("tvm", "export_library (shared library)"), captured_output():
        executable.export_library(str(lib))
    return lib


def load(artifact: Path, threads: int) -> Runner:
    import tvm
    from tvm import relax

    config = tvm.get_global_func("runtime.config_threadpool")
    config(1, int(threads))  # mode 1: big cores, `threads` workers
    with conversion_step("tvm", "loading the shared library"):
        lib = tvm.runtime.load_module(str(artifact))
        vm = relax.VirtualMachine(lib, tvm.cpu())
    main = vm["main"]
    dev = tvm.cpu()

    def run(x: np.ndarray) -> np.ndarray:
        out = main(tvm.runtime.tensor(x, dev))
        if not hasattr(out, "numpy"):
            out = out[0]
        return out.numpy()

    run._vm = vm
    return run
