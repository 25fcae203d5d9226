"""The calibrated per-kernel latency predictor: features, grouping, fitting, JSON storage, CLI.

No assertion depends on this machine's speed: measured times are only checked for being
positive and finite; accuracy figures come from benchmarks/bench_predictor.py.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from cli_helpers import run_cli
from edgecnn.analysis.latency_predictor import (
    FEATURES,
    Predictor,
    PredictorError,
    TypeModel,
    conv_features,
    default_path,
    fit_type_model,
    kernels,
    load_predictor,
    memory_features,
    predict_graph,
    save_predictor,
)
from edgecnn.graph.from_torch import graph_from_module


class Block(nn.Module):
    """conv+bn+relu, then conv+bn + identity residual + relu, pool, linear."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.b1 = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.b2 = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        y = torch.relu(self.b1(self.c1(x)))
        y = torch.relu(self.b2(self.c2(y)) + x)
        y = torch.nn.functional.hardswish(self.dw(y))
        return self.fc(torch.flatten(self.pool(y), 1))


def _graph():
    return graph_from_module(Block().eval(), (1, 8, 16, 16), name="block")


def _predictor(precision: str = "fp32") -> Predictor:
    rng = np.random.default_rng(3)
    models = {
        k: TypeModel(list(f), float(rng.uniform(0.001, 0.01)), list(rng.uniform(0, 1e-7, len(f))))
        for k, f in FEATURES.items()
    }
    return Predictor("ort", precision, "host", "test cpu", 1, models, 0.002, 0.05, {"seed": 3})


def test_conv_features_closed_form():
    kind, f = conv_features(16, 32, 8, 8, 3, 3, 1, 16 * 16 * 16, "fp32", "relu", residual=True)
    assert kind == "conv"
    assert f["macs"] == 32 * 8 * 8 * 16 * 3 * 3
    assert f["macs_k1"] == 0 and f["macs_lowc"] == 0 and f["macs_k5"] == 0
    assert f["in_bytes"] == 16 * 16 * 16 * 4
    assert f["out_bytes"] == 32 * 8 * 8 * 4
    assert f["weight_bytes"] == 32 * 16 * 9 * 4
    assert f["sum_bytes"] == f["out_bytes"] and f["act_cheap_bytes"] == f["out_bytes"]
    kind, f = conv_features(64, 64, 7, 7, 5, 5, 64, 64 * 49, "int8", "hardswish")
    assert kind == "dwconv"
    assert f["macs"] == 64 * 49 * 25 and f["weight_bytes"] == 64 * 25
    assert f["act_hswish_bytes"] == 64 * 49 and set(f) == set(FEATURES["dwconv"])
    # 64 channels are a multiple of 16: no MACs off ORT's 16-channel int8 depthwise path;
    # 72 (and 8) are not: all of theirs are
    assert f["macs_c16_off"] == 0
    kind, f = conv_features(72, 72, 14, 14, 3, 3, 72, 72 * 196, "int8", "relu6")
    assert kind == "dwconv" and f["macs_c16_off"] == f["macs"] == 72 * 196 * 9
    assert f["macs_c4_off"] == 0  # 72 is a multiple of 4; ShuffleNet's 58 is not
    f = conv_features(58, 58, 28, 28, 3, 3, 58, 58 * 784, "fp32")[1]
    assert f["macs_c4_off"] == f["macs_c16_off"] == f["macs"] == 58 * 784 * 9
    assert conv_features(8, 8, 4, 4, 3, 3, 8, 128, "fp32")[1]["macs_c16_off"] == 8 * 16 * 9
    assert conv_features(64, 64, 7, 7, 3, 3, 4, 64 * 49, "fp32")[0] == "gconv"
    # stride 2 (14x14 -> 7x7) and a 7x7 kernel land in their own MAC features
    kind, f = conv_features(64, 64, 7, 7, 3, 3, 4, 64 * 196, "fp32")
    assert kind == "gconv" and f["macs_strided"] == f["macs"] > 0
    assert conv_features(64, 64, 7, 7, 3, 3, 4, 64 * 49, "fp32")[1]["macs_strided"] == 0
    kind, f = conv_features(16, 32, 8, 8, 7, 7, 1, 16 * 64, "fp32")
    assert f["macs_k5"] == f["macs"] and f["macs_k1"] == 0
    # ShuffleNet v2 x1.0's 58 channels are off ORT's multiples of 4 (either side); a stem's
    # 3 input channels count as few channels instead
    for cin, cout, off in ((58, 58, True), (64, 58, True), (58, 64, True), (60, 64, False)):
        f = conv_features(cin, cout, 28, 28, 1, 1, 1, cin * 784, "int8")[1]
        assert f["macs_c4_off"] == (f["macs"] if off else 0) == (cout * 784 * cin if off else 0)
    f = conv_features(3, 24, 112, 112, 3, 3, 1, 3 * 224 * 224, "int8")[1]
    assert f["macs_c4_off"] == 0 and f["macs_lowc"] == f["macs"]
    # grouped: group widths of 16 and 48 are on ORT's NCHWc path, 24 (RegNetX-1.6GF) is not
    # (48, a wide group, is a dense conv kernel in fp32: the int8 grouped kernel then)
    for width, off, prec in ((16, False, "fp32"), (48, False, "int8"), (24, True, "fp32")):
        kind, f = conv_features(4 * width, 4 * width, 14, 14, 3, 3, 4, 4 * width * 196, prec)
        assert kind == "gconv" and f["macs"] == 4 * width * 196 * width * 9
        assert f["macs_c16_off"] == (f["macs"] if off else 0), width
        assert f["group_pixels"] == 4 * 196  # groups x output pixels, whatever the width
    # ResNeXt-50's first grouped conv: 32 groups of 4 channels on 56x56, batch 2
    f = conv_features(128, 128, 56, 56, 3, 3, 32, 2 * 128 * 3136, "int8", batch=2)[1]
    assert f["group_pixels"] == 2 * 32 * 3136 and f["macs"] == 2 * 128 * 3136 * 36


