"""Accelerator configs: validation, loaders (TOML, YAML, SCALE-Sim .cfg) and presets."""

from __future__ import annotations

import math

import pytest

from edgecnn.errors import ConfigError
from edgecnn.hardware.config import (
    PRESETS,
    AcceleratorConfig,
    Dataflow,
    EnergyTable,
    Winograd,
    accelerator_from_dict,
    load_accelerator,
    load_preset,
)


def test_presets_match_their_descriptions():
    seed = load_preset("seed-chip")
    assert seed.pes == 128 and seed.flat and seed.precision == "fp16"
    assert seed.sram_bytes == 4 * 1024 * 1024 and seed.winograd == Winograd.F4
    assert (load_preset("tpu-32x32").rows, load_preset("tpu-32x32").cols) == (32, 32)
    assert load_preset("tpu-128x128").pes == 128 * 128
    assert load_preset("tpu-128x128").precision == "int8"
    assert (load_preset("eyeriss").rows, load_preset("eyeriss").cols) == (12, 14)
    assert load_preset("edge-tpu").precision == "int8"
    assert set(PRESETS) == {"seed-chip", "tpu-32x32", "tpu-128x128", "eyeriss", "edge-tpu"}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"rows": 0}, "rows"),
        ({"cols": -3}, "cols"),
        ({"dram_bw_bytes_per_cycle": -1.0}, "dram_bw_bytes_per_cycle"),
        ({"dram_bw_bytes_per_cycle": math.nan}, "dram_bw_bytes_per_cycle"),
        ({"clock_hz": 0}, "clock_hz"),
        ({"dataflow": "nlr"}, "dataflow"),
        ({"winograd": "F6"}, "winograd"),
        ({"precision": "int4"}, "int4"),
        ({"ifmap_sram_bytes": -5}, "ifmap_sram_bytes"),
        ({"ifmap_sram_bytes": 0}, "SRAM"),
    ],
)
def test_invalid_values_name_the_field(changes, field):
    with pytest.raises(ConfigError, match=field):
        AcceleratorConfig(**changes)


def test_energy_table_validated_and_sram_law():
    e = EnergyTable()
    assert e.sram_pj_per_byte(8 * 1024) == pytest.approx(1.25)
    assert e.sram_pj_per_byte(32 * 1024) == pytest.approx(2.5)  # Horowitz: 20 pJ / 64 bit at 32 KB
    with pytest.raises(ConfigError, match="dram_pj_per_byte"):
        EnergyTable(dram_pj_per_byte=-1)
    with pytest.raises(ConfigError, match="int4"):
        EnergyTable(mac_pj={"int4": 0.1})


def test_unknown_keys_rejected_with_valid_list():
    with pytest.raises(ConfigError, match="unknown key.*rowz.*valid keys:.*rows"):
        accelerator_from_dict({"rowz": 4})
    with pytest.raises(ConfigError, match="unknown energy key.*foo"):
        accelerator_from_dict({"energy": {"foo": 1}})


def test_toml_and_yaml_loaders(tmp_path):
    toml = tmp_path / "a.toml"
    toml.write_text(
        'name = "t"\nrows = 8\ncols = 4\ndataflow = "ws"\nifmap_sram_kb = 16\n'
        "filter_sram_kb = 8\nofmap_sram_kb = 4\n[energy]\ndram_pj_per_byte = 100.0\n"
        "[energy.mac_pj]\nint8 = 0.5\n"
    )
    a = load_accelerator(toml)
    assert (a.rows, a.cols, a.dataflow) == (8, 4, Dataflow.WS)
    assert (a.ifmap_sram_bytes, a.filter_sram_bytes, a.ofmap_sram_bytes) == (16384, 8192, 4096)
    assert a.energy.dram_pj_per_byte == 100 and a.energy.mac("int8") == 0.5
    assert a.energy.mac("fp16") == EnergyTable().mac("fp16")
    yml = tmp_path / "b.yaml"
    yml.write_text("macs: 256\nshared_sram_kb: 512\nprecision: fp16\nwinograd: F2\n")
    b = load_accelerator(yml)
    assert b.flat and b.pes == 256 and b.shared_sram_bytes == 512 * 1024
    assert b.winograd == Winograd.F2 and b.precisions == ("fp16",)
    bad = tmp_path / "c.yaml"
    bad.write_text("rows: 0\n")
    with pytest.raises(ConfigError, match="rows"):
        load_accelerator(bad)


