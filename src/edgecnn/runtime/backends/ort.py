"""ONNX Runtime backend: the artifact is the checked ONNX model itself (fp32, or the QDQ INT8 one).

Runs on the CPU execution provider with ``threads`` intra-op threads (see
:func:`edgecnn.runtime.session.make_session`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgecnn.runtime.backends._common import Runner


def convert(
    module: nn.Module,
    example_input: torch.Tensor,
    onnx_path: Path,
    out_dir: Path,
    precision: str,
    int8_onnx_path: Path | None = None,
) -> Path:
    """Copy the fp32 (or INT8 QDQ) ONNX model into ``out_dir``; return the copy's path."""
    src = int8_onnx_path if precision == "int8" else onnx_path
    if src is None:
        raise ValueError("an int8 conversion needs int8_onnx_path")
    dst = Path(out_dir) / (f"{onnx_path.stem}.int8.onnx" if precision == "int8" else onnx_path.name)
    shutil.copyfile(src, dst)
    return dst


def load(artifact: Path, threads: int) -> Runner:
    from edgecnn.runtime.session import make_session

    sess = make_session(artifact, threads=threads)
    name = sess.get_inputs()[0].name

    def run(x: np.ndarray) -> np.ndarray:
        return sess.run(None, {name: x})[0]

    return run