@pytest.mark.parametrize(
    ("shape", "perm", "canonical", "gathers"),
    [
        ((1, 96, 56, 56), (0, 1, 3, 2), [0, 2, 1], False),  # the last two axes swap
        ((1, 96, 56, 56), (0, 2, 3, 1), [1, 0], False),  # NCHW -> NHWC: C x HW, 2-D
        ((1, 96, 56, 56), (0, 3, 2, 1), [2, 1, 0], True),
        ((1, 8, 7, 8, 7, 128), (0, 1, 3, 2, 4, 5), [0, 2, 1, 3], False),  # Swin's partition
        ((1, 64, 8, 7, 8, 7), (0, 2, 4, 3, 5, 1), [1, 3, 2, 4, 0], True),  # MaxViT's
        ((1, 1, 7, 1, 7, 1024), (0, 1, 3, 2, 4, 5), [0], False),  # only size-1 axes move
        ((1, 2, 116, 28, 28), (0, 2, 1, 3, 4), [1, 0, 2], False),  # a channel shuffle
    ],
)
def test_transposes_are_classified_by_the_transpose_they_are(shape, perm, canonical, gathers):
    from edgecnn.analysis.latency_predictor import canonical_perm, gathers_elements

    assert canonical_perm(shape, perm) == canonical
    assert gathers_elements(shape, perm) is gathers
    f = memory_features("transpose", [shape], [[shape[p] for p in perm]], perm, "int8")
    assert f["in_bytes"] == f["out_bytes"] == math.prod(shape)
    assert f["strided_bytes"] == (f["out_bytes"] if gathers else 0) and f["pad_bytes"] == 0


def test_memory_features_count_the_bytes_each_op_reads_and_writes():
    # a gather of one of q, k, v reads only its third of the input
    f = memory_features("slice", [(3, 4, 16, 49, 32)], [(4, 16, 49, 32)], None, "fp32")
    assert f["in_bytes"] == f["out_bytes"] == 4 * 16 * 49 * 32 * 4
    f = memory_features("pad", [(1, 55, 55, 96)], [(1, 56, 56, 96)], None, "int8")
    assert (f["in_bytes"], f["out_bytes"]) == (55 * 55 * 96, 56 * 56 * 96)
    assert f["pad_bytes"] == f["out_bytes"] and f["strided_bytes"] == 0
    f = memory_features("copy", [(1, 8, 4, 4)], [(1, 4, 4, 4), (1, 4, 4, 4)], None, "fp32")
    assert f["in_bytes"] == f["out_bytes"] == 512 and f["pad_bytes"] == f["strided_bytes"] == 0


@pytest.mark.parametrize("fn", ["transpose", "transpose_rows", "transpose_mixed", "pad", "slice"])
def test_sampled_memory_kernels_compute_what_their_features_say(fn):
    """Each sampled data-movement model, run in ORT, gives numpy's result for its op, and its
    features are :func:`memory_features` of the shapes it runs on."""
    import onnxruntime as ort

    from edgecnn.runtime.calibrate import MEMORY_FNS, _memory_shapes, build_model, features_of

    assert fn in MEMORY_FNS
    cfg = {"type": "memory", "c": 24, "hw": 6, "fn": fn, "pad": 2}
    shape_in, shape_out, perm = _memory_shapes(cfg)
    x = np.random.default_rng(0).standard_normal(shape_in).astype(np.float32)
    sess = ort.InferenceSession(build_model(cfg).SerializeToString())
    (y,) = sess.run(None, {"x": x})
    if perm is not None:
        want = np.transpose(x, perm)
    elif fn == "pad":
        want = np.pad(x, [(0, 0), (2, 2), (2, 2), (0, 0)])
    else:
        want = x[:, :12]
    np.testing.assert_array_equal(y, np.maximum(want, 0))  # the untimed ReLU tail
    assert list(y.shape) == shape_out
    kind = "transpose" if fn.startswith("transpose") else fn
    assert features_of(cfg, "fp32") == (
        "memory",
        memory_features(kind, [shape_in], [shape_out], perm, "fp32"),
    )
    assert (features_of(cfg, "fp32")[1]["strided_bytes"] > 0) is (fn == "transpose_mixed")