def test_scalesim_cfg_loader(tmp_path):
    cfg = tmp_path / "scale.cfg"
    cfg.write_text(
        "[general]\nrun_name = scale_example_run_32x32_ws\n\n[architecture_presets]\n"
        "ArrayHeight:    32\nArrayWidth:     16\nIfmapSramSzkB:   64\nFilterSramSzkB:  32\n"
        "OfmapSramSzkB:   16\nIfmapOffset:    0\nBandwidth : 10\nDataflow : ws\n"
        "[run_presets]\nInterfaceBandwidth: CALC\nInterfaceBandwidth: CALC \n"
    )
    a = load_accelerator(cfg)
    assert a.name == "scale_example_run_32x32_ws"
    assert (a.rows, a.cols, a.dataflow) == (32, 16, Dataflow.WS)
    assert (a.ifmap_sram_bytes, a.filter_sram_bytes, a.ofmap_sram_bytes) == (65536, 32768, 16384)
    assert a.dram_bw_bytes_per_cycle == 10 and a.precision == "int8" and a.word_bytes() == 1
    zero = tmp_path / "zero.cfg"
    zero.write_text(cfg.read_text().replace("ArrayHeight:    32", "ArrayHeight: 0"))
    with pytest.raises(ConfigError, match="rows"):
        load_accelerator(zero)


def test_unknown_preset_and_missing_file():
    with pytest.raises(ConfigError, match="seed-chip"):
        load_accelerator("tpu-9000")
    with pytest.raises(ConfigError, match="does not exist"):
        load_accelerator("/nonexistent/x.toml")


def test_precision_support_checked():
    seed = load_preset("seed-chip")
    assert seed.word_bytes("fp32") == 4
    with pytest.raises(ConfigError, match="int8"):
        seed.word_bytes("int8")


_CFG = (
    "[general]\nrun_name = bw\n\n[architecture_presets]\nArrayHeight: 8\nArrayWidth: 8\n"
    "IfmapSramSzkB: 1\nFilterSramSzkB: 1\nOfmapSramSzkB: 1\nDataflow: os\n{bw}"
    "[run_presets]\nInterfaceBandwidth: {mode}\n"
)


def _bw_cfg(tmp_path, mode, bw="Bandwidth: 1\n"):
    cfg = tmp_path / f"{mode.lower()}.cfg"
    cfg.write_text(_CFG.format(mode=mode, bw=bw))
    return load_accelerator(cfg)


@pytest.mark.parametrize("model_cycles", ["tiled", "scalesim"])
def test_scalesim_calc_bandwidth_never_stalls_user_uses_bandwidth(tmp_path, model_cycles):
    from edgecnn.hardware import InterfaceBandwidth, SimOptions, simulate
    from edgecnn.models import load_graph

    calc, user = _bw_cfg(tmp_path, "CALC"), _bw_cfg(tmp_path, "USER")
    assert calc.interface_bandwidth is InterfaceBandwidth.CALC
    assert user.interface_bandwidth is InterfaceBandwidth.USER
    assert user.stall_bw_bytes_per_cycle == 1.0
    graph = load_graph("resnet18")
    opts = SimOptions(model_cycles=model_cycles)
    t_calc = simulate(graph, calc, opts).totals
    assert t_calc["stall_cycles"] == 0
    assert t_calc["cycles"] == t_calc["compute_cycles"]
    assert t_calc["dram_bytes"] > 0
    t_user = simulate(graph, user, opts).totals  # 1 byte/cycle, 1 KB buffers: stalls
    assert t_user["stall_cycles"] > 0
    assert t_user["cycles"] == t_user["compute_cycles"] + t_user["stall_cycles"]


def test_scalesim_user_bandwidth_needs_a_bandwidth(tmp_path):
    with pytest.raises(ConfigError, match="USER needs Bandwidth"):
        _bw_cfg(tmp_path, "USER", bw="")
    with pytest.raises(ConfigError, match="CALC or USER"):
        _bw_cfg(tmp_path, "FAST")
    assert _bw_cfg(tmp_path, "CALC", bw="").stall_bw_bytes_per_cycle == float("inf")


def test_edge_tpu_link_and_sram_come_from_the_device_catalog():
    from edgecnn.analysis.devices import get_device

    coral = get_device("coral-edgetpu")
    assert coral.dram_bytes_per_s == 0.5e9  # USB 3.0, 5 Gb/s, 8b/10b coded
    tpu = load_preset("edge-tpu")
    assert tpu.dram_bw_bytes_per_cycle == pytest.approx(coral.dram_bytes_per_s / tpu.clock_hz)
    assert tpu.dram_bw_bytes_per_cycle == pytest.approx(1.042, abs=1e-3)
    assert tpu.shared_sram_bytes == coral.onchip_bytes == 8 * 2**20


def test_device_key_rejects_a_second_bandwidth_and_unknown_devices(tmp_path):
    from edgecnn.hardware.config import accelerator_from_dict

    base = {"rows": 4, "cols": 4, "clock_hz": 1e9, "device": "coral-edgetpu"}
    assert accelerator_from_dict(base).dram_bw_bytes_per_cycle == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="not both"):
        accelerator_from_dict({**base, "dram_bw_bytes_per_cycle": 8})
    with pytest.raises(ConfigError, match="not in the device catalog"):
        accelerator_from_dict({**base, "device": "coral"})
    with pytest.raises(ConfigError, match="clock_hz"):
        accelerator_from_dict({"rows": 4, "cols": 4, "device": "coral-edgetpu"})
    own = accelerator_from_dict({**base, "shared_sram_kb": 64})
    assert own.shared_sram_bytes == 64 * 1024  # an explicit buffer wins over the catalog's
