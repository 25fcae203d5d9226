"""The HTML report: kinds detected, bad files rejected, and the page renders in headless Chromium."""

from __future__ import annotations

import contextlib
import io
import json
import re

import pytest

from cli_helpers import run_cli
from edgecnn.cli import main
from edgecnn.errors import EdgecnnError
from edgecnn.report.browser import check_rendering
from edgecnn.report.html import render_report, write_report
from edgecnn.report.kinds import load_results
from edgecnn.schema import detect_kind

RECIPE = """
description: fold + mixed-precision INT8 (sensitivity and SQNR details)
steps:
  - step: fold
  - step: quantize
    calib_samples: 32
    max_drop: 50.0
"""

SPACE = """
base: seed-chip
objective: latency
sweep:
  array: [8x8, 16x16]
  dataflow: [os, ws]
"""


def _cli_json(args):
    """The JSON ``edgecnn ARGS --json`` prints (fails on a non-zero exit)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([*args, "--json"])
            code = 0
        except SystemExit as e:
            code = e.code
    assert code == 0, (args, err.getvalue())
    return json.loads(out.getvalue())


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """What the commands print with --json, written to files as a user would."""
    d = tmp_path_factory.mktemp("results")
    (d / "recipe.yaml").write_text(RECIPE)
    (d / "space.yaml").write_text(SPACE)
    commands = {
        "profile": ["profile", "edge-resnet", "--device", "host"],
        "simulate": ["simulate", "edge-resnet", "--accel", "seed-chip"],
        "bench": ["bench", "edge-resnet", "--runs", "5", "--warmup", "1"],
        "compress": [
            "compress",
            "edge-resnet",
            "--recipe",
            str(d / "recipe.yaml"),
            "--data",
            "mnist",
            "--out",
            str(d / "compressed"),
        ],
        "casestudy": ["casestudy", "edge-resnet"],
        "zoo": ["zoo", "--out", str(d / "zoo")],
        "kernels_compare": ["kernels", "compare", "--layer", "14x14x16x16k3"],
        "explore": [
            "explore",
            "edge-resnet",
            "--space",
            str(d / "space.yaml"),
            "--workers",
            "1",
            "--out",
            str(d / "explore.jsonl"),
        ],
    }
    files = {}
    for kind, args in commands.items():
        files[kind] = d / f"{kind}.json"
        files[kind].write_text(json.dumps(_cli_json(args)))
    return files


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


def _section(page: str, anchor: str) -> str:
    start = page.index(f'<section id="{anchor}"')
    return page[start : page.index("</section>", start)]


def test_sections_show_each_results_details(results):
    page = render_report(load_results(list(results.values())))
    compress = _section(page, "compress-0")
    # the quantize step's details: SQNR through depth and per-layer sensitivity plots
    assert 'alt="quantize SQNR through depth"' in compress
    assert 'alt="quantize sensitivity"' in compress
    case = _section(page, "casestudy-0")
    assert "Claims" in case and "+ Winograd 3x3" in case and "<img " in case
    assert '<section id="compress-1"' not in page  # the case study is not a compression
    zoo = _section(page, "zoo-0")
    assert "mobilenet_v2" in zoo and "efficientnet_b0" in zoo
    kern = _section(page, "kernels_compare")
    assert "winograd" in kern.lower() and "im2col" in kern.lower()
    assert page.count("<h2>Environment</h2>") == 1
    explore = _section(page, "explore-0")  # the Pareto table names the design parameters
    assert "<th>array</th>" in explore and "<th>dataflow</th>" in explore


def test_malformed_values_are_one_line_errors():
    bad = {
        "kind": "profile",
        "model": "m",
        "input_shape": [1],
        "precision": "fp32",
        "layers": [],
        "totals": ["not", "a", "dict"],
    }
    with pytest.raises(EdgecnnError, match="malformed value"):
        render_report([bad])


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
    with pytest.raises(EdgecnnError, match="lacks .*'totals'"):
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
        ([str(partial)], "'layers'"),
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
        {
            "params": {"array": f"{r}x{r}"},
            "latency_s": 1.0 / r,
            "energy_j": 1e-3 * r,
            "area_mm2": 0.1 * r * r,
        }
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
    assert "<th>array</th>" in page and "16x16" in page


def test_nan_never_reaches_a_report(results, tmp_path):
    obj = json.loads(results["profile"].read_text())
    obj["totals"]["latency_s"] = float("nan")
    with pytest.raises(EdgecnnError, match=r"non-finite number at totals\.latency_s"):
        render_report([obj])
    path = tmp_path / "nan.json"
    path.write_text(json.dumps(obj))  # Python writes NaN, which strict JSON does not allow
    with pytest.raises(EdgecnnError, match="NaN"):
        load_results([path])
