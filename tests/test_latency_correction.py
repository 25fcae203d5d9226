"""The boosted-tree correction of the latency predictor (analysis/latency_correction.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from edgecnn.analysis.latency_correction import (
    CLIP,
    MIN_LEAF_SAMPLES,
    Correction,
    correction_features,
    fit_correction,
)
from edgecnn.analysis.latency_predictor import (
    FEATURES,
    Predictor,
    TypeModel,
    conv_features,
    fit_type_model,
)


def test_trees_evaluate_as_scikit_learn_does_and_survive_json():
    from sklearn.ensemble import GradientBoostingRegressor

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 10, (300, 4))
    y = np.sin(x[:, 0]) + 0.3 * x[:, 1] * (x[:, 2] > 5)
    corr = fit_correction(x, y, trees=40, depth=3, rate=0.1)
    ref = GradientBoostingRegressor(
        loss="huber",
        n_estimators=40,
        max_depth=3,
        learning_rate=0.1,
        subsample=0.8,
        min_samples_leaf=MIN_LEAF_SAMPLES,
        random_state=0,
    ).fit(x, y)
    test = rng.uniform(0, 10, (50, 4))
    want = np.clip(ref.predict(test), -CLIP, CLIP)
    got = np.array([corr.log_factor(row) for row in test])
    assert got == pytest.approx(want, abs=1e-9)
    back = Correction.from_dict(json.loads(json.dumps(corr.to_dict())))
    assert [back.log_factor(r) for r in test] == pytest.approx(list(got), abs=0)


def test_malformed_trees_are_rejected():
    bad = {"init": 0.0, "rate": 0.1, "trees": [{"feature": [0], "threshold": [1.0],
                                                  "left": [5], "right": [6], "value": [0.0]}]}  # fmt: skip
    with pytest.raises(ValueError, match="out of range"):
        Correction.from_dict(bad)
    bad["trees"][0]["left"] = [-1, -1]
    with pytest.raises(ValueError, match="malformed"):
        Correction.from_dict(bad)


def test_shape_features_recover_reduction_channels_and_pixels():
    _, f = conv_features(64, 96, 14, 14, 3, 3, 1, 64 * 16 * 16, "int8")
    x = correction_features(FEATURES["conv"], f, "int8")
    red, cout, pix = (math.expm1(v) for v in x[-3:])
    assert (red, cout, pix) == pytest.approx((64 * 9, 96, 14 * 14))


def test_correction_fixes_what_a_linear_law_cannot():
    """Kernel time = linear in MACs, but twice as slow per MAC below 32 output channels (a
    blocking effect): the linear fit alone misses it, linear x correction gets it."""
    rng = np.random.default_rng(1)
    feats = FEATURES["conv"]
    rows, ys, slow_rows = [], [], []
    for _ in range(400):
        cin, cout = int(rng.integers(8, 256)), int(rng.integers(8, 256))
        hw = int(rng.integers(7, 57))
        _, f = conv_features(cin, cout, hw, hw, 3, 3, 1, cin * hw * hw, "fp32")
        slow = 2.0 if cout < 32 else 1.0
        rows.append(f)
        slow_rows.append(slow > 1)
        ys.append(0.002 + 1e-8 * f["macs"] * slow)
    x = np.array([[f[n] for n in feats] for f in rows])
    y = np.array(ys)
    lin = fit_type_model(feats, x, y)
    xs = np.array([correction_features(feats, f, "fp32") for f in rows])
    base = np.array([lin.predict(f) for f in rows])
    corr = fit_correction(xs, np.log(y / base))
    p = Predictor("ort", "fp32", "host", "cpu", 1, {"conv": lin}, 0.0, 0.0)
    slow = np.array(slow_rows)
    err_lin = np.median(np.abs(base / y - 1)[slow])
    q = Predictor(
        "ort", "fp32", "host", "cpu", 1, {"conv": lin}, 0.0, 0.0, corrections={"conv": corr}
    )
    pred = np.array([q.predict_features("conv", f) for f in rows])
    err_corr = np.median(np.abs(pred / y - 1)[slow])
    assert slow.sum() >= 20 and err_lin > 0.2 and err_corr < err_lin / 3
    assert np.median(np.abs(pred / y - 1)) < np.median(np.abs(base / y - 1))
    assert [p.predict_features("conv", f) for f in rows[:5]] == pytest.approx(list(base[:5]))
    # a version-1 predictor file (no corrections) still loads and predicts linearly
    d = q.to_dict()
    d["version"] = 1
    del d["corrections"]
    old = Predictor.from_dict(d)
    assert old.corrections == {} and old.predict_features("conv", rows[0]) == pytest.approx(base[0])


def test_one_outlying_kernel_does_not_set_a_regions_factor():
    """300 kernels on the linear law (2% noise), and the three with the largest outputs twice
    as slow (a float activation the features do not separate): with single-sample leaves the
    trees give the region past them their factor; with leaves of MIN_LEAF_SAMPLES kernels the
    factor there stays near 1 (a kernel past the sampled range is predicted as most of its
    neighbours measured)."""
    rng = np.random.default_rng(3)
    x = np.sort(rng.uniform(0.0, 10.0, size=(300, 1)), axis=0)
    y = rng.normal(0.0, 0.02, size=300)
    y[-3:] = math.log(2.0)
    far = [10.5]
    loose = fit_correction(x, y, min_leaf=1)
    tight = fit_correction(x, y)
    assert MIN_LEAF_SAMPLES >= 5
    assert loose.log_factor(far) > 0.5 * math.log(2.0)
    assert abs(tight.log_factor(far)) < 0.2 * math.log(2.0)


def test_fallback_type_uses_its_models_correction():
    lin = TypeModel(["in_bytes", "out_bytes"], 0.001, [1e-9, 1e-9])
    corr = Correction(math.log(2.0), 0.1, [])
    p = Predictor(
        "ort", "fp32", "host", "cpu", 1, {"memory": lin}, 0.0, 0.0, corrections={"memory": corr}
    )
    f = {"in_bytes": 1e6, "out_bytes": 1e6}
    assert p.predict_features("concat", f) == pytest.approx(2 * lin.predict(f))
