"""ncnn backend: the ``pnnx`` tool converts the ONNX model to ``NAME.ncnn.param`` + ``.bin``.

pnnx runs with ``fp16=0`` (fp32 weights) and the loader disables ncnn's fp16/bf16 storage and
arithmetic, so fp32 means fp32. ncnn blobs have no batch axis: the artifact takes one image
(``1 x C x H x W``), and the runner returns the output with a leading batch axis of 1. pnnx's
intermediate files (its own .param/.bin, Python and ONNX dumps) stay in a temporary directory.
INT8 would need ncnn's ``ncnn2table``/``ncnn2int8`` tools, which the pip wheels do not ship.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgecnn.errors import ConfigError
from edgecnn.runtime.backends._common import ConversionError, Runner, conversion_step


def convert(
    module: nn.Module,
    example_input: torch.Tensor,
    onnx_path: Path,
    out_dir: Path,
    precision: str,
    int8_onnx_path: Path | None = None,
) -> Path:
    import pnnx

    shape = list(example_input.shape)
    if not shape or shape[0] != 1:
        raise ConfigError(f"runtime 'ncnn' takes one image (batch 1), not input {shape}")
    out_dir = Path(out_dir)
    param = out_dir / f"{onnx_path.stem}.ncnn.param"
    binf = out_dir / f"{onnx_path.stem}.ncnn.bin"
    with tempfile.TemporaryDirectory(prefix="edgecnn-pnnx-") as tmp:
        t = Path(tmp)
        cmd = [
            pnnx.EXEC_PATH,
            str(onnx_path),
            "inputshape=[" + ",".join(map(str, shape)) + "]f32",
            "fp16=0",
            f"ncnnparam={param}",
            f"ncnnbin={binf}",
            f"ncnnpy={t / 'model_ncnn.py'}",
            f"pnnxparam={t / 'model.pnnx.param'}",
            f"pnnxbin={t / 'model.pnnx.bin'}",
            f"pnnxpy={t / 'model_pnnx.py'}",
            f"pnnxonnx={t / 'model.pnnx.onnx'}",
        ]
        with conversion_step("ncnn", "pnnx"):
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp, timeout=600)
    if proc.returncode != 0 or not param.is_file() or not binf.is_file():
        log = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        raise ConversionError(
            f"runtime 'ncnn': pnnx failed (exit {proc.returncode}: {log[-1][:200] if log else 'no output'}); "
            "the model uses an op pnnx cannot convert: try another --runtime"
        )
    unsupported = _unsupported_layers(param)
    if unsupported:
        raise ConversionError(
            f"runtime 'ncnn': pnnx left ops ncnn cannot run ({', '.join(unsupported)}): "
            "try another --runtime"
        )
    return param


def _unsupported_layers(param: Path) -> list[str]:
    """Layer types pnnx wrote that ncnn has no layer for (they stay ``pnnx.*``/``aten::*``...)."""
    bad = set()
    for line in param.read_text().splitlines()[2:]:
        kind = line.split(maxsplit=1)[0] if line.strip() else ""
        if "." in kind or "::" in kind:
            bad.add(kind)
    return sorted(bad)


def load(artifact: Path, threads: int) -> Runner:
    import ncnn

    artifact = Path(artifact)
    net = ncnn.Net()
    net.opt.num_threads = int(threads)
    for flag in ("use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic", "use_bf16_storage"):
        setattr(net.opt, flag, False)
    binf = artifact.with_name(artifact.name.replace(".param", ".bin"))
    if net.load_param(str(artifact)) != 0 or net.load_model(str(binf)) != 0:
        raise ConversionError(f"runtime 'ncnn': ncnn cannot load '{artifact.name}' / '{binf.name}'")
    in_name, out_name = net.input_names()[0], net.output_names()[0]

    def run(x: np.ndarray) -> np.ndarray:
        ex = net.create_extractor()
        ex.input(in_name, ncnn.Mat(np.ascontiguousarray(x[0])))
        _, out = ex.extract(out_name)
        return np.array(out)[None]

    run._net = net  # keep the net alive as long as the runner
    return run
