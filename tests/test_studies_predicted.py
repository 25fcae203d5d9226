"""Predicted (roofline on host) vs measured (ORT) latency: statistics and the command."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import spearmanr

from edgecnn.cli import main
from edgecnn.errors import ConfigError
from edgecnn.studies.predicted import PvmRow, _summary, predicted_vs_measured, spearman


@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=3, max_size=40))
def test_spearman_matches_scipy(pairs):
    x = [float(a) for a, _ in pairs]
    y = [float(b) for _, b in pairs]
    ours = spearman(x, y)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = spearmanr(x, y).statistic
    if np.isnan(ref):
        assert np.isnan(ours)
    else:
        assert ours == pytest.approx(ref, abs=1e-9)


def test_spearman_monotone_is_one():
    x = [1.0, 2.0, 5.0, 9.0]
    assert spearman(x, [v**3 for v in x]) == pytest.approx(1.0)
    assert spearman(x, [-v for v in x]) == pytest.approx(-1.0)


def _ort_int8(src, dst, input_shape):
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    rng = np.random.default_rng(0)
    data = iter([{"input": rng.standard_normal(input_shape).astype(np.float32)} for _ in range(4)])

    class Reader:
        def get_next(self):
            return next(data, None)

    quantize_static(
        str(src),
        str(dst),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )


def test_predicted_vs_measured_small_models():
    res = predicted_vs_measured(
        ["edge-resnet", "edge-mobilenet"],
        precisions=("fp32", "int8"),
        runs=3,
        warmup=1,
        quantize=_ort_int8,
    )
    d = res.to_dict()
    assert d["kind"] == "predicted_vs_measured"
    assert [(r.model, r.precision) for r in res.rows] == [
        ("edge-resnet", "fp32"),
        ("edge-resnet", "int8"),
        ("edge-mobilenet", "fp32"),
        ("edge-mobilenet", "int8"),
    ]
    for r in res.rows:
        assert r.predicted_ms > 0 and r.measured_ms > 0
        assert r.ratio == pytest.approx(r.measured_ms / r.predicted_ms)
        assert r.measured_p90_ms >= r.measured_ms
        assert r.input_shape == [1, 1, 28, 28]
    ratios = sorted(r.measured_ms / r.predicted_ms for r in res.rows)
    assert res.median_ratio == pytest.approx((ratios[1] + ratios[2]) / 2)  # 4 rows
    assert -1.0 <= res.spearman <= 1.0
    assert set(res.by_precision) == {"fp32", "int8"}
    # int8 roofline uses the int8 peak: the prediction is never slower than fp32's
    by = {(r.model, r.precision): r for r in res.rows}
    assert by["edge-resnet", "int8"].predicted_ms <= by["edge-resnet", "fp32"].predicted_ms


def _row(model, predicted, measured):
    ratio = measured / predicted
    return PvmRow(model, "fp32", [1, 3, 8, 8], 1, predicted, measured, measured, ratio, "compute")


def test_summary_on_known_rows():
    rows = [_row("a", 1.0, 3.0), _row("b", 2.0, 1.0), _row("c", 4.0, 5.0)]
    rho, median = _summary(rows)
    # ranks: predicted 1,2,3; measured 2,1,3 -> rho = 1 - 6*(1+1+0)/(3*8) = 0.5
    assert rho == pytest.approx(0.5)
    assert median == pytest.approx(1.25)  # ratios 3.0, 0.5, 1.25


def test_bad_precision_rejected():
    with pytest.raises(ConfigError, match="unknown precision"):
        predicted_vs_measured(["edge-resnet"], precisions=("int4",))


def test_cli_writes_json_and_plot(tmp_path, capsys):
    out = tmp_path / "pvm"
    try:
        main(
            [
                "predicted-vs-measured",
                "edge-resnet",
                "edge-mobilenet",
                "--runs",
                "2",
                "--out",
                str(out),
                "--json",
            ]
        )
    except SystemExit as e:
        assert e.code == 0
    d = json.loads(capsys.readouterr().out)
    assert d == json.loads((out / "predicted_vs_measured.json").read_text())
    assert (out / "predicted_vs_measured.png").read_bytes()[:4] == b"\x89PNG"
    assert len(d["rows"]) == 2


@pytest.mark.parametrize(
    "args, needle",
    [
        (["predicted-vs-measured", "resnet18", "no_such_net"], "unknown model"),
        (["predicted-vs-measured", "edge-resnet", "--out", "nodir/pvm"], "does not exist"),
        (["predicted-vs-measured", "edge-resnet", "--precision", "int4"], "unknown precision"),
    ],
)
def test_cli_bad_input_exits_2_before_measuring(tmp_path, monkeypatch, capsys, args, needle):
    monkeypatch.chdir(tmp_path)
    try:
        main(args)
        code = 0
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and needle in err[0]


def test_default_quantizer_handles_densenet(tmp_path):
    # DenseNet's BN-ReLU-conv layers on concatenated features: ORT's QDQ quantizer used to fail
    # on the compacted graph (KeyError on a removed ReLU's input); it must now give a model ORT
    # loads and runs, with every conv an integer kernel
    import torch
    from torchvision.models import densenet121

    from edgecnn.compress.quantize import int8_conv_report
    from edgecnn.runtime.export import export_onnx
    from edgecnn.runtime.session import input_feeds, make_session
    from edgecnn.studies.predicted import default_quantizer

    torch.manual_seed(0)
    shape = (1, 3, 64, 64)
    src = export_onnx(densenet121().eval(), tmp_path / "fp32.onnx", shape)
    dst = tmp_path / "int8.onnx"
    default_quantizer()(src, dst, shape)
    sess = make_session(dst, threads=1)
    (out,) = sess.run(None, input_feeds(sess))
    assert out.shape == (1, 1000) and np.isfinite(out).all()
    n_int, n_all, _ = int8_conv_report(dst)
    assert n_all == 120 and n_int == n_all