def test_kernel_grouping_matches_ort_fusion():
    ks = kernels(_graph())
    types = [k.type for k in ks]
    # conv+bn+relu is one kernel; conv+bn+add+relu one (ORT's conv with a sum input);
    # depthwise conv with its hardswish; global pool; linear (flatten is an alias: no kernel)
    assert types == ["conv", "conv", "dwconv", "gpool", "linear"]
    assert len(ks[0].layers) == 3
    assert len(ks[1].layers) == 4
    assert ks[0].features["sum_bytes"] == 0 and ks[1].features["sum_bytes"] == 8 * 16 * 16 * 4
    assert ks[1].features["act_cheap_bytes"] == 8 * 16 * 16 * 4
    assert ks[2].features["act_hswish_bytes"] == 8 * 16 * 16 * 4
    assert ks[0].features["macs"] == 8 * 256 * 8 * 9
    int8 = kernels(_graph(), "int8")
    assert int8[0].features["in_bytes"] * 4 == ks[0].features["in_bytes"]


def test_whole_model_is_sum_of_kernels_plus_overhead():
    p = _predictor()
    g = _graph()
    pred = predict_graph(p, g)
    ks = kernels(g)
    assert len(pred.kernels) == len(ks)
    expect = [p.predict_kernel(k) + p.per_kernel_ms for k in ks]
    assert [k.latency_ms for k in pred.kernels] == pytest.approx(expect, rel=1e-12)
    assert pred.latency_ms == pytest.approx(p.per_inference_ms + sum(expect), rel=1e-12)


def test_json_round_trip_is_exact(tmp_path):
    p = _predictor("int8")
    path = save_predictor(p, tmp_path / "p.json")
    q = load_predictor("ort", "int8", path)
    assert q.to_dict() == p.to_dict()
    g = _graph()
    assert predict_graph(q, g).to_dict() == predict_graph(p, g).to_dict()
    json.loads(path.read_text())  # plain JSON, nothing else


def test_fit_recovers_a_linear_law():
    rng = np.random.default_rng(0)
    feats = ("macs", "in_bytes", "out_bytes")
    x = np.column_stack(
        [rng.uniform(1e5, 1e9, 60), rng.uniform(1e3, 1e7, 60), rng.uniform(1e3, 1e7, 60)]
    )
    true = np.array([2e-8, 5e-7, 0.0])
    y = 0.01 + x @ true
    m = fit_type_model(feats, x, y)
    assert m.intercept_ms == pytest.approx(0.01, rel=1e-6)
    assert m.coef_ms[0] == pytest.approx(2e-8, rel=1e-6)
    assert m.coef_ms[1] == pytest.approx(5e-7, rel=1e-6)
    assert abs(m.coef_ms[2]) < 1e-12
    assert m.fit_median_abs_rel_error < 1e-6


def test_fallback_and_missing_type():
    p = _predictor()
    del p.models["gconv"]
    assert p.type_model("gconv")[0] == "conv"
    p.models = {}
    with pytest.raises(PredictorError, match="recalibrate"):
        p.type_model("conv")


def test_int8_settings_mirror_compress_defaults():
    from edgecnn.compress.quantize import QuantConfig
    from edgecnn.runtime.calibrate import INT8_SETTINGS

    cfg = QuantConfig()
    for k, v in INT8_SETTINGS.items():
        assert getattr(cfg, k) == v, k


