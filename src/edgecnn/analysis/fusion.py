"""Inference-time fusion of the IR: BatchNorm folded into the preceding conv/linear, and the
activation after it fused, as a deployment compiler does.

A BatchNorm is folded only when its input is produced by a conv/linear (directly, or through
aliases) that nobody else reads; an activation is fused when its input is produced by the group's
last layer and read by nothing else. Anything else stays a group of its own (for example
DenseNet's pre-activation BatchNorm, which follows a concat, not a conv).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgecnn.graph.ir import ALIAS_KINDS, Graph, Layer, OpKind, TensorInfo

FOLDABLE_INTO: frozenset[OpKind] = frozenset({OpKind.CONV, OpKind.CONV_TRANSPOSE, OpKind.LINEAR})
FUSABLE_ACTIVATIONS: frozenset[OpKind] = frozenset({OpKind.ACTIVATION})


@dataclass
class FusedGroup:
    """Layers executed as one kernel: an anchor plus a folded BatchNorm and fused activation."""

    layers: list[Layer]
    folded_bn: Layer | None = None
    fused_activation: Layer | None = None
    extra_weight_elems: int = field(default=0)

    @property
    def anchor(self) -> Layer:
        return self.layers[0]

    @property
    def name(self) -> str:
        return self.anchor.name

    @property
    def inputs(self) -> list[TensorInfo]:
        return self.anchor.inputs

    @property
    def outputs(self) -> list[TensorInfo]:
        return self.layers[-1].outputs

    @property
    def is_alias(self) -> bool:
        return len(self.layers) == 1 and self.anchor.op in ALIAS_KINDS

    def weight_elems(self) -> int:
        """Weights the fused kernel reads: the anchor's own, plus a bias created by folding."""
        if self.folded_bn is None:
            return sum(layer.weight_numel for layer in self.layers)
        return self.anchor.weight_numel + self.extra_weight_elems


def alias_roots(graph: Graph) -> dict[str, str]:
    """Map each tensor produced by an alias op (reshape, dropout...) to the tensor it aliases."""
    roots: dict[str, str] = {}
    for layer in graph.layers:
        if layer.op in ALIAS_KINDS and layer.inputs and layer.outputs:
            src = roots.get(layer.inputs[0].name, layer.inputs[0].name)
            for t in layer.outputs:
                roots[t.name] = src
    return roots


def fused_groups(
    graph: Graph, fold_bn: bool = True, fuse_activations: bool = True
) -> list[FusedGroup]:
    """Partition ``graph.layers`` (in order) into fused groups."""
    roots = alias_roots(graph)

    def root(name: str) -> str:
        return roots.get(name, name)

    readers: dict[str, int] = {}
    for layer in graph.layers:
        if layer.op in ALIAS_KINDS:
            continue
        for t in layer.inputs:
            readers[root(t.name)] = readers.get(root(t.name), 0) + 1
    for t in graph.outputs:
        readers[root(t.name)] = readers.get(root(t.name), 0) + 1

    groups: list[FusedGroup] = []
    tail: dict[str, FusedGroup] = {}  # root tensor -> group whose last layer produced it
    for layer in graph.layers:
        src = root(layer.inputs[0].name) if layer.inputs else None
        owner = tail.get(src) if src is not None else None
        single_reader = src is not None and readers.get(src, 0) == 1 and len(layer.inputs) == 1
        if (
            fold_bn
            and layer.op is OpKind.BATCHNORM
            and owner is not None
            and single_reader
            and owner.anchor.op in FOLDABLE_INTO
            and owner.folded_bn is None
            and owner.fused_activation is None
            and len(owner.layers) == 1
        ):
            owner.layers.append(layer)
            owner.folded_bn = layer
            if "bias" not in owner.anchor.params:
                owner.extra_weight_elems = _out_channels(owner.anchor)
            _retarget(tail, owner, layer)
            continue
        if (
            fuse_activations
            and layer.op in FUSABLE_ACTIVATIONS
            and owner is not None
            and single_reader
            and owner.anchor.op not in ALIAS_KINDS
            and owner.fused_activation is None
        ):
            owner.layers.append(layer)
            owner.fused_activation = layer
            _retarget(tail, owner, layer)
            continue
        group = FusedGroup([layer])
        groups.append(group)
        for t in layer.outputs:
            tail[root(t.name)] = group
    return groups


def _retarget(tail: dict[str, FusedGroup], group: FusedGroup, layer: Layer) -> None:
    for t in layer.outputs:
        tail[t.name] = group


def _out_channels(layer: Layer) -> int:
    w = layer.params.get("weight")
    if layer.op is OpKind.CONV_TRANSPOSE and w is not None:
        return w[1] * int(layer.attr("groups", 1))
    if w is not None:
        return w[0]
    return layer.outputs[0].shape[1] if layer.outputs else 0
