"""Private: what the recipe runner and the step implementations share (no other compress imports
but :mod:`edgecnn.compress.quantize`, so the import graph of the package stays acyclic).

:class:`StepState` is the model as it moves through a recipe; :func:`export_compact` writes a
PyTorch module as the compact ONNX file every stage is measured on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx
from torch import nn

from edgecnn.compress.quantize import compact_onnx
from edgecnn.runtime.export import export_onnx_bytes


@dataclass
class StepState:
    """The current model of a recipe run: the PyTorch module (None once ONNX-only), its
    architecture (for ``model.pt``), the input shape (batch first) and the current ONNX file."""

    module: nn.Module | None
    arch: str | None
    arch_kwargs: dict
    input_shape: tuple[int, ...]
    onnx_path: Path
    name: str


def export_compact(module: nn.Module, path: Path, input_shape: tuple[int, ...]) -> Path:
    """Export ``module`` (TorchScript exporter, no output check) as a compacted ONNX file."""
    data = export_onnx_bytes(module, input_shape)
    path = Path(path)
    path.write_bytes(compact_onnx(onnx.load_from_string(data)).SerializeToString())
    return path
