"""Pruning: unstructured magnitude (layer-wise / global) and structured channel pruning.

Unstructured pruning zeroes the smallest-magnitude weights of conv/linear layers, either the same
fraction in every layer (``scope="layer"``) or one global threshold (``scope="global"``); the
tensors keep their shapes and :func:`sparsity_stats` reports per-layer zero fractions (input to
an accelerator's zero-skipping model). MACs of dense hardware do not change.

Structured pruning removes whole output channels and everything that depends on them, through
Torch-Pruning's ``DependencyGraph`` (wrapped, not copied): residual adds prune the same channels
on all joined branches, depthwise convs follow their producer, concatenations map channel
offsets. Importance criteria: ``l1`` / ``l2`` weight magnitude, ``bn`` (|gamma| of the following
BatchNorm; needs unfolded BN) and ``taylor`` (|w * dL/dw| on a batch of training data). The
classifier layer is never pruned (its outputs are the classes).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn

from edgecnn.compress.measure import module_costs
from edgecnn.errors import ConfigError, EdgecnnError

IMPORTANCES = ("l1", "l2", "bn", "taylor")


def _prunable(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


@dataclass
class LayerSparsity:
    """Zero weights of one layer (count and fraction 0-1)."""

    name: str
    weights: int
    zeros: int

    @property
    def sparsity(self) -> float:
        return self.zeros / self.weights if self.weights else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "sparsity": self.sparsity}


def sparsity_stats(model: nn.Module) -> list[LayerSparsity]:
    """Per conv/linear layer: number of weights and of exact zeros."""
    return [
        LayerSparsity(n, m.weight.numel(), int((m.weight == 0).sum())) for n, m in _prunable(model)
    ]


def magnitude_prune(
    model: nn.Module, sparsity: float, scope: str = "layer", skip_first: bool = True
) -> tuple[nn.Module, list[LayerSparsity]]:
    """Zero the smallest-|w| fraction ``sparsity`` (0-1) of conv/linear weights (a copy).

    ``scope="layer"``: the fraction in every layer; ``"global"``: one threshold over all layers.
    ``skip_first`` leaves the first conv (tiny, sensitive) dense.
    """
    if not 0.0 <= sparsity < 1.0:
        raise ConfigError(f"sparsity must be in [0, 1), got {sparsity}")
    if scope not in ("layer", "global"):
        raise ConfigError(f"unknown pruning scope '{scope}': choose layer or global")
    m = copy.deepcopy(model)
    layers = _prunable(m)[1:] if skip_first else _prunable(m)
    with torch.no_grad():
        if scope == "global":
            allw = torch.cat([mod.weight.abs().flatten() for _, mod in layers])
            k = int(sparsity * allw.numel())
            thr = allw.kthvalue(k).values if k > 0 else allw.new_tensor(-1.0)
            for _, mod in layers:
                mod.weight.mul_((mod.weight.abs() > thr).to(mod.weight.dtype))
        else:
            for _, mod in layers:
                w = mod.weight.abs().flatten()
                k = int(sparsity * w.numel())
                if k > 0:
                    thr = w.kthvalue(k).values
                    mod.weight.mul_((mod.weight.abs() > thr).to(mod.weight.dtype))
    return m, sparsity_stats(m)


# ----------------------------------------------------------------------------- structured


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """MACs of one forward pass at ``input_shape``: ``edgecnn.analysis.profile`` of the module's
    graph (``graph.from_torch``, meta tensors: no weights read, nothing computed).

    Analyser errors propagate; ops without a cost are warned about (:func:`module_costs`).
    """
    return module_costs(model, input_shape).macs


def _importance(kind: str, model: nn.Module):
    import torch_pruning as tp

    if kind == "l1":
        return tp.importance.MagnitudeImportance(p=1)
    if kind == "l2":
        return tp.importance.MagnitudeImportance(p=2)
    if kind == "bn":
        if not any(isinstance(x, nn.BatchNorm2d) for x in model.modules()):
            raise EdgecnnError(
                "BN-scale importance needs BatchNorm layers but the model has none (BN folded?): "
                "prune before folding, or use importance l1, l2 or taylor"
            )
        return tp.importance.BNScaleImportance()
    if kind == "taylor":
        return tp.importance.TaylorImportance()
    raise ConfigError(f"unknown importance '{kind}': choose one of {', '.join(IMPORTANCES)}")


def _classifier(model: nn.Module) -> list[nn.Module]:
    lin = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return lin[-1:] if lin else [list(m for m in model.modules() if isinstance(m, nn.Conv2d))[-1]]


@dataclass
class PruneResult:
    """Structured pruning outcome: MACs/params before and after (``edgecnn.analysis``) and the
    per-round log ``{step, macs, accuracy}``."""

    macs_before: int
    macs_after: int
    params_before: int
    params_after: int
    rounds: list[dict] = field(default_factory=list)

    @property
    def macs_reduction(self) -> float:
        """Fraction 0-1 of MACs removed."""
        return 1.0 - self.macs_after / self.macs_before if self.macs_before else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "macs_reduction": self.macs_reduction}


def structured_prune(
    model: nn.Module,
    input_shape: tuple[int, ...],
    target_macs_reduction: float = 0.5,
    importance: str = "l1",
    rounds: int = 5,
    global_pruning: bool = False,
    finetune: Callable[[nn.Module, int], float | None] | None = None,
    calib: tuple[Tensor, Tensor] | None = None,
    max_ratio: float = 0.9,
    round_to: int | None = None,
) -> tuple[nn.Module, PruneResult]:
    """Remove channels of a copy of ``model`` until MACs fall by ``target_macs_reduction``.

    Pruning proceeds in up to ``rounds`` steps of a Torch-Pruning ``MetaPruner`` whose channel
    ratio ramps to ``max_ratio``; after each step ``finetune(model, round)`` (optional; returns
    an accuracy or None) trains the pruned network. ``calib`` = ``(x, y)`` is required for
    ``taylor`` importance (gradients of the cross-entropy). Stops as soon as the MACs target is met.
    ``round_to`` keeps channel counts multiples of it (e.g. 8: SIMD-friendly widths for ORT's
    blocked NCHWc kernels).
    """
    import torch_pruning as tp

    if not 0.0 < target_macs_reduction < 1.0:
        raise ConfigError(f"target_macs_reduction must be in (0, 1), got {target_macs_reduction}")
    if importance == "taylor" and calib is None:
        raise EdgecnnError("Taylor importance needs training data for gradients: pass --data")
    m = copy.deepcopy(model).eval()
    example = torch.zeros(input_shape)
    costs0 = module_costs(m, input_shape)
    macs0, params0 = costs0.macs, costs0.params
    steps = max(1, rounds) * 4  # fine-grained ramp; we stop at the MACs target
    try:
        pruner = tp.pruner.MetaPruner(
            m,
            example,
            importance=_importance(importance, m),
            global_pruning=global_pruning,
            pruning_ratio=max_ratio,
            iterative_steps=steps,
            ignored_layers=_classifier(m),
            round_to=round_to,
        )
    except Exception as e:  # torch-pruning's tracer raises many types
        raise EdgecnnError(
            f"structured pruning cannot trace {type(model).__name__} ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}); use unstructured pruning instead"
        ) from None
    res = PruneResult(macs0, macs0, params0, params0)
    target = (1.0 - target_macs_reduction) * macs0
    per_round = max(1, steps // max(1, rounds))
    for r in range(steps):
        if importance == "taylor":
            assert calib is not None
            m.zero_grad()
            nn.functional.cross_entropy(m(calib[0]), calib[1]).backward()
        pruner.step()
        macs = count_macs(m, input_shape)
        done = macs <= target
        if done or (r + 1) % per_round == 0:
            acc = finetune(m, len(res.rounds)) if finetune is not None else None
            res.rounds.append({"step": r + 1, "macs": macs, "accuracy": acc})
        if done:
            break
    m.zero_grad(set_to_none=True)
    m.eval()
    costs1 = module_costs(m, input_shape)
    res.macs_after, res.params_after = costs1.macs, costs1.params
    return m, res


def layer_sensitivity(
    model: nn.Module,
    evaluate: Callable[[nn.Module], float],
    ratios: tuple[float, ...] = (0.25, 0.5, 0.75),
) -> dict[str, list[tuple[float, float]]]:
    """Accuracy (from ``evaluate``) after zeroing the smallest-L1 ``ratio`` of output channels of
    one conv at a time, no fine-tuning: ``{layer: [(ratio, accuracy), ...]}``.

    Channels are masked (zeroed weights and bias), which for a scan is equivalent to removing
    them and needs no dependency tracking.
    """
    out: dict[str, list[tuple[float, float]]] = {}
    for name, mod in _prunable(model):
        if not isinstance(mod, nn.Conv2d) or mod.out_channels < 4:
            continue
        row = []
        for ratio in ratios:
            m = copy.deepcopy(model)
            conv = m.get_submodule(name)
            with torch.no_grad():
                imp = conv.weight.abs().flatten(1).sum(1)
                k = int(ratio * conv.out_channels)
                idx = imp.argsort()[:k]
                conv.weight[idx] = 0
                if conv.bias is not None:
                    conv.bias[idx] = 0
            row.append((ratio, float(evaluate(m))))
        out[name] = row
    return out


def plot_sensitivity(scan: dict[str, list[tuple[float, float]]], path) -> None:
    """Plot accuracy vs prune ratio, one line per layer, to ``path`` (PNG, written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgecnn.io import atomic_path

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, row in scan.items():
        ax.plot([r for r, _ in row], [a * 100 for _, a in row], marker="o", label=name)
    ax.set_xlabel("fraction of output channels pruned")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("per-layer pruning sensitivity (no fine-tuning)")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
