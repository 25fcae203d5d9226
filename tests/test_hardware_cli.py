"""The hardware commands: JSON schema, CSV, topology export round trip, and bad input (exit 2)."""

from __future__ import annotations

import csv
import json

import pytest

from cli_helpers import run_cli as run
from edgecnn.hardware.topology import read_topology
from edgecnn.hardware.workload import ArrayWork, build_workload

TOPO = (
    "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"
    "Conv1,32,32,3,3,3,16,1,\nConv2,30,30,3,3,16,32,2,\nFC,1,1,1,1,512,10,1,\n"
)


@pytest.fixture
def topo(tmp_path):
    p = tmp_path / "net.csv"
    p.write_text(TOPO)
    return p


def test_simulate_json_schema(topo, tmp_path, capsys):
    code, out, err = run(
        ["simulate", str(topo), "--accel", "tpu-32x32", "--json", "--csv", str(tmp_path / "o.csv")],
        capsys,
    )
    assert code == 0, err
    d = json.loads(out)
    for layer in d["layers"]:
        for key in (
            "name",
            "macs",
            "cycles",
            "stall_cycles",
            "utilization",
            "sram_reads",
            "sram_writes",
            "dram_bytes",
            "energy_j",
        ):
            assert key in layer
    t = d["totals"]
    for key in (
        "cycles",
        "macs",
        "pes",
        "latency_s",
        "utilization",
        "dram_bytes",
        "sram_bytes",
        "energy_j",
        "energy_breakdown",
    ):
        assert key in t
    assert t["cycles"] == sum(x["cycles"] for x in d["layers"])
    # SCALE-Sim output size ceil((H - R + S) / S): Conv2 is 15x15, not PyTorch's 14x14
    assert t["macs"] == 30 * 30 * 27 * 16 + 15 * 15 * 144 * 32 + 5120
    assert t["pes"] == 1024
    assert t["latency_s"] == pytest.approx(t["cycles"] / 700e6)
    rows = list(csv.DictReader((tmp_path / "o.csv").open()))
    assert [r["name"] for r in rows] == ["Conv1", "Conv2", "FC"]


def test_simulate_scalesim_with_cfg(topo, tmp_path, capsys):
    cfg = tmp_path / "scale.cfg"
    cfg.write_text(
        "[architecture_presets]\nArrayHeight: 8\nArrayWidth: 8\nIfmapSramSzkB: 64\nFilterSramSzkB: 64\nOfmapSramSzkB: 64\nDataflow: os\nBandwidth: 10\n"
    )
    code, out, err = run(
        ["simulate", str(topo), "--accel", str(cfg), "--model-cycles", "scalesim", "--json"], capsys
    )
    assert code == 0, err
    d = json.loads(out)
    first = d["layers"][0]
    # Conv1: Sr = 900, Sc = 16, T = 27; folds 113 x 2 of 27 + 8 + 8 - 2 rows
    assert first["compute_cycles"] == 113 * 2 * 41 - 1
    assert d["precision"] == "int8"


def test_simulate_human_table(topo, capsys):
    code, out, _ = run(["simulate", str(topo)], capsys)
    assert code == 0 and "total:" in out and "energy by component" in out


def test_export_topology_round_trip(tmp_path, capsys):
    out = tmp_path / "r18.csv"
    code, _, err = run(["export-topology", "resnet18", "--out", str(out), "--json"], capsys)
    assert code == 0, err
    from edgecnn.graph.from_torch import graph_from_module
    from edgecnn.models.zoo import build_zoo_model

    graph = graph_from_module(build_zoo_model("resnet18"), (1, 3, 224, 224))
    convs = [w for w in build_workload(graph).items if isinstance(w, ArrayWork)]
    back = read_topology(out)
    assert len(back.layers) == len(convs)
    for item, layer in zip(convs, back.layers, strict=True):
        assert layer.outputs[0].shape[1:] == (
            item.shape.out_channels,
            item.shape.out_h,
            item.shape.out_w,
        )
    # independent count: torch graph's conv + linear MACs
    torch_macs = sum(
        math_prod(layer.outputs[0].shape) * math_prod(layer.params["weight"][1:])
        for layer in graph.layers
        if layer.op.value in ("conv", "linear")
    )
    assert sum(w.shape.macs for w in build_workload(back).items) == torch_macs


def math_prod(xs):
    out = 1
    for x in xs:
        out *= x
    return out


def test_export_grouped_conv_one_row_per_group(tmp_path, capsys):
    out = tmp_path / "mb.csv"
    code, _, err = run(["export-topology", "mobilenet_v2", "--out", str(out)], capsys)
    assert code == 0, err
    back = read_topology(out)
    assert any(layer.name.endswith("/g31") for layer in back.layers)


def _one_line_exit2(argv, capsys, needle):
    code, _, err = run(argv, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgecnn: error:")
    assert needle in lines[0]
    assert "Traceback" not in err


def test_bad_inputs_exit_2(topo, tmp_path, capsys):
    zero = tmp_path / "zero.toml"
    zero.write_text("rows = 0\ncols = 8\n")
    _one_line_exit2(["simulate", str(topo), "--accel", str(zero)], capsys, "rows")
    neg = tmp_path / "neg.yaml"
    neg.write_text("rows: 8\ncols: 8\ndram_bw_bytes_per_cycle: -4\n")
    _one_line_exit2(["simulate", str(topo), "--accel", str(neg)], capsys, "dram_bw_bytes_per_cycle")
    tiny = tmp_path / "tiny.toml"
    tiny.write_text("rows = 8\ncols = 8\nshared_sram_bytes = 16\n")
    _one_line_exit2(["simulate", str(topo), "--accel", str(tiny)], capsys, "too small for one tile")
    _one_line_exit2(["simulate", str(topo), "--accel", "tpu-9000"], capsys, "unknown accelerator")
    _one_line_exit2(["simulate", str(topo), "--model-cycles", "exact"], capsys, "model_cycles")
    _one_line_exit2(["simulate", str(tmp_path / "missing.csv")], capsys, "does not exist")
    bad = tmp_path / "bad.csv"
    bad.write_text("Layer name, a\nL1,3,x\n")
    _one_line_exit2(["simulate", str(bad)], capsys, "expected 8 columns")
    unk = tmp_path / "unk.toml"
    unk.write_text("rows = 8\ncolumns = 8\n")
    _one_line_exit2(["simulate", str(topo), "--accel", str(unk)], capsys, "valid keys")


def test_explore_cli_local_and_resume(topo, tmp_path, capsys):
    space = tmp_path / "space.yaml"
    space.write_text("base: tpu-32x32\nsweep:\n  array: [8x8, 16x16]\n  precision: [int8]\n")
    out = tmp_path / "res.jsonl"
    argv = [
        "explore",
        str(topo),
        "--space",
        str(space),
        "--out",
        str(out),
        "--workers",
        "1",
        "--json",
    ]
    code, stdout, err = run(argv, capsys)
    assert code == 0, err
    d = json.loads(stdout)
    assert (d["points"], d["computed"], d["skipped"]) == (2, 2, 0)
    assert (tmp_path / "res.png").stat().st_size > 0
    code, stdout, _ = run(argv, capsys)
    assert json.loads(stdout)["skipped"] == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("sweep:\n  arrays: [8x8]\n")
    _one_line_exit2(
        ["explore", str(topo), "--space", str(bad), "--out", str(out)], capsys, "unknown sweep key"
    )
