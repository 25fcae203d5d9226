"""Deploy and multi-runtime bench: INT8 agrees with fp32 on MNIST, CLI output and errors."""

from __future__ import annotations

import json
import sys

import pytest

from cli_helpers import run_cli
from edgecnn.runtime.backends import BACKENDS
from edgecnn.studies.deploy import run_deploy
from runtime_helpers import trained_tiny_cnn

INSTALLED = [n for n, b in BACKENDS.items() if b.available() is None]


@pytest.fixture(scope="module")
def mnist():
    from edgecnn.data.loaders import load_mnist5k_splits

    return load_mnist5k_splits()


@pytest.fixture(scope="module")
def trained(mnist):
    return trained_tiny_cnn(mnist)


@pytest.mark.parametrize("runtime", [r for r in ("ort", "openvino") if r in INSTALLED])
def test_int8_deploy_agrees_with_fp32_on_mnist(runtime, trained, mnist, tmp_path):
    res = run_deploy(
        trained,
        runtime,
        tmp_path,
        precision="int8",
        data=mnist,
        input_shape=(1, 1, 28, 28),
        runs=3,
        warmup=1,
        calib_samples=100,
        eval_samples=300,
    )
    ev = res.int8_eval
    assert ev["samples"] == 300 and ev["data"] == "mnist5k"
    assert ev["torch_fp32_top1"] > 0.8  # the model learnt something: the comparison means something
    assert abs(ev["runtime_top1"] - ev["torch_fp32_top1"]) <= 0.03
    assert ev["top1_agreement"] >= 0.95
    assert res.check.passed and res.check.input.startswith("mnist5k test image")
    assert (tmp_path / res.artifact).is_file()
    assert set(res.artifacts) == {p.name for p in tmp_path.iterdir()}
    if runtime == "ort":
        assert res.int8_kernels["ort_integer_convs"] == res.int8_kernels["ort_total_convs"] == 4
    else:
        assert res.int8_kernels["openvino_8bit_convs"] == 4  # every conv really runs in 8 bits
    d = res.to_dict()
    assert d["kind"] == "deploy" and d["latency"]["median_ms"] > 0


def test_deploy_cli_writes_dir_and_json(tmp_path, capsys):
    out = tmp_path / "ort-fp32"
    code, stdout, err = run_cli(
        ["deploy", "edge-resnet", "--runtime", "ort", "--out", str(out), "--runs", "3", "--json"],
        capsys,
    )
    assert code == 0, err
    d = json.loads(stdout)
    assert d["kind"] == "deploy" and d["runtime"] == "ort" and d["precision"] == "fp32"
    assert json.loads((out / "deploy.json").read_text()) == d
    assert (out / d["artifact"]).stat().st_size == d["artifacts"][d["artifact"]]
    assert d["check"]["passed"] and d["check"]["relative_error"] < 1e-4
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dir left
    from edgecnn.report.html import render_report
    from edgecnn.report.kinds import load_results

    page = render_report(load_results([out / "deploy.json"]))
    assert "Deployment (runtime conversions)" in page and d["artifact"] in page


def test_deploy_missing_runtime_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tvm", None)
    out = tmp_path / "d"
    code, stdout, err = run_cli(
        ["deploy", "edge-resnet", "--runtime", "tvm", "--out", str(out)], capsys
    )
    assert code == 2 and stdout == ""
    assert err.strip().splitlines() == [
        "edgecnn: error: runtime 'tvm' is not installed: pip install -e '.[runtimes]'"
    ]
    assert not out.exists()


@pytest.mark.parametrize("runtime", ["tvm", "ncnn"])
def test_deploy_int8_refused_on_unsupported_runtime(runtime, tmp_path, capsys):
    out = tmp_path / "d"
    code, _, err = run_cli(
        ["deploy", "edge-resnet", "--runtime", runtime, "--precision", "int8", "--out", str(out)],
        capsys,
    )
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"runtime '{runtime}'" in lines[0] and "fp32" in lines[0]
    assert not out.exists()


def test_bench_runtime_all_lists_every_installed_runtime(capsys):
    code, stdout, err = run_cli(
        [
            "bench",
            "runtime_helpers:tiny_cnn",
            "--input-shape",
            "1x1x28x28",
            "--runtime",
            "all",
            "--threads",
            "1",
            "--runs",
            "3",
            "--warmup",
            "1",
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    d = json.loads(stdout)
    assert d["kind"] == "runtime_bench" and d["thread_counts"] == [1]
    assert sorted(d["runtimes"]) == sorted(INSTALLED) and d["skipped"] == []
    per = d["latency"]["1"]
    assert set(per) == set(INSTALLED)
    assert all(s["median_ms"] > 0 and s["runs"] == 3 for s in per.values())
    assert d["fastest"]["1"] == min(per, key=lambda n: per[n]["median_ms"])
    assert all(c["passed"] for c in d["checks"].values())


def test_bench_runtime_all_skips_missing_runtimes(capsys, monkeypatch):
    for mod in ("openvino", "litert_torch", "ncnn", "tvm"):
        monkeypatch.setitem(sys.modules, mod, None)
    code, stdout, err = run_cli(
        ["bench", "edge-resnet", "--runtime", "all", "--threads", "1", "--threads", "2"]
        + ["--runs", "2", "--warmup", "0", "--json"],
        capsys,
    )
    assert code == 0, err
    d = json.loads(stdout)
    assert d["runtimes"] == ["ort"] and d["fastest"] == {"1": "ort", "2": "ort"}
    skipped = {s["runtime"]: s["reason"] for s in d["skipped"]}
    assert set(skipped) == {"openvino", "tflite", "ncnn", "tvm"}
    assert all("pip install -e '.[runtimes]'" in r for r in skipped.values())
    from edgecnn.report.html import render_report
    from edgecnn.report.kinds import validate

    page = render_report([validate(d, "bench --runtime all")])
    assert "Measured latency across runtimes" in page and "skipped tvm" in page


def test_every_kind_has_a_report_section():
    from edgecnn.report.kinds import SECTIONS
    from edgecnn.schema import REQUIRED_KEYS, ResultKind

    assert set(SECTIONS) == set(ResultKind) == set(REQUIRED_KEYS)


def test_bench_named_missing_runtime_is_one_line(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tvm", None)
    code, _, err = run_cli(["bench", "edge-resnet", "--runtime", "ort,tvm"], capsys)
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines() == [
        "edgecnn: error: runtime 'tvm' is not installed: pip install -e '.[runtimes]'"
    ]


def test_bench_several_threads_without_runtime_refused(capsys):
    code, _, err = run_cli(["bench", "edge-resnet", "--threads", "1", "--threads", "2"], capsys)
    assert code == 2 and "--runtime" in err