class Attention(nn.Module):
    """A windowed-attention core: layer norm, q @ k^T over 6 heads x 4 windows, softmax, @ v."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(32)

    def forward(self, x):  # noqa: ANN001, ANN201 - x: [1, 24, 49, 32]
        q = self.norm(x)
        s = torch.softmax(q @ q.transpose(-2, -1), dim=-1)
        return s @ x


def test_attention_kernels_have_their_own_types_and_count_gemms():
    g = graph_from_module(Attention(), (1, 24, 49, 32))
    ks = {k.type: k for k in kernels(g)}
    assert {"norm", "softmax", "matmul"} <= set(ks)
    mm = [k for k in kernels(g) if k.type == "matmul"]
    assert len(mm) == 2
    assert all(k.features["gemms"] == 24 for k in mm)  # one GEMM per head and window
    assert mm[0].features["macs"] == 24 * 49 * 32 * 49
    assert ks["softmax"].features["in_bytes"] == 24 * 49 * 49 * 4
    assert ks["norm"].features["out_bytes"] == 24 * 49 * 32 * 4


def test_calibration_models_are_valid_onnx_with_matching_features():
    import onnx

    from edgecnn.runtime.calibrate import build_model, features_of, replicate, sample_config

    rng = np.random.default_rng(1)
    for kind in FEATURES:
        cfg = sample_config(kind, rng)
        m = build_model(cfg)
        onnx.checker.check_model(m)
        onnx.checker.check_model(replicate(m, 2))
        t, f = features_of(cfg, "fp32")
        want = kind
        if kind == "gconv":  # wide groups run as the dense conv kernel in fp32
            width = cfg["cin"] // cfg["groups"]
            want = "conv" if width >= 32 and width % 16 == 0 else "gconv"
        assert t == want and set(f) == set(FEATURES[want])


def test_profile_missing_predictor_exits_2_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    code, out, err = run_cli(
        ["profile", "resnet18", "--device", "host", "--runtime", "ort", "--precision", "int8"],
        capsys,
    )
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert "no calibrated predictor for ort/int8 on this host" in lines[0]
    assert "edgecnn calibrate --runtime ort --precision int8" in lines[0]
    assert not default_path("ort", "int8").exists()


@pytest.mark.parametrize(
    "content", ["{not json", json.dumps({"format": "something else"}), json.dumps([1, 2])]
)
def test_profile_corrupt_predictor_exits_2_one_line(tmp_path, monkeypatch, capsys, content):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = default_path("ort", "fp32")
    path.parent.mkdir(parents=True)
    path.write_text(content)
    code, _, err = run_cli(["profile", "resnet18", "--runtime", "ort"], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "unreadable" in lines[0] and "edgecnn calibrate" in lines[0]


def test_calibrate_cli_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    code, out, err = run_cli(
        [
            "calibrate",
            "--runtime",
            "ort",
            "--samples",
            "8",
            "--chains",
            "1",
            "--networks",
            "none",
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    res = json.loads(out)
    assert res["kind"] == "calibration" and res["precision"] == "fp32"
    assert res["samples"] >= 8 and set(res["types"]) == set(FEATURES)
    kernel_rows = [r for r in res["rows"] if r["source"] == "kernel"]
    assert all(r["kernel_ms"] > 0 and math.isfinite(r["kernel_ms"]) for r in kernel_rows)
    assert len(res["chains"]) == 1 and res["chains"][0]["kernels"] == len(res["rows"]) - len(
        kernel_rows
    )
    path = default_path("ort", "fp32")
    assert res["path"] == str(path) and path.is_file()
    p = load_predictor("ort", "fp32")
    # the speed anchor was timed at the start and after every ANCHOR_EVERY samples
    from edgecnn.runtime.calibrate import ANCHOR_EVERY

    timings = p.meta["anchor_timings_ms"]
    items = len(kernel_rows) + 1  # the single kernels and the one random network
    assert len(timings) == 1 + items // ANCHOR_EVERY
    assert all(t > 0 and math.isfinite(t) for t in timings)
    assert p.meta["anchor_ms"] == pytest.approx(float(np.median(timings)))
    code, out, err = run_cli(
        ["profile", "resnet18", "--device", "host", "--runtime", "ort", "--no-anchor", "--json"],
        capsys,
    )
    assert code == 0, err
    prof = json.loads(out)
    from edgecnn.runtime.export import onnx_graph

    expect = predict_graph(p, onnx_graph("resnet18"))  # the graph ORT runs
    assert prof["runtime"] == "ort" and prof["predicted_speed"] == 1.0
    assert prof["totals"]["predicted_ms"] == pytest.approx(expect.latency_ms, rel=1e-9)
    per_layer = sum(r["predicted_ms"] or 0 for r in prof["layers"])
    assert per_layer + p.per_inference_ms == pytest.approx(expect.latency_ms, rel=1e-9)
    # with the anchor (the default): the host timed 1.3x slower than at calibration predicts
    # every kernel and the total 1.3x longer
    import edgecnn.runtime.anchor as anchor

    monkeypatch.setattr(anchor, "anchor_ms", lambda precision: 1.3 * p.meta["anchor_ms"])
    code, out, err = run_cli(
        ["profile", "resnet18", "--device", "host", "--runtime", "ort", "--json"], capsys
    )
    assert code == 0, err
    slow = json.loads(out)
    assert slow["predicted_speed"] == pytest.approx(1.3)
    assert slow["totals"]["predicted_ms"] == pytest.approx(1.3 * expect.latency_ms, rel=1e-9)
    from edgecnn.report.kinds import validate

    validate(res, "calibration result")


def test_calibrate_rejects_other_device(capsys):
    code, _, err = run_cli(["calibrate", "--device", "rpi5"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_fit_weights_favour_the_trusted_samples():
    # two groups that disagree on the slope: the weighted group decides the fit
    x = np.array([[1e6], [2e6], [4e6], [1e6], [2e6], [4e6]])
    y = np.array([1.0, 2.0, 4.0, 2.0, 4.0, 8.0])  # 1e-6 vs 2e-6 ms per MAC
    w = np.array([1.0, 1.0, 1.0, 1e4, 1e4, 1e4])
    m = fit_type_model(("macs",), x, y, weights=w)
    assert m.coef_ms[0] == pytest.approx(2e-6, rel=1e-3)
    m = fit_type_model(("macs",), x, y, weights=w[::-1])
    assert m.coef_ms[0] == pytest.approx(1e-6, rel=1e-3)


def _chain_shapes_chain(cfgs):
    from edgecnn.runtime.calibrate import _chain_out

    c, hw = _chain_out(cfgs[0])
    for cfg in cfgs[1:]:
        if cfg["type"] == "linear":
            assert cfg["k"] == c
            c = cfg["n"]
            continue
        cin = cfg["cin"] if "cin" in cfg else cfg["c"]
        assert (cin, cfg["hw"]) == (c, hw), cfg
        c, hw = _chain_out(cfg)


def test_random_networks_chain_shapes_and_attribute_every_kernel():
    import onnx

    from edgecnn.runtime.calibrate import (
        FUSED_AFTER_CONV,
        build_chain,
        features_of,
        measure_chain,
        sample_chain,
        sample_token_chain,
    )

    rng = np.random.default_rng(5)
    for j in range(3):
        cfgs = sample_token_chain(rng, blocks=1) if j == 2 else sample_chain(rng, length=6)
        if j < 2:
            _chain_shapes_chain(cfgs)
            for a, b in zip(cfgs, cfgs[1:], strict=False):
                # the IR would fuse these into the conv: they would be no kernels of their own
                assert not (
                    a["type"] in ("conv", "dwconv", "gconv") and b["type"] in FUSED_AFTER_CONV
                )
        else:
            assert [c["type"] for c in cfgs][:2] == ["norm", "linear"]
        m = build_chain(cfgs, seed=j)
        onnx.checker.check_model(m, full_check=True)  # strict shape inference
        times, wall = measure_chain(m, len(cfgs), runs=1)
        assert len(times) == len(cfgs) and wall > 0
        for cfg, t in zip(cfgs, times, strict=True):
            kind, f = features_of(cfg, "fp32")
            assert set(f) == set(FEATURES[kind])
            assert math.isfinite(t) and t >= 0
            if kind in ("conv", "dwconv", "gconv", "linear"):
                assert t > 0, cfg  # its fused kernel was attributed to it by the k<i>_ prefix


def test_chain_per_kernel_overhead_counts_kernels_and_extra_inputs():
    from edgecnn.runtime.calibrate import chain_per_kernel_ms

    rows = [
        {"kernels": n, "extra_inputs": e, "kernel_sum_ms": s, "wall_ms": 0.01 + s + 0.003 * (n + e)}
        for n, e, s in [(10, 0, 0.5), (20, 3, 0.9), (30, 1, 0.2), (15, 6, 3.0)]
    ]
    # a slow network whose wall time is off by 40 ms (noise) does not count
    rows.append({"kernels": 10, "extra_inputs": 0, "kernel_sum_ms": 50.0, "wall_ms": 90.0})
    assert chain_per_kernel_ms(rows, 0.01) == pytest.approx(0.003, rel=1e-6)
    # with fewer than 3 fast networks, the 3 fastest count
    slow = [dict(r, kernel_sum_ms=r["kernel_sum_ms"] + 10, wall_ms=r["wall_ms"] + 10) for r in rows]
    assert chain_per_kernel_ms(slow, 0.01) == pytest.approx(0.003, rel=1e-6)


def test_int8_float_island_pays_its_own_conversions(tmp_path):
    """An op ORT runs in float inside an INT8 network (an unfolded BatchNorm) is timed with the
    DequantizeLinear that feeds it and the QuantizeLinear it feeds; a QLinearConv reads and
    writes int8 itself, so its sample holds no conversion (the graph-boundary Q/DQ are left out
    of both)."""
    from edgecnn.runtime.calibrate import build_model, measure_kernel, quantize_model

    bn = dict(type="bn", c=16, hw=14, act="none")
    _, _, ops = measure_kernel(quantize_model(build_model(bn), tmp_path), runs=3)
    assert "BatchNormalization" in ops
    # the activation's DQ (its parameters' DQs too, as ORT runs them in a network) and one Q
    assert "DequantizeLinear" in ops and ops.count("QuantizeLinear") == 1
    conv = dict(
        type="conv", cin=16, cout=16, hw=14, k=3, stride=1, groups=1, act="relu", residual=False
    )
    _, _, ops = measure_kernel(quantize_model(build_model(conv), tmp_path), runs=3)
    assert "QLinearConv" in ops
    assert "DequantizeLinear" not in ops and "QuantizeLinear" not in ops


def test_int8_pool_sample_times_the_int8_pool_a_network_runs(tmp_path):
    """ORT's QDQ quantizer leaves a pool that the float graph input feeds in float; the INT8
    pool sample sits between two untimed convolutions, so its timed ops are the int8 pools a
    quantized network runs (no float pool, no conversion), and a stride-1 pool keeps the size
    (padded, as networks pad it), with features that say so."""
    import onnx

    from edgecnn.runtime.calibrate import (
        build_model,
        features_of,
        in_conv_context,
        measure_kernel,
        quantize_model,
    )

    avg = dict(type="avgpool", c=32, hw=14, k=3, stride=1)
    mx = dict(type="maxpool", c=32, hw=28, k=3, stride=2)
    assert in_conv_context(avg, "int8") and not in_conv_context(avg, "fp32")
    # isolated, the "int8" pool is ORT's float kernel
    _, _, ops = measure_kernel(quantize_model(build_model(avg), tmp_path), runs=3)
    assert ops == ["AveragePool"]
    m = build_model(avg, conv_context=True)
    onnx.checker.check_model(m, full_check=True)
    assert [d.dim_value for d in m.graph.output[0].type.tensor_type.shape.dim] == [1, 32, 14, 14]
    _, _, ops = measure_kernel(quantize_model(m, tmp_path), runs=3)
    assert ops == ["QLinearAveragePool"]
    _, _, ops = measure_kernel(quantize_model(build_model(mx, conv_context=True), tmp_path), runs=3)
    assert ops == ["NhwcMaxPool"]
    _, f = features_of(avg, "int8")
    assert f["out_bytes"] == 32 * 14 * 14 and f["window_elems"] == 32 * 14 * 14 * 9


class ScaledAttention(nn.Module):
    """Attention scores two ways: ``(q * s) @ k^T`` (ORT folds the scale and the transpose
    into one FusedMatMul) and a scaled tensor that a second op also reads (not foldable)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k = x, x + 1.0
        a = torch.softmax((q * 0.125) @ k.transpose(-2, -1), dim=-1)
        r = x * 0.5  # read by the matmul and by the add: ORT keeps the Mul
        b = r @ x.transpose(-2, -1).contiguous().transpose(-2, -1).transpose(-2, -1)
        s = x * 0.25  # read by two matmuls only: folded into both, the Mul dropped
        c = s @ x.transpose(-2, -1)
        return a @ x + b @ r + r.sum() + (c @ s) * 2.0


