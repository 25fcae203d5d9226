"""Physical limits for every layer of zoo models on every preset, and on random accelerators."""

from __future__ import annotations

import functools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgecnn.hardware.config import PRESETS, AcceleratorConfig, load_preset
from edgecnn.hardware.simulate import SimOptions, simulate
from edgecnn.hardware.tiling import Tiles, one_touch_elems, tile_footprint
from edgecnn.hardware.workload import ArrayWork, build_workload
from edgecnn.models import load_graph
from edgecnn.models.zoo import zoo_names

# every torchvision classification model (80), at its weights' crop size
ZOO = zoo_names()


@functools.cache
def zoo_graph(name: str):
    return load_graph(name)


def check_limits(graph, accel: AcceleratorConfig, opts: SimOptions) -> None:
    result = simulate(graph, accel, opts)
    workload = build_workload(graph, fuse=opts.fuse)
    assert len(result.layers) == len(workload.items)
    precision = result.precision
    wb = accel.word_bytes(precision)
    pb = accel.partial_sum_bytes(precision)
    assert pb >= max(wb, accel.psum_bytes)
    db = 2 if accel.double_buffering else 1
    for layer, item in zip(result.layers, workload.items, strict=True):
        assert 0 <= layer.utilization <= 1, layer.name
        assert layer.cycles == layer.compute_cycles + layer.stall_cycles
        assert layer.cycles >= math.ceil(layer.effective_macs / accel.pes), layer.name
        assert layer.stall_cycles >= 0
        assert layer.dram_bytes >= layer.one_touch_bytes >= 0, layer.name
        assert layer.energy_j > 0
        if not isinstance(item, ArrayWork):
            continue
        packed = accel.compresses_dram or accel.param_cache  # fewer bytes than raw one-touch
        if not (layer.input_on_chip or layer.output_on_chip or layer.winograd or packed):
            assert layer.dram_bytes >= one_touch_elems(item.shape) * wb, layer.name
        if opts.model_cycles != "tiled":
            continue
        t = layer.tiling
        fp = tile_footprint(item.shape, Tiles(t["tm"], t["tn"], t["tr"], t["tc"]))
        scale = 1.0 if not layer.winograd else (accel.winograd.m + 2) ** 2 / 9
        in_b = 0 if layer.input_on_chip else fp.input_elems * wb
        w_b = math.ceil(fp.weight_elems * scale) * wb
        out_b = 0 if layer.output_on_chip else fp.output_elems * pb
        if accel.shared_sram_bytes:
            rf = accel.pes * accel.pe_weight_rf_bytes  # weights held in the PEs' pads
            assert in_b + max(0, w_b - rf) + out_b <= accel.shared_sram_bytes // db, layer.name
        else:
            assert in_b <= accel.ifmap_sram_bytes // db
            assert w_b <= accel.filter_sram_bytes // db
            assert out_b <= accel.ofmap_sram_bytes // db
    totals = result.totals
    assert totals["cycles"] == sum(r.cycles for r in result.layers)
    assert 0 < totals["utilization"] <= 1
    assert totals["energy_j"] == pytest.approx(sum(totals["energy_breakdown"].values()))


@pytest.mark.parametrize("model", ZOO)
def test_zoo_layers_within_physical_limits(model):
    graph = zoo_graph(model)
    for preset in PRESETS:
        check_limits(graph, load_preset(preset), SimOptions())


@pytest.mark.parametrize("preset", PRESETS)
def test_zoo_limits_scalesim_mode_and_baseline(preset):
    graph = zoo_graph("resnet18")
    check_limits(graph, load_preset(preset), SimOptions(model_cycles="scalesim"))
    check_limits(
        graph, load_preset(preset), SimOptions(fuse=False, winograd=False, fmap_reuse=False)
    )


accelerators = st.builds(
    AcceleratorConfig,
    rows=st.integers(1, 64),
    cols=st.integers(1, 64),
    flat=st.booleans(),
    dataflow=st.sampled_from(["os", "ws", "is", "rs"]),
    fmap_rlc=st.booleans(),
    param_cache=st.booleans(),
    pe_weight_rf_bytes=st.sampled_from([0, 448]),
    precision=st.just("int8"),
    ifmap_sram_bytes=st.integers(16 * 1024, 1 << 20),
    filter_sram_bytes=st.integers(16 * 1024, 1 << 20),
    ofmap_sram_bytes=st.integers(16 * 1024, 1 << 20),
    shared_sram_bytes=st.sampled_from([0, 0, 256 * 1024, 2 << 20]),
    double_buffering=st.booleans(),
    dram_bw_bytes_per_cycle=st.floats(0.5, 128),
    winograd=st.sampled_from(["none", "F2", "F4"]),
    zero_skipping=st.booleans(),
)


@settings(max_examples=12, deadline=None)
@given(
    accelerators,
    st.sampled_from(["resnet18", "mobilenet_v2", "squeezenet1_1"]),
    st.sampled_from(["latency", "energy", "dram"]),
    st.sampled_from([None, 0.5]),
)
def test_random_accelerators_within_limits(accel, model, objective, sparsity):
    sparsity = sparsity if accel.zero_skipping else None  # refused without zero-skipping
    check_limits(zoo_graph(model), accel, SimOptions(objective=objective, sparsity=sparsity))


@pytest.mark.parametrize("model", ["resnet18", "mobilenet_v2", "vgg16", "googlenet"])
def test_tiled_dram_never_exceeds_scalesim_fixed_schedule(model):
    """Per layer, the DRAM-minimising tiling moves at most SCALE-Sim's fixed-schedule bytes."""
    graph = zoo_graph(model)
    for preset in PRESETS:
        accel = load_preset(preset)
        tiled = simulate(
            graph, accel, SimOptions(objective="dram", fmap_reuse=False, winograd=False)
        )
        fixed = simulate(graph, accel, SimOptions(model_cycles="scalesim"))
        for t, f in zip(tiled.layers, fixed.layers, strict=True):
            if t.unit == "array":
                assert t.dram_bytes <= f.dram_bytes, (preset, t.name)


def test_operand_splits_add_up():
    graph = zoo_graph("resnet18")
    for opts in (SimOptions(), SimOptions(model_cycles="scalesim")):
        for layer in simulate(graph, load_preset("eyeriss"), opts).layers:
            assert sum(layer.sram_reads_by_operand.values()) == layer.sram_reads, layer.name
            assert sum(layer.sram_writes_by_operand.values()) == layer.sram_writes, layer.name
            reads, writes = layer.dram_read_bytes, layer.dram_write_bytes
            assert sum(reads.values()) + sum(writes.values()) == layer.dram_bytes
