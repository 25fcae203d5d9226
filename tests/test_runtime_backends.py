"""Runtime backends: every installed runtime reproduces PyTorch within the fp32 tolerance."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from edgecnn.errors import ConfigError
from edgecnn.runtime.backends import (
    BACKENDS,
    RELATIVE_TOLERANCE,
    ConversionError,
    RuntimeNotInstalledError,
    compare_outputs,
    conversion_step,
    require_backend,
)
from edgecnn.runtime.export import export_onnx
from runtime_helpers import tiny_cnn

INSTALLED = [n for n, b in BACKENDS.items() if b.available() is None]


@pytest.fixture(scope="module")
def model_and_onnx(tmp_path_factory):
    d = tmp_path_factory.mktemp("onnx")
    m = tiny_cnn()
    with torch.no_grad():  # non-trivial BN statistics so folding is exercised
        for bn in (m.stem[1], m.dw[1], m.pw[1]):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
    onnx_path = export_onnx(m, d / "tiny.onnx", (1, 1, 28, 28))
    return m, onnx_path


@pytest.mark.parametrize("name", INSTALLED)
def test_backend_matches_torch_fp32(name, model_and_onnx, tmp_path):
    module, onnx_path = model_and_onnx
    b = BACKENDS[name]
    x = torch.randn(1, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    artifact = b.convert(module, x, onnx_path, tmp_path, "fp32")
    assert artifact.is_file() and artifact.parent == tmp_path and artifact.stat().st_size > 0
    run = b.load(artifact, 1)
    with torch.no_grad():
        ref = module(x).numpy()
    got = run(x.numpy())
    check = compare_outputs(got, ref, "fp32")
    assert check.passed, check
    assert check.relative_error < 1e-4  # measured ~1e-7: summation order only
    # a different input gives a different output (the runner is not returning a constant)
    x2 = torch.randn(1, 1, 28, 28, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        ref2 = module(x2).numpy()
    assert compare_outputs(run(x2.numpy()), ref2, "fp32").passed
    assert not np.allclose(ref, ref2)


def test_compare_outputs_rejects_a_wrong_output():
    ref = np.linspace(-1, 1, 10, dtype=np.float32)[None]
    bad = ref.copy()
    bad[0, 3] += 0.01  # 0.5% of the range 2
    check = compare_outputs(bad, ref, "fp32")
    assert not check.passed and check.relative_error == pytest.approx(0.005, rel=1e-3)
    assert check.relative_tolerance == RELATIVE_TOLERANCE["fp32"]
    assert compare_outputs(bad, ref, "int8").passed
    assert not compare_outputs(np.full_like(ref, np.nan), ref, "int8").passed


def test_conversion_failure_is_one_line_naming_runtime_and_step():
    with pytest.raises(ConversionError) as e:
        with conversion_step("tvm", "relax ONNX frontend (from_onnx)"):
            raise NotImplementedError("Operator NonMaxSuppression is not supported\nmore")
    msg = str(e.value)
    assert "\n" not in msg and "'tvm'" in msg and "from_onnx" in msg
    assert "NonMaxSuppression" in msg


def test_missing_runtime_is_reported(monkeypatch):
    monkeypatch.setitem(sys.modules, "tvm", None)  # `import tvm` now raises ImportError
    assert "tvm" in BACKENDS["tvm"].available()
    with pytest.raises(RuntimeNotInstalledError, match=r"runtime 'tvm' is not installed: pip"):
        require_backend("tvm")


def test_int8_refused_where_unsupported():
    for name in ("tvm", "ncnn", "tflite"):
        with pytest.raises(
            ConfigError, match=f"runtime '{name}' does not support --precision int8"
        ):
            BACKENDS[name].check_precision("int8")
    BACKENDS["ort"].check_precision("int8")
    BACKENDS["openvino"].check_precision("int8")
    with pytest.raises(ConfigError, match="unknown runtime"):
        require_backend("tensorrt")
