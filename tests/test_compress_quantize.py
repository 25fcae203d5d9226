"""Tests of INT8/FP16 quantization through ONNX Runtime (accuracy, size, integer-kernel fusion)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from compress_helpers import mnist, trained
from edgecnn.compress.fold import fold_batchnorm
from edgecnn.compress.quantize import (
    QuantConfig,
    compact_onnx,
    convert_fp16,
    int8_conv_report,
    mse_optimal_range,
    onnx_accuracy,
    quantize_dynamic_onnx,
    quantize_int8,
)
from edgecnn.errors import ConfigError
from edgecnn.runtime.export import export_onnx_bytes


@pytest.fixture(scope="module")
def fp32_resnet(tmp_path_factory):
    folded, _ = fold_batchnorm(trained("edge-resnet"))
    p = tmp_path_factory.mktemp("q") / "fp32.onnx"
    p.write_bytes(
        compact_onnx(
            onnx.load_from_string(export_onnx_bytes(folded, (1, 1, 28, 28)))
        ).SerializeToString()
    )
    d = mnist()
    return p, onnx_accuracy(p, d.x_test, d.y_test)


def test_u8s8_ptq_all_convs_integer_small_drop_and_smaller(fp32_resnet, tmp_path):
    src, acc32 = fp32_resnet
    d = mnist()
    r = quantize_int8(src, tmp_path / "q.onnx", d.x_calib)
    assert r.int8_conv_fraction == 1.0 and r.total_convs == 10 and not r.warnings
    assert r.optimized_ops.get("QLinearConv", 0) == 10
    acc8 = onnx_accuracy(tmp_path / "q.onnx", d.x_test, d.y_test)
    assert acc32 - acc8 <= 0.005
    assert src.stat().st_size / r.size_bytes >= 3.5


def test_s8s8_leaves_float_convs_and_warns(fp32_resnet, tmp_path):
    src, _ = fp32_resnet
    with pytest.warns(UserWarning, match="integer kernels"):
        r = quantize_int8(
            src, tmp_path / "q.onnx", mnist().x_calib[:50], QuantConfig(activation_type="int8")
        )
    assert r.int8_conv_fraction < 1.0 and r.warnings


@pytest.mark.parametrize("method", ["percentile", "entropy", "mse"])
def test_calibration_methods_keep_accuracy(fp32_resnet, tmp_path, method):
    src, acc32 = fp32_resnet
    d = mnist()
    r = quantize_int8(src, tmp_path / "q.onnx", d.x_calib[:100], QuantConfig(calibration=method))
    assert r.int8_conv_fraction == 1.0
    assert acc32 - onnx_accuracy(tmp_path / "q.onnx", d.x_test, d.y_test) <= 0.01


def test_distribution_calibration_refused_with_reason():
    with pytest.raises(ConfigError, match="float8"):
        QuantConfig(calibration="distribution")


def test_mse_range_beats_minmax_on_heavy_tails():
    v = np.random.default_rng(0).laplace(size=100_000)

    def mse(lo, hi):
        scale = (hi - lo) / 255
        zp = np.round(-lo / scale)
        q = np.clip(np.round(v / scale) + zp, 0, 255)
        return np.mean((v - (q - zp) * scale) ** 2)

    lo, hi = mse_optimal_range(v, unsigned=True)
    assert v.min() < lo < 0 < hi < v.max()
    assert mse(lo, hi) < 0.9 * mse(v.min(), v.max())
    # independent brute force over a much finer grid: the search is within 5% of its optimum
    fine = min(mse(v.min() * a, v.max() * a) for a in np.linspace(0.02, 1.0, 500))
    assert mse(lo, hi) <= 1.05 * fine


def test_fp16_halves_size_same_accuracy(fp32_resnet, tmp_path):
    src, acc32 = fp32_resnet
    d = mnist()
    out = convert_fp16(src, tmp_path / "h.onnx")
    assert out.stat().st_size < 0.6 * src.stat().st_size
    assert abs(onnx_accuracy(out, d.x_test, d.y_test) - acc32) <= 0.002


def test_dynamic_quantization_never_touches_convs_by_default(fp32_resnet, tmp_path):
    src, _ = fp32_resnet
    out = quantize_dynamic_onnx(src, tmp_path / "dyn.onnx")
    n_int, n_all, census = int8_conv_report(out)
    assert n_all == 10 and n_int == 0 and "ConvInteger" not in census
