"""The ``edgecnn kernels`` commands: JSON output consistent with the API, clear errors."""

from __future__ import annotations

import json

from cli_helpers import run_cli as run
from edgecnn.kernels.compare import parse_layer
from edgecnn.kernels.counts import algorithm_cost
from edgecnn.kernels.im2col import im2col_buffer_elems


def test_compare_json_matches_closed_forms(capsys):
    code, out, _ = run(["kernels", "compare", "--layer", "12x10x8x6k3b2", "--json"], capsys)
    assert code == 0
    d = json.loads(out)
    s = parse_layer("12x10x8x6k3b2")
    assert d["macs"] == s.macs == 2 * 6 * 12 * 10 * 8 * 9
    assert d["layer"]["pad_top"] == 1 and d["layer"]["out_h"] == 12
    rows = {r["algorithm"]: r for r in d["algorithms"]}
    assert set(rows) == {
        "direct",
        "direct_loops",
        "im2col",
        "winograd_f2",
        "winograd_f4",
        "winograd_f6",
        "fft",
    }
    for name, row in rows.items():
        assert row["mults"] == algorithm_cost(s, name).mults
        assert row["supported"]
        assert set(row["errors"]) == {"fp32", "fp16", "bf16"}
    assert rows["winograd_f2"]["mult_saving_vs_direct"] == 2.25
    assert rows["winograd_f4"]["errors"]["fp32"] <= 2e-5
    assert d["im2col_full_matrix_elems"] == im2col_buffer_elems(s)
    assert {o["order"] for o in d["loop_orders"]} == {"input-reuse", "output-reuse", "weight-reuse"}


def test_compare_table_and_fixed_tiles(capsys):
    code, out, _ = run(
        [
            "kernels",
            "compare",
            "--layer",
            "9x9x4x4k3s2",
            "--precisions",
            "fp32",
            "--tiles",
            "2x2x3x3",
        ],
        capsys,
    )
    assert code == 0
    assert "winograd_f4" in out and "n/a" in out  # stride 2: Winograd/FFT not applicable
    assert "loop orders at tiles 2x2x3x3" in out


def test_bench_json_runs_and_reports_ratios(capsys):
    code, out, _ = run(
        [
            "kernels",
            "bench",
            "--layers",
            "10x10x8x8k3",
            "--batches",
            "2",
            "--repeats",
            "1",
            "--algorithms",
            "im2col,winograd_f2",
            "--json",
        ],
        capsys,
    )
    assert code == 0
    rows = json.loads(out)["rows"]
    assert {r["algorithm"] for r in rows} == {"onednn", "im2col", "winograd_f2"}
    base = next(r for r in rows if r["algorithm"] == "onednn")
    assert base["ratio_to_onednn"] == 1.0
    for r in rows:
        assert r["time_s"] > 0 and r["gflops"] > 0
        assert abs(r["ratio_to_onednn"] - r["time_s"] / base["time_s"]) < 1e-9


def test_bench_marks_unsupported_algorithms(capsys):
    code, out, _ = run(
        [
            "kernels",
            "bench",
            "--layers",
            "9x9x4x4k3s2",
            "--batches",
            "1",
            "--repeats",
            "1",
            "--algorithms",
            "fft",
            "--json",
        ],
        capsys,
    )
    assert code == 0
    fft = next(r for r in json.loads(out)["rows"] if r["algorithm"] == "fft")
    assert fft["time_s"] is None and "stride" in fft["note"]


def test_bad_input_exits_2_with_one_line(capsys):
    for argv, needle in (
        (["kernels", "compare", "--layer", "56x56x64"], "malformed layer"),
        (["kernels", "compare", "--layer", "8x8x4x4k3", "--precisions", "fp8"], "precision"),
        (["kernels", "compare", "--layer", "8x8x4x4k3", "--tiles", "2x2"], "--tiles"),
        (
            ["kernels", "bench", "--layers", "8x8x4x4k3", "--algorithms", "wino"],
            "unknown conv algorithm",
        ),
        (["kernels", "compare", "--layer", "8x8x4x6k3g4"], "divisible"),
    ):
        code, _, err = run(argv, capsys)
        assert code == 2, argv
        assert err.startswith("edgecnn: error:") and needle in err and err.count("\n") == 1


def test_layers_that_do_not_fit_in_memory_are_refused_up_front(capsys, monkeypatch):
    import edgecnn.kernels.bench as kbench

    calls = []
    monkeypatch.setattr(kbench, "bench_layers", lambda *a, **k: calls.append(a))
    for args in (
        ["kernels", "compare", "--layer", "100000x100000x4096x4096k3"],
        ["kernels", "bench", "--batches", "100000"],
        ["kernels", "bench", "--batches", "1,100000", "--layers", "r50-conv5-1x1"],
    ):
        code, out, err = run(args, capsys)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and "of memory but only" in lines[0], (args, err)
        assert out == ""
    assert not calls  # refused before the first layer ran


def test_working_set_covers_operands_reference_and_largest_buffer():
    from edgecnn.kernels.conv import Algorithm
    from edgecnn.kernels.memory import working_set_bytes

    s = parse_layer("28x28x16x16k3b2")
    ops = s.input_elems + s.weight_elems + s.output_elems
    extra = max(
        algorithm_cost(s, a).extra_total_elems
        for a in Algorithm
        if a is not Algorithm.AUTO and algorithm_cost(s, a).supported
    )
    assert extra >= im2col_buffer_elems(s) > 0
    assert working_set_bytes(s) == 12 * ops + 4 * (s.output_elems + extra)
    assert working_set_bytes(s, reference=False) == 4 * ops + 4 * (s.output_elems + extra)
