"""A kernel type's nonlinear correction to its linear latency model, stored as plain JSON.

The linear model of :mod:`edgecnn.analysis.latency_predictor` (``intercept + coef . features``)
gets the scale of a kernel's time right but not how it bends with the shape: MLAS's blocking
makes a conv with 24 output channels or a 7x7 map slower per MAC than one with 256 and 56x56,
and a tiny kernel's time is mostly its fixed cost. A gradient-boosted ensemble of shallow
regression trees, fitted on the same calibration samples, predicts ``log(measured /
linear)`` from the logarithms of the kernel's features and of its shape (reduction length,
output channels and output pixels, recovered from the features); the kernel's latency is then

    linear_ms x exp(clip(correction, -CLIP, CLIP))

so the correction multiplies (a relative error is what it learns) and, outside the sampled
range, a tree's last leaf holds: the linear model still extrapolates. The trees are arrays
(feature, threshold, children, leaf value) evaluated with numpy: no pickle, no scikit-learn
at prediction time (it fits them: :func:`fit_correction`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgecnn.graph.ir import PRECISION_BYTES

#: Largest correction (natural log): the ensemble may scale a kernel by e^+-1.5 = 4.5x at most.
CLIP = 1.5
#: Fewer samples than this and a type keeps its linear model alone.
MIN_SAMPLES = 20
#: Fewest samples a tree's leaf holds: a shape region's factor is then the consensus of ten
#: measured kernels, not one kernel's. With single-sample leaves one int8 kernel (MaxViT's 1x1
#: conv with a float GELU over 3.2 MB, 14 ms: 1.6x its linear model) set the factor of every
#: conv with an output as large, VGG-13's 224x224 64-channel conv among them (x2.2, +5 ms);
#: grouped 5-fold cross-validation on a calibration's own random networks and networks
#: (none of them scored) put 35 of 59 within +-10% at 10, 31 at 1, 30 at 20 (int8).
MIN_LEAF_SAMPLES = 10
#: Leaf sentinel of scikit-learn's tree arrays.
_LEAF = -1


def correction_features(
    kind_features: Sequence[str], f: dict[str, float], precision: str
) -> list[float]:
    """The ensemble's inputs: ``log1p`` of each of the type's features and, for MAC kernels,
    of the reduction length (MACs per output element), the output channels (weight elements
    / reduction) and the output pixels per channel (output elements / channels)."""
    bpe = PRECISION_BYTES[precision]
    x = [math.log1p(max(f.get(n, 0.0), 0.0)) for n in kind_features]
    if "macs" in kind_features:
        out_el = f.get("out_bytes", 0.0) / bpe
        red = f.get("macs", 0.0) / max(out_el, 1.0)
        cout = f.get("weight_bytes", 0.0) / bpe / max(red, 1.0)
        x += [math.log1p(red), math.log1p(cout), math.log1p(out_el / max(cout, 1.0))]
    return x


@dataclass
class Tree:
    """One regression tree as parallel arrays (node i: split ``x[feature[i]] <= threshold[i]``
    goes to ``left[i]``, else ``right[i]``; a leaf has ``left[i] == -1`` and ``value[i]``)."""

    feature: list[int]
    threshold: list[float]
    left: list[int]
    right: list[int]
    value: list[float]

    def predict(self, x: Sequence[float]) -> float:
        i = 0
        while self.left[i] != _LEAF:
            i = self.left[i] if x[self.feature[i]] <= self.threshold[i] else self.right[i]
        return self.value[i]


@dataclass
class Correction:
    """``init + rate x sum(tree(x))``: the log-ratio correction of one kernel type."""

    init: float
    rate: float
    trees: list[Tree] = field(default_factory=list)
    samples: int = 0
    fit_median_abs_rel_error: float = 0.0  #: of linear x correction on its own samples

    def log_factor(self, x: Sequence[float]) -> float:
        raw = self.init + self.rate * sum(t.predict(x) for t in self.trees)
        return min(max(raw, -CLIP), CLIP)

    def to_dict(self) -> dict[str, Any]:
        return {
            "init": self.init,
            "rate": self.rate,
            "samples": self.samples,
            "fit_median_abs_rel_error": self.fit_median_abs_rel_error,
            "trees": [
                {
                    "feature": t.feature,
                    "threshold": t.threshold,
                    "left": t.left,
                    "right": t.right,
                    "value": t.value,
                }
                for t in self.trees
            ],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Correction:
        trees = []
        for t in d["trees"]:
            tree = Tree(
                [int(v) for v in t["feature"]],
                [float(v) for v in t["threshold"]],
                [int(v) for v in t["left"]],
                [int(v) for v in t["right"]],
                [float(v) for v in t["value"]],
            )
            n = len(tree.left)
            if not n or any(
                len(a) != n for a in (tree.feature, tree.threshold, tree.right, tree.value)
            ):
                raise ValueError("malformed correction tree")
            if any(not (c == _LEAF or 0 < c < n) for c in tree.left + tree.right):
                raise ValueError("correction tree child index out of range")
            trees.append(tree)
        return cls(
            float(d["init"]),
            float(d["rate"]),
            trees,
            int(d.get("samples", 0)),
            float(d.get("fit_median_abs_rel_error", 0.0)),
        )


def fit_correction(
    x: np.ndarray,
    log_ratio: np.ndarray,
    weights: np.ndarray | None = None,
    trees: int = 150,
    depth: int = 3,
    rate: float = 0.05,
    seed: int = 0,
    min_leaf: int = MIN_LEAF_SAMPLES,
) -> Correction:
    """Gradient boosting (Huber loss, 80 % subsampling) of ``log_ratio`` = log(measured /
    linear) on ``x`` (:func:`correction_features` rows), converted to :class:`Correction`."""
    from sklearn.ensemble import GradientBoostingRegressor

    gbm = GradientBoostingRegressor(
        loss="huber",
        n_estimators=trees,
        max_depth=depth,
        learning_rate=rate,
        subsample=0.8,
        min_samples_leaf=min_leaf,
        random_state=seed,
    )
    gbm.fit(x, log_ratio, sample_weight=weights)
    init = float(np.ravel(gbm.init_.predict(x[:1]))[0])
    out = []
    for est in gbm.estimators_[:, 0]:
        t = est.tree_
        out.append(
            Tree(
                [int(v) for v in t.feature],
                [float(v) for v in t.threshold],
                [int(v) for v in t.children_left],
                [int(v) for v in t.children_right],
                [float(v) for v in t.value[:, 0, 0]],
            )
        )
    corr = Correction(init, float(rate), out, samples=len(log_ratio))
    got = np.array([corr.log_factor(row) for row in x])
    corr.fit_median_abs_rel_error = float(np.median(np.abs(np.expm1(got - log_ratio))))
    return corr