def test_scale_and_transpose_fold_into_the_matmul_as_ort_does(tmp_path):
    import onnx
    import onnxruntime as ort

    from edgecnn.models.resolve import load_graph
    from edgecnn.runtime.export import export_onnx

    path = export_onnx(ScaledAttention().eval(), tmp_path / "a.onnx", (1, 4, 16, 8))
    graph = load_graph(str(path))
    layers = {layer.name: layer for layer in graph.layers}
    # the reference: what ORT's optimizer leaves of the graph
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    opt = onnx.load(str(tmp_path / "opt.onnx"))
    kept = {n.name for n in opt.graph.node}
    fused = [n for n in opt.graph.node if n.op_type == "FusedMatMul"]
    assert fused  # the test means something
    ks = kernels(graph, "fp32")
    in_kernel = {name for k in ks for name in k.layers if name != k.name}
    for name, layer in layers.items():
        if layer.op.name in ("ELEMENTWISE", "TRANSPOSE") and layer.attr("fn") != "add":
            # a scale or transpose is a kernel of its own exactly when ORT kept its node
            own = any(k.name == name for k in ks)
            assert own == (name in kept), name
            assert own != (name in in_kernel), name
    # fp32 only: the int8 graph keeps its quantized Mul
    ks8 = kernels(graph, "int8")
    assert len(ks8) > len(ks)


