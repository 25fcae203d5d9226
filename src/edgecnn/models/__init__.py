"""Models: the torchvision zoo (:mod:`.zoo`), built-in edge models (:mod:`.edge`), checkpoints
(:mod:`.checkpoint`) and the one resolver from a user's model source to a module or a graph
(:mod:`.resolve`: :func:`resolve_model`, :func:`load_graph`).

``resolve_model``, ``load_graph`` and ``ResolvedModel`` are re-exported lazily, so importing
``edgecnn.models.edge`` does not import torchvision or the graph frontends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgecnn.models.resolve import ResolvedModel, load_graph, resolve_model

__all__ = ["ResolvedModel", "load_graph", "resolve_model"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from edgecnn.models import resolve

        return getattr(resolve, name)
    raise AttributeError(f"module 'edgecnn.models' has no attribute '{name}'")
