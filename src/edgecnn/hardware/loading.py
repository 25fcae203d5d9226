"""Load the network a hardware command simulates: a SCALE-Sim topology CSV or any model source."""

from __future__ import annotations

from pathlib import Path

from edgecnn.errors import ModelLoadError
from edgecnn.graph.ir import Graph
from edgecnn.hardware.topology import read_topology


def load_model_graph(source: str | Graph, input_shape: tuple[int, ...] | None = None) -> Graph:
    """A :class:`Graph` from a topology ``.csv``, or whatever ``edgecnn.models.load_graph`` accepts
    (torchvision name, ``.onnx``, ``.pt`` checkpoint, ``module:factory``)."""
    if isinstance(source, Graph):
        return source
    if str(source).lower().endswith(".csv"):
        if not Path(source).is_file():
            raise ModelLoadError(f"topology CSV '{source}' does not exist")
        return read_topology(source)
    from edgecnn.models.resolve import load_graph

    return load_graph(source, input_shape)