def test_memory_and_add_fit_absolute_errors_so_a_networks_sum_holds() -> None:
    """Many tiny copies at 0.02 ns/byte and a few large permuting transposes at 0.5 ns/byte
    share the same byte features: a relative-error fit follows the tiny ones and predicts the
    sum (what a network's time is) several times too low; ``fit_models`` fits "memory" on
    absolute errors and gets the sum far closer, while "activation" keeps the relative fit."""
    from edgecnn.runtime.calibrate import ABSOLUTE_FIT_TYPES, Sample, fit_models

    assert {"memory", "add"} <= ABSOLUTE_FIT_TYPES
    assert "activation" not in ABSOLUTE_FIT_TYPES
    rng = np.random.default_rng(0)
    samples = []
    for kind in ("memory", "activation"):
        for i in range(200):
            big = i % 20 == 0
            b = float(rng.uniform(1e6, 4e6) if big else rng.uniform(1e3, 1e5))
            ms = 0.002 + b * (5e-7 if big else 2e-8)
            samples.append(
                Sample(kind, {}, {"in_bytes": b, "out_bytes": b}, ms, 0.0, [], source="network")
            )
    models = fit_models(samples)
    feats = models["memory"].features
    mem = [s for s in samples if s.type == "memory"]
    x = np.array([[s.features.get(f, 0.0) for f in feats] for s in mem])
    y = np.array([s.kernel_ms for s in mem])
    relative = fit_type_model(feats, x, y, relative=True)

    def sum_ratio(model: object, kind: str) -> float:
        rows = [s for s in samples if s.type == kind]
        return sum(model.predict(s.features) for s in rows) / sum(s.kernel_ms for s in rows)

    assert sum_ratio(relative, "memory") < 0.5  # the failure the absolute fit avoids
    assert abs(sum_ratio(models["memory"], "memory") - 1) < 0.4
    assert sum_ratio(models["activation"], "activation") < 0.5  # relative, as before


