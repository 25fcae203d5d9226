"""``edgecnn demo`` end to end on a short training budget: outputs, consistency, rendering."""

from __future__ import annotations

import json

import pytest

from edgecnn.cli import main
from edgecnn.report.browser import check_rendering
from edgecnn.report.kinds import load_results


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("d") / "edgecnn-demo"
    try:
        main(
            ["demo", "--out", str(out), "--epochs", "2", "--threads", "1", "--runs", "5", "--json"]
        )
    except SystemExit as e:
        assert e.code == 0
    return out


def test_demo_outputs(demo_run, capsys):
    out = demo_run
    for name in (
        "model.pt",
        "profile.json",
        "bench.json",
        "demo.json",
        "compress/report.json",
        "report.html",
    ):
        assert (out / name).is_file(), name
    demo = json.loads((out / "demo.json").read_text())
    rows = demo["stages"]
    stages = {s["stage"]: s for s in rows}
    assert rows[0]["stage"] == "fp32" and rows[-1]["stage"] == "int8"
    fp32, int8 = stages["fp32"], stages["int8"]
    assert fp32["accuracy"] > 0.8  # two epochs on MNIST-5k
    before_int8 = rows[-2]  # the same network in FP32
    assert abs(int8["accuracy"] - before_int8["accuracy"]) <= 0.02
    assert int8["macs"] == before_int8["macs"]
    assert int8["size_bytes"] * 3 < before_int8["size_bytes"]
    assert [r["stage"] for r in rows] == ["fp32", "prune", "distill", "folded", "int8"]
    # folding changes neither outputs nor MACs
    i = [r["stage"] for r in rows].index("folded")
    assert abs(rows[i]["accuracy"] - rows[i - 1]["accuracy"]) <= 0.002
    assert rows[i]["macs"] == rows[i - 1]["macs"]
    # structured pruning to about half the MACs
    assert stages["prune"]["macs"] < 0.6 * fp32["macs"]
    for s in demo["stages"]:
        assert s["size_bytes"] == (out / s["onnx"]).stat().st_size
        assert s["sim_cycles"] > 0 and s["latency_ms"] > 0
        sim = json.loads((out / f"simulate-{s['stage']}.json").read_text())
        assert (
            s["sim_cycles"]
            == sim["totals"]["cycles"]
            == sum(lay["cycles"] for lay in sim["layers"])
        )
    bench = json.loads((out / "bench.json").read_text())
    assert bench["precision"] == "int8" and bench["baseline_precision"] == "fp32"
    assert demo["int8_speed_ratio"] == pytest.approx(bench["speed_ratio_vs_baseline"])
    # one interleaved measurement: the summary, the compression report and the INT8 benchmark
    # show the same medians, and each stage was timed exactly --runs times
    report = json.loads((out / "compress" / "report.json").read_text())
    assert [st["latency_ms"] for st in report["steps"]] == [r["latency_ms"] for r in rows]
    assert bench["latency"]["ort"]["median_ms"] == rows[-1]["latency_ms"]
    assert bench["latency"]["baseline"]["median_ms"] == rows[-2]["latency_ms"]
    assert bench["latency"]["ort"]["runs"] == bench["runs"] == 5
    assert demo["int8_speed_ratio"] == pytest.approx(
        rows[-2]["latency_ms"] / rows[-1]["latency_ms"]
    )
    # every JSON the demo writes is a results file the report command accepts
    kinds = {
        r["kind"]
        for r in load_results(sorted(out.glob("*.json")) + [out / "compress" / "report.json"])
    }
    assert {"demo", "profile", "simulate", "bench", "compress"} <= kinds
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_demo_report_renders(demo_run):
    check = check_rendering(demo_run / "report.html")
    assert len(check.images) >= 5 and check.broken_images == []
    assert check.console_errors == [] and check.network_requests == []


def test_demo_bad_out_exits_2(tmp_path, capsys):
    try:
        main(["demo", "--out", str(tmp_path / "missing" / "demo"), "--epochs", "1"])
        code = 0
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "does not exist" in err[0]
    assert not (tmp_path / "missing").exists()


def test_demo_bad_recipe_fails_before_training(tmp_path, capsys, monkeypatch):
    import edgecnn.models.edge as edge

    def no_training(*_a, **_k):
        raise AssertionError("trained before validating the recipe")

    monkeypatch.setattr(edge, "train_model", no_training)
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps:\n  - step: distill\n    temperature: .nan\n")
    try:
        main(["demo", "--out", str(tmp_path / "d"), "--recipe", str(bad)])
        code = 0
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "temperature" in err[0]
    assert not (tmp_path / "d").exists()
