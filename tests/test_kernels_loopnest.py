"""Tiled loop nests: correct results and DRAM traffic equal to the accelerator's closed form."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from edgecnn.errors import ConfigError
from edgecnn.hardware.tiling import ConvShape, LoopOrder, Tiles, tile_footprint, tiled_traffic
from edgecnn.kernels.compare import conv_kwargs, parse_layer, random_operands, reference_conv
from edgecnn.kernels.loopnest import Buffers, best_tiling_per_order, rank_orders, tiled_conv2d


@st.composite
def cases(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    depthwise = groups > 1 and draw(st.booleans())
    cg = 1 if depthwise else draw(st.integers(1, 6))
    kg = 1 if depthwise else draw(st.integers(1, 6))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    stride = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    pads = [draw(st.integers(0, 3)) for _ in range(4)]
    span_h, span_w = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    h = draw(st.integers(max(1, span_h - pads[0] - pads[1]), 12))
    w = draw(st.integers(max(1, span_w - pads[2] - pads[3]), 12))
    s = ConvShape(
        draw(st.integers(1, 3)),
        groups * cg,
        groups * kg,
        h,
        w,
        kh,
        kw,
        stride[0],
        stride[1],
        pads[0],
        pads[2],
        pads[1],
        pads[3],
        dh,
        dw,
        groups,
    )
    tiles = Tiles(*(draw(st.integers(1, 7)) for _ in range(4)))
    return s, tiles, draw(st.sampled_from(list(LoopOrder)))


def _run(s: ConvShape, tiles: Tiles, order: LoopOrder, buffers: Buffers | None = None):
    x, w = random_operands(s)
    x, w = x.double(), w.double()
    b = torch.randn(s.out_channels, dtype=torch.float64)
    res = tiled_conv2d(x, w, tiles, order, b, buffers=buffers, **conv_kwargs(s))
    ref = reference_conv(x, w, s) + b.view(1, -1, 1, 1)
    return res, ref


@settings(max_examples=40, deadline=None)
@given(case=cases())
def test_traffic_equals_closed_form_and_result_is_right(case):
    s, tiles, order = case
    res, ref = _run(s, tiles, order)
    torch.testing.assert_close(res.output, ref, atol=1e-10, rtol=1e-10)
    assert res.traffic == tiled_traffic(s, tiles, order)
    fp = tile_footprint(s, tiles)
    assert res.largest_tiles.weight_elems == fp.weight_elems
    assert res.largest_tiles.output_elems == fp.output_elems
    assert res.largest_tiles.input_elems <= fp.input_elems


def test_fixed_cases_cover_the_edge_cases():
    """Depthwise, stride > kernel (skipped rows loaded), batch > 1, non-divisible tiles, padding."""
    fixed = [
        (ConvShape(2, 6, 6, 9, 8, 3, 3, 1, 1, 1, 1, 1, 1, groups=6), Tiles(1, 1, 4, 3)),
        (ConvShape(3, 4, 5, 11, 10, 1, 2, 3, 2), Tiles(2, 3, 2, 2)),
        (ConvShape(1, 7, 5, 8, 9, 3, 2, 2, 1, 2, 0, 3, 1, 2, 1), Tiles(4, 3, 5, 7)),
        (ConvShape(2, 9, 6, 10, 7, 3, 3, 1, 1, 0, 0, 0, 0, 1, 1, 3), Tiles(1, 2, 3, 4)),
        (ConvShape(1, 3, 2, 3, 3, 5, 5, 1, 1, 4, 4, 4, 4), Tiles(2, 2, 1, 1)),  # boxes of padding
    ]
    for s, tiles in fixed:
        for order in LoopOrder:
            res, ref = _run(s, tiles, order)
            torch.testing.assert_close(res.output, ref, atol=1e-10, rtol=1e-10)
            assert res.traffic == tiled_traffic(s, tiles, order), (s, tiles, order)


def test_orders_differ_as_expected():
    """Weight reuse reads weights once; output reuse spills no partial sums; input reuse reads
    each input tile once."""
    s = ConvShape(2, 16, 16, 12, 12, 3, 3, 1, 1, 1, 1, 1, 1)
    tiles = Tiles(4, 4, 4, 4)
    wr, _ = _run(s, tiles, LoopOrder.WEIGHT_REUSE)
    orr, _ = _run(s, tiles, LoopOrder.OUTPUT_REUSE)
    ir, _ = _run(s, tiles, LoopOrder.INPUT_REUSE)
    assert wr.traffic.weight_reads == s.weight_elems
    assert orr.traffic.psum_writes == 0 and orr.traffic.psum_reads == 0
    assert ir.traffic.input_reads < orr.traffic.input_reads
    assert wr.traffic.psum_writes > 0


def test_buffers_are_enforced():
    s = ConvShape(1, 8, 8, 8, 8, 3, 3)
    with pytest.raises(ConfigError, match="buffers"):
        _run(s, Tiles(8, 8, 6, 6), LoopOrder.OUTPUT_REUSE, Buffers(100, 10_000, 10_000))
    res, _ = _run(s, Tiles(2, 2, 2, 2), LoopOrder.OUTPUT_REUSE, Buffers(32, 36, 8))
    assert res.largest_tiles.input_elems <= 32


def test_which_order_wins_depends_on_the_layer():
    """At fixed tiles 16x16x8x8: weight reuse wins ResNet 3x3 layers with many spatial tiles,
    output reuse wins a 1x1 expansion (input reuse rereads the 256-channel output as partial
    sums), and when the map is one spatial tile (7x7) output and weight reuse tie."""
    tiles = Tiles(16, 16, 8, 8)
    win = {
        spec: rank_orders(parse_layer(spec), tiles)
        for spec in ("56x56x64x64k3", "28x28x128x128k3", "56x56x64x256k1", "7x7x512x512k3")
    }
    assert win["56x56x64x64k3"][0].order == LoopOrder.WEIGHT_REUSE
    assert win["28x28x128x128k3"][0].order == LoopOrder.WEIGHT_REUSE
    assert win["56x56x64x256k1"][0].order == LoopOrder.OUTPUT_REUSE
    tie = win["7x7x512x512k3"]
    assert tie[0].traffic.total == tie[1].traffic.total < tie[2].traffic.total
    for ranked in win.values():
        assert [c.traffic.total for c in ranked] == sorted(c.traffic.total for c in ranked)


def test_order_ranking_from_executed_loop_nests():
    """The same winners from the executable loop nests on a scaled-down layer."""
    s = parse_layer("16x16x8x8k3b2")
    tiles = Tiles(4, 4, 4, 4)
    x, w = random_operands(s)
    measured = {o: tiled_conv2d(x, w, tiles, o, **conv_kwargs(s)).traffic.total for o in LoopOrder}
    ranked = rank_orders(s, tiles)
    assert [measured[c.order] for c in ranked] == [c.traffic.total for c in ranked]
    assert ranked[0].order == LoopOrder.WEIGHT_REUSE


def test_best_tiling_search_fits_buffers():
    buffers = Buffers(8192, 8192, 8192)
    for spec in ("112x112x16x16k3", "7x7x512x512k3", "224x224x3x64k7s2p3"):
        s = parse_layer(spec)
        ranked = best_tiling_per_order(s, buffers)
        assert {c.order for c in ranked} == set(LoopOrder)
        totals = [c.traffic.total for c in ranked]
        assert totals == sorted(totals)
        for c in ranked:
            assert buffers.fits(tile_footprint(s, c.tiles))
            assert c.traffic == tiled_traffic(s, c.tiles, c.order)
    with pytest.raises(ConfigError, match="fits"):
        best_tiling_per_order(parse_layer("8x8x4x4k3"), Buffers(1, 1, 1))


def test_untiled_matches_single_tile_conv():
    s = ConvShape(1, 3, 4, 6, 6, 3, 3)
    x, w = random_operands(s)
    res = tiled_conv2d(x, w, Tiles(99, 99, 99, 99), LoopOrder.INPUT_REUSE)
    torch.testing.assert_close(res.output, F.conv2d(x, w), atol=1e-5, rtol=1e-5)
    assert res.traffic.total == s.input_elems + s.weight_elems + s.output_elems