class Permutes(nn.Module):
    """ConvNeXt's NCHW -> NHWC permute around a linear."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def test_the_predictor_reads_the_graph_ort_runs_with_its_transposes() -> None:
    """``onnx_graph`` (what ``profile --runtime`` and the benchmark predict from) has the two
    permutes as memory kernels of 16 x 8 x 8 fp32 values each way; the PyTorch frontend has no
    layer for them, so a prediction from it would leave out kernels ORT runs."""
    from edgecnn.runtime.export import onnx_graph

    shape = (1, 16, 8, 8)
    torch_kinds = [k.type for k in kernels(graph_from_module(Permutes().eval(), shape), "fp32")]
    assert "memory" not in torch_kinds
    mem = [k for k in kernels(onnx_graph(Permutes().eval(), shape), "fp32") if k.type == "memory"]
    assert len(mem) == 2
    assert all(k.features["in_bytes"] == k.features["out_bytes"] == 16 * 8 * 8 * 4 for k in mem)


def test_speed_factor_scales_every_kernel_and_the_overhead():
    from edgecnn.runtime.anchor import speed_factor

    assert speed_factor(5.0, 6.0) == pytest.approx(1.2)
    assert speed_factor(None, 6.0) == 1.0 and speed_factor(0.0, 6.0) == 1.0  # no anchor
    p, g = _predictor(), _graph()
    base, fast = predict_graph(p, g), predict_graph(p, g, speed=0.8)
    assert fast.latency_ms == pytest.approx(0.8 * base.latency_ms, rel=1e-12)
    assert fast.per_inference_ms == pytest.approx(0.8 * base.per_inference_ms)
    for a, b in zip(base.kernels, fast.kernels, strict=True):
        assert b.latency_ms == pytest.approx(0.8 * a.latency_ms, rel=1e-12)
    assert fast.speed == 0.8 and base.speed == 1.0
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(PredictorError):
            predict_graph(p, g, speed=bad)


def test_the_speed_anchor_runs_the_kernels_it_names():
    """The anchor's two networks are built from their configs (the CNN ends in its classifier's
    width, the token block keeps [1, 197, 384]) and both precisions time as positive ms."""
    import onnxruntime as ort

    from edgecnn.runtime.anchor import ANCHOR_CNN, ANCHOR_TOKENS, AnchorClock
    from edgecnn.runtime.calibrate import _feeds, build_chain

    clock = AnchorClock("fp32")
    t = clock.time_ms(runs=3)
    assert t > 0 and math.isfinite(t)
    cnn = build_chain([dict(c) for c in ANCHOR_CNN])
    sess = ort.InferenceSession(cnn.SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, _feeds(cnn, np.random.default_rng(0)))
    assert y.shape[-1] == ANCHOR_CNN[-1]["n"]
    tok = build_chain([dict(c) for c in ANCHOR_TOKENS])
    assert [d.dim_value for d in tok.graph.output[0].type.tensor_type.shape.dim] == [1, 197, 384]
    assert AnchorClock("int8").time_ms(runs=3) > 0


def test_linear_kernels_count_macs_alike_from_both_frontends(tmp_path):
    """An ONNX MatMul keeps its weight as (in, out), a PyTorch Linear as (out, in): the linear
    kernels' MACs are tokens x in x out from either graph (closed form), as analysis.costs
    counts them."""
    from edgecnn.models.resolve import load_graph
    from edgecnn.runtime.export import export_onnx

    net = nn.Sequential(nn.Linear(16, 64), nn.GELU(), nn.Linear(64, 8)).eval()
    path = export_onnx(net, tmp_path / "mlp.onnx", (1, 5, 16))
    for g in (load_graph(path), graph_from_module(net, (1, 5, 16), name="mlp")):
        macs = sorted(k.features["macs"] for k in kernels(g, "fp32") if k.type == "linear")
        assert macs == [5 * 64 * 8, 5 * 16 * 64]


def test_samples_are_normalised_to_the_calibrations_median_anchor():
    from edgecnn.runtime.calibrate import ANCHOR_EVERY, Sample, normalise_to_anchor

    assert ANCHOR_EVERY == 10
    items = [5, 15, 25]
    samples = [Sample("conv", {}, {}, 1.0, 0.0) for _ in items]
    # timings after items 0, 10, 20, 30, 40: the host 20% faster in the first two
    normalise_to_anchor(samples, items, [10.0, 10.0, 12.0, 12.0, 12.0])
    assert [s.kernel_ms for s in samples] == pytest.approx([1.2, 12 / 11, 1.0])
    assert [s.anchor_scale for s in samples] == pytest.approx([1.2, 12 / 11, 1.0])
    # one outlying timing is smoothed away
    samples = [Sample("conv", {}, {}, 1.0, 0.0) for _ in items]
    normalise_to_anchor(samples, items, [10.0, 10.0, 30.0, 10.0, 10.0])
    assert [s.kernel_ms for s in samples] == pytest.approx([1.0, 1.0, 1.0])


def test_einsum_is_a_matmul_kernel_and_a_reduction_a_norm_kernel():
    """MaxViT's attention Einsums are batched products (matmul kernels with their MACs and
    GEMM count), not data movement; Swin-v2's ReduceL2 of q and k is a reduction read once
    (a norm kernel), not a copy."""
    import onnx
    from onnx import TensorProto, helper

    from edgecnn.graph.from_onnx import graph_from_onnx

    q = helper.make_tensor_value_info("q", TensorProto.FLOAT, [1, 4, 2, 49, 32])
    k = helper.make_tensor_value_info("k", TensorProto.FLOAT, [1, 4, 2, 49, 32])
    s = helper.make_tensor_value_info("s", TensorProto.FLOAT, [1, 4, 2, 49, 49])
    n = helper.make_tensor_value_info("n", TensorProto.FLOAT, [1, 4, 2, 49, 1])
    nodes = [
        helper.make_node("Einsum", ["q", "k"], ["s"], equation="bghid,bghjd->bghij"),
        helper.make_node("ReduceL2", ["q"], ["n"], axes=[-1], keepdims=1),
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "g", [q, k], [s, n]), opset_imports=[helper.make_opsetid("", 17)]
    )
    onnx.checker.check_model(model)
    by_type = {kern.type: kern for kern in kernels(graph_from_onnx(model), "int8")}
    assert set(by_type) == {"matmul", "norm"}
    mm = by_type["matmul"].features
    assert mm["macs"] == 4 * 2 * 49 * 49 * 32
    assert mm["gemms"] == 4 * 2
    assert mm["in_bytes"] == 2 * 4 * 2 * 49 * 32 and mm["out_bytes"] == 4 * 2 * 49 * 49
    assert by_type["norm"].features == {"in_bytes": 4 * 2 * 49 * 32, "out_bytes": 4 * 2 * 49}


class ShuffleUnit(nn.Module):
    """A ShuffleNet v2 downsampling unit's tail (two conv branches, concat, channel shuffle),
    then a conv and ConvNeXt's permute to channels-last."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(8, 16, 1)
        self.b = nn.Conv2d(8, 16, 1)
        self.c = nn.Conv2d(32, 32, 3, padding=1)

    def forward(self, x):
        y = torch.cat([torch.relu(self.a(x)), torch.relu(self.b(x))], 1)
        n, c, h, w = y.shape
        y = y.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
        return self.c(y).permute(0, 2, 3, 1)


