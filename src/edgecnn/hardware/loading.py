"""Load the network a hardware command simulates: a SCALE-Sim topology CSV or any model source."""

from __future__ import annotations

from pathlib import Path

from edgecnn.errors import ModelLoadError
from edgecnn.graph.ir import Graph
from edgecnn.hardware.topology import read_topology


def load_model_graph(source: str | Graph, input_shape: tuple[int, ...] | None = None) -> Graph:
    """A :class:`Graph` from a topology ``.csv``, or whatever ``edgecnn.graph.load_graph`` accepts.

    Until ``load_graph`` exists, torchvision zoo names are built directly (weight-free).
    """
    if isinstance(source, Graph):
        return source
    if str(source).lower().endswith(".csv"):
        if not Path(source).is_file():
            raise ModelLoadError(f"topology CSV '{source}' does not exist")
        return read_topology(source)
    try:
        from edgecnn.graph import load_graph  # type: ignore[attr-defined]
    except ImportError:
        load_graph = None
    if load_graph is not None:
        return load_graph(source, input_shape)
    from edgecnn.graph.from_torch import graph_from_module
    from edgecnn.models.zoo import build_zoo_model

    model = build_zoo_model(str(source))
    return graph_from_module(model, input_shape or (1, 3, 224, 224), name=str(source))
