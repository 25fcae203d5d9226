"""Depthwise packing, row stationary, DRAM compression, parameter cache, config refusals."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.cli_helpers import run_cli

from edgecnn.errors import ConfigError
from edgecnn.hardware.config import (
    AcceleratorConfig,
    Dataflow,
    accelerator_from_dict,
    compressed_weight_bytes,
    load_preset,
    rlc_bytes,
)
from edgecnn.hardware.mapping import Gemm, fold_map, map_gemm, rs_mapping
from edgecnn.hardware.simulate import SimOptions, simulate
from edgecnn.hardware.tiling import ConvShape
from edgecnn.hardware.workload import ArrayWork, build_workload


def dw(channels=64, size=56, k=3, stride=1):
    return ConvShape(1, channels, channels, size, size, k, k, stride, stride, k // 2, k // 2,
                     k // 2, k // 2, groups=channels)  # fmt: skip


def test_depthwise_packs_groups_side_by_side_on_ws():
    """WS 64x64, depthwise 3x3 over 64 channels: 7 groups per fold (7 x 9 rows, 7 cols)."""
    shape = dw()
    accel = AcceleratorConfig(rows=64, cols=64, dataflow="ws")
    fm = fold_map(Gemm.of(shape), 64, 64, Dataflow.WS, pack_groups=True)
    assert (fm.sr, fm.sc, fm.t, fm.pack) == (9, 1, 56 * 56, 7)
    assert fm.group_folds == math.ceil(64 / 7) == 10
    m = map_gemm(Gemm.of(shape), accel, shape=shape)
    fill = 2 * 64 + 64 - 2
    assert m.compute_cycles == 10 * 56 * 56 + fill
    assert m.compute_cycles >= shape.macs / accel.pes
    unpacked = fold_map(Gemm.of(shape), 64, 64, Dataflow.WS)
    assert unpacked.pack == 1 and unpacked.group_folds == 64


def test_packing_never_exceeds_the_array_and_os_does_not_pack():
    shape = dw(channels=32, size=14)
    for rows, cols in [(9, 9), (18, 4), (64, 64), (8, 8)]:
        fm = fold_map(Gemm.of(shape), rows, cols, Dataflow.WS, pack_groups=True)
        assert fm.pack * fm.sr <= max(rows, fm.sr) and fm.pack * fm.sc <= max(cols, fm.sc)
    os_fm = fold_map(Gemm.of(shape), 64, 64, Dataflow.OS, pack_groups=True)
    assert os_fm.pack == 1  # Sr = 196 output pixels > 64 rows


def test_dense_conv_is_unchanged_by_packing():
    shape = ConvShape(1, 64, 64, 28, 28, 3, 3, 1, 1, 1, 1, 1, 1)
    a = fold_map(Gemm.of(shape), 32, 32, Dataflow.WS, pack_groups=True)
    b = fold_map(Gemm.of(shape), 32, 32, Dataflow.WS)
    assert a == b


def test_row_stationary_folding_closed_form():
    """AlexNet CONV3 (R = 3, E = 13) on 12 x 14: 4 sets of 3 x 13 at once, S*F cycles each."""
    conv3 = ConvShape(1, 256, 384, 13, 13, 3, 3, 1, 1, 1, 1, 1, 1)
    m = rs_mapping(conv3, 12, 14)
    assert (m.row_segments, m.seg_rows, m.strips, m.seg_cols) == (1, 3, 1, 13)
    assert m.segments_per_pass == 4
    assert m.passes == math.ceil(384 * 256 / 4)
    assert m.cycles == m.passes * 3 * 13
    assert m.cycles >= conv3.macs / 168
    util = conv3.macs / (m.cycles * 168)
    assert util == pytest.approx(156 / 168)
    # CONV1 (R = 11, E = 55): strips of 14 columns, one 11-row segment per pass
    conv1 = ConvShape(1, 3, 96, 227, 227, 11, 11, 4, 4)
    m1 = rs_mapping(conv1, 12, 14)
    assert (m1.strips, m1.seg_cols, m1.segments_per_pass) == (4, 14, 1)
    # filters taller than the array split into row segments
    tall = ConvShape(1, 1, 1, 32, 32, 13, 1)
    assert rs_mapping(tall, 12, 14).row_segments == 2


def test_rs_simulation_respects_mac_efficiency():
    accel = load_preset("eyeriss")
    shape = ConvShape(1, 256, 384, 13, 13, 3, 3, 1, 1, 1, 1, 1, 1)
    full = map_gemm(Gemm.of(shape), accel, shape=shape).compute_cycles
    half = map_gemm(Gemm.of(shape), accel.replace(mac_efficiency=0.5), shape=shape)
    assert half.compute_cycles == math.ceil(full / 0.5)
    assert accel.dataflow is Dataflow.RS and accel.fmap_rlc


def test_rlc_and_weight_compression_closed_form():
    n = 3000
    assert rlc_bytes(n, 0.0, 2) == n * 2  # dense data goes uncompressed
    pairs = n * 0.5 + n * 0.5 / 32
    assert rlc_bytes(n, 0.5, 2) == math.ceil(pairs / 3) * 8
    assert rlc_bytes(n, 0.9, 2) < rlc_bytes(n, 0.5, 2) < n * 2
    assert compressed_weight_bytes(1000, 0.1, 4, 4) == 100


def test_compression_and_param_cache_lower_dram_not_compute():
    from edgecnn.models import load_graph

    g = load_graph("resnet18")
    base = load_preset("tpu-32x32")
    plain = simulate(g, base)
    rlc = simulate(g, base.replace(fmap_rlc=True, fmap_zero_fraction=0.7))
    assert rlc.totals["dram_bytes"] < plain.totals["dram_bytes"]
    big = base.replace(shared_sram_bytes=8 << 20)  # room for resnet18's activations + weights
    cached = simulate(g, big.replace(param_cache=True))
    assert cached.totals["dram_bytes"] < simulate(g, big).totals["dram_bytes"]
    small = simulate(g, base.replace(param_cache=True))  # 640 KB < largest layer's fmaps
    assert small.totals["dram_bytes"] == plain.totals["dram_bytes"]
    for other in (rlc, cached):
        assert other.totals["compute_cycles"] == plain.totals["compute_cycles"]
        for layer in other.layers:
            assert layer.dram_bytes >= layer.one_touch_bytes >= 0
    sparse = base.replace(weight_bits=4, weight_index_bits=4, zero_skipping=False)
    res = simulate(g, sparse, SimOptions(sparsity=0.9))
    assert res.totals["dram_bytes"] < plain.totals["dram_bytes"]


def test_param_cache_budget_caps_the_cached_weights():
    from edgecnn.models import load_graph

    g = load_graph("resnet18")  # 11.7 M weights, int8
    base = load_preset("tpu-32x32").replace(shared_sram_bytes=64 << 20, param_cache=True)
    everything = simulate(g, base)
    assert all(lay.dram_read_bytes["weight"] == 0 for lay in everything.layers)
    cap = 2 << 20
    capped = simulate(g, base.replace(param_cache_bytes=cap))
    streamed = sum(lay.dram_read_bytes["weight"] for lay in capped.layers)
    cached = [
        lay for lay in capped.layers if lay.unit == "array" and lay.dram_read_bytes["weight"] == 0
    ]
    items = build_workload(g).items
    weights = {it.name: it.shape.weight_elems for it in items if isinstance(it, ArrayWork)}
    cached_bytes = sum(weights[lay.name] for lay in cached)
    assert 0 < cached_bytes <= cap  # greedy in execution order, never past the budget
    assert streamed >= sum(weights.values()) - cap
    with pytest.raises(ConfigError, match="param_cache_bytes"):
        base.replace(param_cache_bytes=-1)


def test_serial_feature_map_transfers_add_their_link_time():
    """fmap_dram_overlap = False: compute + feature-map DRAM bytes / bandwidth (+ weight excess)."""
    import torch.nn as nn

    from edgecnn.models import load_graph

    wl = load_graph(nn.Sequential(nn.Conv2d(64, 64, 3, padding=1)), (1, 64, 56, 56))
    base = AcceleratorConfig(rows=16, cols=16, shared_sram_bytes=64 << 10,
                             dram_bw_bytes_per_cycle=2.0)  # fmt: skip
    over = simulate(wl, base).layers[0]
    serial = simulate(wl, base.replace(fmap_dram_overlap=False)).layers[0]
    fmap = serial.dram_bytes - serial.dram_read_bytes["weight"]
    excess = max(0, math.ceil(serial.dram_read_bytes["weight"] / 2.0) - serial.compute_cycles)
    assert serial.compute_cycles == over.compute_cycles
    assert serial.cycles >= serial.compute_cycles + math.ceil(fmap / 2.0) + excess
    assert serial.cycles > over.cycles


def _vgg_conv(size, cin, cout, batch=3):
    return ConvShape(batch, cin, cout, size, size, 3, 3, 1, 1, 1, 1, 1, 1)


def test_rs_glb_plan_fits_the_glb_and_is_the_cheapest_split():
    from edgecnn.hardware.mapping import rs_glb_plan

    glb, dram_pj, glb_pj = 108 * 1024, 250.0, 4.6
    for size, c in ((224, 64), (112, 128), (56, 256), (28, 512), (14, 512)):
        shape = _vgg_conv(size, c, c)
        plan = rs_glb_plan(shape, 14, glb, 2, 2, 2, dram_pj, glb_pj)
        e = math.ceil(size / math.ceil(size / 14))
        per_ch, per_f = 2 * 3 * (e + 2) * (size + 2) * 2, 3 * e * size * 2
        assert per_ch * plan.channels_per_pass + per_f * plan.filters_in_glb <= glb
        assert plan.psum_round_trips == math.ceil(c / plan.channels_per_pass)
        assert plan.psum_writes == 3 * c * size * size * plan.psum_round_trips

        def energy(cp, m, size=size, c=c):
            ifmap = 3 * c * (size + 2) * (size + 2) * 2
            return dram_pj * ifmap * math.ceil(c / m) + glb_pj * 2 * 2 * 3 * c * size * size * (
                math.ceil(c / cp)
            )

        splits = [
            (cp, min(c, (glb - per_ch * cp) // per_f))
            for cp in range(1, c + 1)
            if glb - per_ch * cp >= per_f
        ]
        assert energy(plan.channels_per_pass, plan.filters_in_glb) == min(
            energy(cp, m) for cp, m in splits
        )
    wide = rs_glb_plan(_vgg_conv(224, 64, 64), 14, glb, 2, 2, 2, dram_pj, glb_pj)
    narrow = rs_glb_plan(_vgg_conv(14, 512, 512), 14, glb, 2, 2, 2, dram_pj, glb_pj)
    assert wide.channels_per_pass < narrow.channels_per_pass  # wide rows crowd the GLB


def test_rs_psum_network_bounds_the_layer_and_only_when_set():
    import torch.nn as nn

    from edgecnn.hardware.mapping import rs_glb_plan
    from edgecnn.models import load_graph

    g = load_graph(nn.Sequential(nn.Conv2d(64, 64, 3, padding=1)), (3, 64, 224, 224))
    eyeriss = load_preset("eyeriss")
    free = simulate(g, eyeriss.replace(psum_noc_words_per_cycle=0.0), SimOptions(precision="fp16"))
    bound = simulate(g, eyeriss, SimOptions(precision="fp16"))
    plan = rs_glb_plan(_vgg_conv(224, 64, 64), 14, eyeriss.shared_sram_bytes, 2, 2, 2,
                       eyeriss.energy.dram_pj_per_byte,
                       eyeriss.energy.sram_pj_per_byte(eyeriss.shared_sram_bytes))  # fmt: skip
    lay_free, lay = free.layers[0], bound.layers[0]
    assert lay.compute_cycles == max(lay_free.compute_cycles, math.ceil(plan.psum_writes / 4))
    assert lay.compute_cycles > lay_free.compute_cycles  # VGG conv1_2's psums bind, not the MACs
    ws = simulate(g, eyeriss.replace(dataflow="ws"), SimOptions(precision="fp16")).layers[0]
    ws_free = simulate(
        g,
        eyeriss.replace(dataflow="ws", psum_noc_words_per_cycle=0.0),
        SimOptions(precision="fp16"),
    ).layers[0]
    assert ws.compute_cycles == ws_free.compute_cycles  # the limit is row-stationary only
    with pytest.raises(ConfigError, match="psum_noc_words_per_cycle"):
        eyeriss.replace(psum_noc_words_per_cycle=-1.0)


def test_sparsity_without_zero_skipping_is_refused(capsys):
    from edgecnn.models import load_graph

    with pytest.raises(ConfigError, match="'tpu-32x32' has no zero-skipping.*zero_skipping = true"):
        simulate(load_graph("resnet18"), load_preset("tpu-32x32"), SimOptions(sparsity=0.5))
    code, out, err = run_cli(
        ["simulate", "resnet18", "--accel", "tpu-32x32", "--sparsity", "0.5"], capsys
    )
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "zero-skipping" in err


def test_zero_shared_sram_is_refused_not_defaulted(tmp_path, capsys):
    with pytest.raises(ConfigError, match="shared_sram_kb = 0"):
        accelerator_from_dict({"rows": 8, "cols": 8, "shared_sram_kb": 0})
    ok = accelerator_from_dict(
        {
            "rows": 8,
            "cols": 8,
            "shared_sram_kb": 0,
            "ifmap_sram_kb": 8,
            "filter_sram_kb": 8,
            "ofmap_sram_kb": 8,
        }  # fmt: skip
    )
    assert ok.shared_sram_bytes == 0 and ok.sram_bytes == 24 * 1024
    f = tmp_path / "zero.toml"
    f.write_text("rows = 8\ncols = 8\nshared_sram_kb = 0\n")
    code, out, err = run_cli(["simulate", "resnet18", "--accel", str(f)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "shared_sram_kb = 0" in err


@pytest.mark.parametrize("text", ["", "# nothing\n", 'name = "x"\n'])
def test_empty_accelerator_file_is_refused(tmp_path, capsys, text):
    f = tmp_path / "empty.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match="required keys: rows and cols"):
        from edgecnn.hardware.config import load_accelerator

        load_accelerator(f)
    code, out, err = run_cli(["simulate", "resnet18", "--accel", str(f)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "rows and cols" in err


def test_empty_yaml_is_refused(tmp_path):
    from edgecnn.hardware.config import load_accelerator

    f = tmp_path / "empty.yaml"
    f.write_text("")
    with pytest.raises(ConfigError, match="required keys"):
        load_accelerator(f)


def test_bad_new_fields_are_refused():
    for bad in ({"mac_efficiency": 0}, {"mac_efficiency": 1.5}, {"fmap_zero_fraction": 1.0},
                {"weight_bits": -1}, {"weight_index_bits": 99}):  # fmt: skip
        with pytest.raises(ConfigError):
            AcceleratorConfig(**bad)


def test_partial_sum_word_and_pe_weight_registers():
    eyeriss = load_preset("eyeriss")
    assert eyeriss.partial_sum_bytes("fp16") == 2 and eyeriss.pe_weight_rf_bytes == 448
    assert AcceleratorConfig().partial_sum_bytes("int8") == 4  # int32 accumulation
    assert AcceleratorConfig(psum_bytes=1).partial_sum_bytes("int8") == 1
    with pytest.raises(ConfigError, match="psum_bytes"):
        AcceleratorConfig(psum_bytes=3)
    shape = ConvShape(4, 256, 384, 13, 13, 3, 3, 1, 1, 1, 1, 1, 1)
    from edgecnn.graph.ir import Graph, Layer, OpKind, TensorInfo

    x, y = TensorInfo("x", (4, 256, 13, 13)), TensorInfo("y", (4, 384, 13, 13))
    conv = Layer("c", OpKind.CONV, [x], [y], params={"weight": (384, 256, 3, 3)},
                 attrs={"kernel": (3, 3), "stride": (1, 1), "padding": (1, 1, 1, 1),
                        "dilation": (1, 1), "groups": 1})  # fmt: skip
    g = Graph("g", [conv], [x], [y])
    with_rf = simulate(g, eyeriss, SimOptions(objective="dram")).layers[0]
    without = simulate(g, eyeriss.replace(pe_weight_rf_bytes=0), SimOptions(objective="dram"))
    assert with_rf.dram_bytes <= without.layers[0].dram_bytes
    assert with_rf.macs == shape.macs


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 3),  # batch
    st.integers(1, 6),  # groups
    st.integers(1, 8),  # channels per group in
    st.integers(1, 8),  # channels per group out
    st.integers(1, 40),  # size
    st.integers(1, 13),  # kernel
    st.integers(1, 4),  # stride
    st.integers(1, 16),
    st.integers(1, 16),
    st.sampled_from(list(Dataflow)),
)
def test_mappings_never_beat_the_pe_count(b, g, n, m, size, k, s, rows, cols, dataflow):
    """Packing and row stationary: cycles >= MACs / PEs, utilisation <= 1."""
    if k > size:
        return
    shape = ConvShape(b, g * n, g * m, size, size, k, k, s, s, groups=g)
    accel = AcceleratorConfig(rows=rows, cols=cols, dataflow=dataflow)
    mp = map_gemm(Gemm.of(shape), accel, shape=shape)
    assert mp.compute_cycles * rows * cols >= shape.macs
    fm = mp.fold_map
    assert fm.pack * fm.sr <= max(rows, fm.sr) and fm.pack * fm.sc <= max(cols, fm.sc)
    rs = rs_mapping(shape, rows, cols)
    assert rs.seg_rows <= rows and rs.seg_cols <= cols and rs.segments_per_pass >= 1