def test_int8_transposes_of_nhwc_conv_outputs_are_the_ones_ort_runs(tmp_path):
    """ORT's int8 graph holds conv outputs in NHWC and merges the layout transpose into the
    transposes reading them: the shuffle after a concat of two conv branches becomes a
    gathering (0, 4, 3, 1, 2) of [N, H, W, 2, C/2] and the permute to NHWC after a conv is
    gone. The reference is ORT's own optimized graph; fp32 keeps both transposes as they are."""
    import onnx
    import onnxruntime as ort

    from edgecnn.analysis.latency_predictor import nhwc_storage_perm
    from edgecnn.models.resolve import load_graph
    from edgecnn.runtime.calibrate import quantize_model
    from edgecnn.runtime.export import export_onnx

    path = export_onnx(ShuffleUnit().eval(), tmp_path / "s.onnx", (1, 8, 12, 12))
    graph = load_graph(str(path))
    q = quantize_model(onnx.load(str(path)), tmp_path)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(q.SerializeToString(), so, providers=["CPUExecutionProvider"])
    opt = onnx.load(str(tmp_path / "opt.onnx"))
    perms = {
        n.name: list(next(a.ints for a in n.attribute if a.name == "perm"))
        for n in opt.graph.node
        if n.op_type == "Transpose"
    }
    transposes = [la for la in graph.layers if la.op.name == "TRANSPOSE"]
    shuffle, permute = transposes  # in graph order
    assert perms[shuffle.name] == [0, 4, 3, 1, 2]  # ORT's merged shuffle
    assert permute.name not in perms  # cancelled against the conv's layout
    stored = nhwc_storage_perm((1, 32, 12, 12), shuffle.inputs[0].shape, shuffle.attr("perm"))
    assert stored == ([1, 12, 12, 2, 16], [0, 4, 3, 1, 2])
    k8 = {k.name: k for k in kernels(graph, "int8")}
    k32 = {k.name: k for k in kernels(graph, "fp32")}
    assert k8[shuffle.name].features["strided_bytes"] == 32 * 12 * 12
    assert k32[shuffle.name].features["strided_bytes"] == 0.0
    assert permute.name not in k8 and permute.name in k32


def test_wide_groups_are_dense_conv_kernels_in_fp32_only():
    # RegNetX-16GF's 128-wide groups: fp32 NCHWc runs them per group at the dense conv rate
    kind, f = conv_features(256, 256, 28, 28, 3, 3, 2, 256 * 28 * 28, "fp32", "relu")
    assert kind == "conv"
    assert f["macs"] == 256 * 28 * 28 * 128 * 9
    assert f["weight_bytes"] == 256 * 128 * 9 * 4
    assert f["macs_lowc"] == 0 and f["macs_c4_off"] == 0 and f["sum_bytes"] == 0
    # narrow groups, widths off the 16-channel block, and int8 stay grouped convs
    for cin, groups, precision in ((256, 16, "fp32"), (240, 2, "fp32"), (256, 2, "int8")):
        kind, _ = conv_features(cin, cin, 28, 28, 3, 3, groups, cin * 28 * 28, precision)
        assert kind == "gconv", (cin, groups, precision)
