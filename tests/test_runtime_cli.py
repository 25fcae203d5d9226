"""CLI ``export`` and ``bench``: JSON output, int8/fp32 ratio, exit 2 on bad input."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from cli_helpers import run_cli


class _Reader(CalibrationDataReader):
    def __init__(self, n: int = 8) -> None:
        rng = np.random.default_rng(0)
        self.data = iter(
            [{"input": rng.standard_normal((1, 1, 28, 28)).astype(np.float32)} for _ in range(n)]
        )

    def get_next(self):
        return next(self.data, None)


@pytest.fixture(scope="module")
def fp32_and_int8(tmp_path_factory):
    from edgecnn.models import resolve_model
    from edgecnn.runtime.export import export_onnx

    d = tmp_path_factory.mktemp("m")
    torch.manual_seed(0)
    rm = resolve_model("edge-resnet")
    fp32 = export_onnx(rm.module, d / "fp32.onnx", rm.input_shape)
    int8 = d / "int8.onnx"
    quantize_static(
        str(fp32),
        str(int8),
        _Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    return fp32, int8


def test_export_json_and_file(tmp_path, capsys):
    out = tmp_path / "m.onnx"
    code, stdout, _ = run_cli(["export", "edge-mobilenet", "--out", str(out), "--json"], capsys)
    assert code == 0
    d = json.loads(stdout)
    assert d["kind"] == "export" and d["input_shape"] == [1, 1, 28, 28]
    assert d["size_bytes"] == out.stat().st_size
    onnx.checker.check_model(onnx.load(out))


def test_bench_int8_vs_fp32_interleaved(fp32_and_int8, capsys):
    fp32, int8 = fp32_and_int8
    code, stdout, _ = run_cli(
        ["bench", str(int8), "--baseline", str(fp32), "--runs", "15", "--warmup", "2", "--json"],
        capsys,
    )
    assert code == 0
    d = json.loads(stdout)
    assert d["kind"] == "bench" and d["precision"] == "int8" and d["baseline_precision"] == "fp32"
    ort, base = d["latency"]["ort"], d["latency"]["baseline"]
    assert ort["runs"] == base["runs"] == 15
    for s in (ort, base):
        assert s["min_ms"] <= s["median_ms"] <= s["p90_ms"] <= s["p99_ms"] <= s["max_ms"]
    assert d["speed_ratio_vs_baseline"] == pytest.approx(base["median_ms"] / ort["median_ms"])
    assert d["peak_rss_bytes"] > 0 and d["load_time_s"] > 0
    assert d["environment"]["onnxruntime"]


def test_bench_pytorch_source_interleaves_torch(capsys):
    code, stdout, _ = run_cli(
        ["bench", "edge-resnet", "--batch", "2", "--runs", "5", "--json"], capsys
    )
    assert code == 0
    d = json.loads(stdout)
    assert d["source"] == "pytorch" and d["input_shape"] == [2, 1, 28, 28]
    assert set(d["latency"]) == {"ort", "torch"}
    assert d["latency"]["ort"]["throughput_per_s"] == pytest.approx(
        2e3 / d["latency"]["ort"]["median_ms"]
    )


@pytest.mark.parametrize(
    "args, needle",
    [
        (["bench", "missing.onnx"], "does not exist"),
        (["bench", "no_such_model_xyz"], "unknown model"),
        (["export", "edge-resnet", "--out", "nodir/x.onnx"], "does not exist"),
        (["export", "edge-resnet", "--out", "x.onnx", "--input-shape", "1xAx3"], "malformed"),
        (["bench", "edge-resnet", "--baseline", "b.onnx"], "--baseline"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, monkeypatch, capsys, args, needle):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(args, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgecnn: error:") and needle in lines[0]


def test_bench_truncated_onnx_exits_2(fp32_and_int8, tmp_path, capsys):
    fp32, _ = fp32_and_int8
    bad = tmp_path / "trunc.onnx"
    bad.write_bytes(fp32.read_bytes()[:500])
    code, _, err = run_cli(["bench", str(bad)], capsys)
    assert code == 2 and "truncated" in err


def test_bench_fixed_batch_mismatch(fp32_and_int8, capsys):
    fp32, _ = fp32_and_int8
    code, _, err = run_cli(["bench", str(fp32), "--batch", "4"], capsys)
    assert code == 2 and "fixed batch of 1" in err


def test_help_has_example(capsys):
    for cmd in ("export", "bench"):
        code, out, _ = run_cli([cmd, "--help"], capsys)
        assert code == 0 and "Example: edgecnn " + cmd in out


def test_bench_and_export_checkpoint(tmp_path, capsys):
    from edgecnn.models.checkpoint import save_checkpoint
    from edgecnn.models.edge import build_edge_model

    torch.manual_seed(0)
    ckpt = save_checkpoint(build_edge_model("edge-mobilenet"), tmp_path / "m.pt", "edge-mobilenet")
    code, stdout, _ = run_cli(
        ["bench", str(ckpt), "--runs", "2", "--warmup", "0", "--json"], capsys
    )
    assert code == 0
    d = json.loads(stdout)
    assert d["model"] == "edge-mobilenet" and d["input_shape"] == [1, 1, 28, 28]
    code, stdout, _ = run_cli(
        ["export", str(ckpt), "--out", str(tmp_path / "m.onnx"), "--opset", "13", "--json"], capsys
    )
    assert code == 0 and json.loads(stdout)["opset"] == 13
    assert onnx.load(tmp_path / "m.onnx").opset_import[0].version == 13


@pytest.mark.parametrize(
    "args",
    [
        ["export", "edge-resnet", "--out", "x.onnx"],
        ["bench", "edge-resnet", "--runs", "1"],
        ["bench", "edge-resnet", "--batch", "64", "--runs", "1"],
    ],
)
def test_not_enough_memory_is_refused_before_allocating(args, tmp_path, monkeypatch, capsys):
    """The estimate (2 x (weights + peak activations) from the meta-device analysis) is checked
    against the available memory before any real tensor is allocated."""
    import edgecnn.runtime.memory as memory

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 1000)
    code, out, err = run_cli(args, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert "of memory but only" in lines[0] and "1,000 bytes" in lines[0] and "--" in lines[0]
    assert out == "" and not list(tmp_path.iterdir())


def test_bench_onnx_memory_check_uses_the_batch(fp32_and_int8, monkeypatch, capsys):
    import edgecnn.runtime.memory as memory
    from edgecnn.graph.from_onnx import graph_from_onnx

    fp32, _ = fp32_and_int8
    need = memory.graph_memory_bytes(graph_from_onnx(fp32), copies=1)
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: need - 1)
    code, _, err = run_cli(["bench", str(fp32), "--runs", "1"], capsys)
    assert code == 2 and f"{need:,} bytes" in err and "--batch" in err


def test_model_memory_estimate_is_weights_plus_peak_activations():
    from edgecnn.analysis import profile
    from edgecnn.models import load_graph, resolve_model
    from edgecnn.runtime.memory import model_memory_bytes

    rm = resolve_model("edge-resnet", (4, 1, 28, 28))
    t = profile(load_graph("edge-resnet", (4, 1, 28, 28))).totals
    assert model_memory_bytes(rm.module, rm.input_shape) == 2 * (
        t.weight_bytes + t.peak_activation_bytes
    )
    assert all(p.device.type == "cpu" for p in rm.module.parameters())  # nothing moved to meta


@pytest.mark.parametrize("command", [["bench"], ["export", "--out", "x.onnx"], ["profile"]])
@pytest.mark.parametrize("name", ["a_dir.onnx", "a_dir.ONNX", "ck.pt"])
def test_a_directory_named_like_a_model_says_so(command, name, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).mkdir()
    cmd, *rest = command
    code, _, err = run_cli([cmd, name, *rest], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "is a directory" in lines[0], err


def test_upper_case_onnx_suffix_is_an_onnx_file(fp32_and_int8, tmp_path, capsys):
    import shutil

    up = tmp_path / "MODEL.ONNX"
    shutil.copyfile(fp32_and_int8[0], up)
    code, out, err = run_cli(["bench", str(up), "--runs", "2", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["source"] == "onnx"
    code, out, err = run_cli(["profile", str(up), "--json"], capsys)
    assert code == 0 and json.loads(out)["totals"]["params"] > 0, err


def test_bench_baseline_memory_adds_to_the_models(fp32_and_int8, monkeypatch, capsys):
    """Both sessions are loaded at once: each fits alone, together they do not."""
    import edgecnn.runtime.memory as memory
    from edgecnn.graph.from_onnx import graph_from_onnx

    fp32, int8 = fp32_and_int8
    a, b = (memory.graph_memory_bytes(graph_from_onnx(p), copies=1) for p in (int8, fp32))
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: a + b - 1)
    code, _, err = run_cli(["bench", str(int8), "--baseline", str(fp32), "--runs", "1"], capsys)
    assert code == 2 and f"{a + b:,} bytes" in err and "fp32.onnx" in err
