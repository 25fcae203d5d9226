"""The HTML report: kinds detected, bad files rejected, and the page renders in headless Chromium."""

from __future__ import annotations

import json
import re

import pytest

from cli_helpers import run_cli
from edgecnn.errors import EdgecnnError
from edgecnn.report.browser import check_rendering
from edgecnn.report.html import render_report, write_report
from edgecnn.report.kinds import detect_kind, load_results


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Real results of the small built-in model from each producer, as their JSON files."""
    import torch

    from edgecnn.analysis import profile
    from edgecnn.hardware.config import load_preset
    from edgecnn.hardware.simulate import simulate
    from edgecnn.models import load_graph, resolve_model
    from edgecnn.runtime.benchmark import bench_onnx
    from edgecnn.runtime.export import export_onnx

    d = tmp_path_factory.mktemp("results")
    torch.manual_seed(0)
    rm = resolve_model("edge-resnet")
    graph = load_graph(rm.module, input_shape=rm.input_shape)
    prof = profile(graph, device="host").to_dict()
    sim = simulate(graph, load_preset("seed-chip")).to_dict()
    onnx_path = export_onnx(rm.module, d / "m.onnx", rm.input_shape)
    bench = bench_onnx(onnx_path, runs=5, warmup=1, baseline=onnx_path).to_dict()
    base = {"accuracy": 0.98, "macs": prof["totals"]["macs"], "params": prof["totals"]["params"]}
    compress = {
        "steps": [
            {"step": "input", **base, "size_bytes": 100_000, "latency_ms": 0.5},
            {"step": "fold_bn", **base, "size_bytes": 98_000, "latency_ms": 0.45},
            {
                "step": "int8",
                **base,
                "accuracy": 0.978,
                "size_bytes": 27_000,
                "latency_ms": 0.3,
                "int8_conv_fraction": 1.0,
                "sqnr_db": {"conv1": 40.0, "layer1": 35.5, "fc": 30.2},
            },
        ]
    }
    files = {}
    for name, obj in {
        "profile": prof,
        "simulate": sim,
        "bench": bench,
        "compress": compress,
    }.items():
        files[name] = d / f"{name}.json"
        files[name].write_text(json.dumps(obj))
    return files


def test_kinds_detected_from_keys_and_field(results):
    for name, path in results.items():
        obj = json.loads(path.read_text())
        assert detect_kind(obj) == name
        obj.pop("kind", None)
        assert detect_kind(obj) == name  # key-based detection without the "kind" field
    assert detect_kind({"kind": "nonsense"}) is None
    assert detect_kind([1, 2]) is None


def test_report_renders_in_chromium(results, tmp_path):
    out = tmp_path / "report.html"
    items = load_results(list(results.values()))
    write_report(items, out)
    text = out.read_text()
    # self-contained: no external URLs in src/href attributes
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", text)
    n_imgs = text.count("<img ")
    assert (
        n_imgs >= 7
    )  # compute/traffic, roofline, cycles, energy, compression steps, SQNR, latency
    sort_js = (
        "(() => { const t = document.querySelector('#profile-0 table.sortable');"
        " const col = Array.from(t.tHead.rows[0].cells).findIndex(c => c.textContent.startsWith('MACs'));"
        " t.tHead.rows[0].cells[col].click(); t.tHead.rows[0].cells[col].click();"
        " return Array.from(t.tBodies[0].rows).map(r => parseFloat(r.cells[col].dataset.v)); })()"
    )
    check = check_rendering(out, script=sort_js)
    assert check.title == "edgecnn report"
    assert len(check.images) == n_imgs
    assert check.broken_images == []
    assert all(i["width"] > 100 and i["height"] > 100 for i in check.images)
    assert check.console_errors == []
    assert check.network_requests == []
    assert check.screenshot_png[:8] == b"\x89PNG\r\n\x1a\n" and len(check.screenshot_png) > 20_000
    (tmp_path / "report.png").write_bytes(check.screenshot_png)
    macs = check.script_result
    assert len(macs) > 5 and macs == sorted(macs, reverse=True)  # second click sorts descending


def test_browser_check_catches_broken_page(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<html><head><title>bad</title></head><body>"
        '<img alt="broken" src="data:image/png;base64,iVBORw0KGgoAAAA">'
        '<img alt="remote" src="http://127.0.0.1:9/x.png">'
        "<script>console.error('boom');</script></body></html>"
    )
    check = check_rendering(bad)
    assert {i["alt"] for i in check.broken_images} == {"broken", "remote"}
    assert any("boom" in e for e in check.console_errors)
    assert any("127.0.0.1:9" in u for u in check.network_requests)


def test_render_rejects_unknown_results():
    with pytest.raises(EdgecnnError, match="not an edgecnn results file"):
        render_report([{"hello": 1}])
    with pytest.raises(EdgecnnError, match="lacks 'totals'"):
        render_report([{"kind": "profile", "model": "x", "layers": []}])


def test_report_cli_json_and_errors(results, tmp_path, capsys):
    out = tmp_path / "r.html"
    code, stdout, _ = run_cli(
        ["report", str(results["bench"]), str(results["compress"]), "--out", str(out), "--json"],
        capsys,
    )
    assert code == 0
    d = json.loads(stdout)
    assert d["kinds"] == ["bench", "compress"] and d["size_bytes"] == out.stat().st_size

    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"kind": "nonsense", "x": 1}))
    garbage = tmp_path / "garbage.json"
    garbage.write_bytes(b"\x00\xffnot json")
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"kind": "simulate", "model": "m"}))
    cases = [
        ([str(wrong)], "not an edgecnn results file"),
        ([str(garbage)], "cannot read results file"),
        ([str(tmp_path / "missing.json")], "does not exist"),
        ([str(partial)], "lacks 'layers'"),
        ([str(results["bench"]), "--out", str(tmp_path / "nodir" / "r.html")], "does not exist"),
    ]
    for args, needle in cases:
        args = (
            ["report", *args]
            if "--out" in args
            else ["report", *args, "--out", str(tmp_path / "x.html")]
        )
        code, _, err = run_cli(args, capsys)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and needle in lines[0], (args, err)
    assert not (tmp_path / "x.html").exists()


def test_report_help_has_example(capsys):
    code, out, _ = run_cli(["report", "--help"], capsys)
    assert code == 0 and "Example: edgecnn report" in out


def test_explore_front_rendered():
    front = [
        {"rows": r, "cols": r, "latency_s": 1.0 / r, "energy_j": 1e-3 * r, "area_mm2": 0.1 * r * r}
        for r in (8, 16, 32)
    ]
    obj = {
        "out": "x.jsonl",
        "points": 12,
        "computed": 12,
        "skipped": 0,
        "errors": 0,
        "pareto_front": front,
    }
    assert detect_kind(obj) == "explore"
    page = render_report([obj])
    assert page.count("<img ") == 1
    assert "12 design points evaluated, 3 Pareto-optimal" in page
