"""Closed-form multiplication counts and buffers against instrumented runs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from edgecnn.hardware.tiling import ConvShape
from edgecnn.kernels import CONV_ALGOS, Algorithm, WinogradConv, conv2d
from edgecnn.kernels.compare import conv_kwargs, random_operands
from edgecnn.kernels.counts import algorithm_cost, count_mults
from edgecnn.kernels.direct import direct_loops
from edgecnn.kernels.im2col import (
    im2col_allocated_elems,
    im2col_buffer_elems,
    im2col_chunk_rows,
    im2col_matrix,
)
from kernels_helpers import layers

PRODUCT_OPS = {
    Algorithm.DIRECT: ("bmm", "mul"),
    Algorithm.IM2COL: ("mm", "bmm", "mul"),
    Algorithm.FFT: ("complex_bmm", "complex_mul"),
}


@settings(max_examples=25, deadline=None)
@given(s=layers(max_k=3))
def test_product_mults_equal_instrumented_counts(s):
    x, w = random_operands(s)
    kw = conv_kwargs(s)
    for algo, ops in PRODUCT_OPS.items():
        cost = algorithm_cost(s, algo)
        if not cost.supported:
            continue
        _, counts = count_mults(conv2d, x, w, algorithm=algo, **kw)
        assert sum(counts[o] for o in ops) == cost.mults, algo
        assert sum(counts.values()) == cost.mults  # nothing else multiplies tensors
    for algo, m in (
        (Algorithm.WINOGRAD_F2, 2),
        (Algorithm.WINOGRAD_F4, 4),
        (Algorithm.WINOGRAD_F6, 6),
    ):
        cost = algorithm_cost(s, algo)
        if not cost.supported:
            continue
        conv = WinogradConv.prepare(w, m, groups=s.groups)  # filter transform: once, not counted
        _, counts = count_mults(conv, x, None, kw["padding"], kw["dilation"])
        assert counts["bmm"] + counts["mul"] == cost.mults
        assert counts["mm"] == cost.impl_transform_mults


@pytest.mark.parametrize(("m", "saving"), [(2, 2.25), (4, 4.0)])
def test_winograd_saving_per_tile_vs_direct(m, saving):
    # output divisible by m: every tile is full, so the ratio is exactly m^2 r^2 / alpha^2
    s = ConvShape(2, 8, 8, 4 * m + 2, 2 * m + 2, 3, 3)
    direct = algorithm_cost(s, Algorithm.DIRECT).mults
    wino = algorithm_cost(s, f"winograd_f{m}").mults
    assert direct / wino == pytest.approx(saving)
    x, w = random_operands(s)
    _, dcount = count_mults(conv2d, x, w, algorithm="direct")
    conv = WinogradConv.prepare(w, m)
    _, wcount = count_mults(conv, x)
    assert dcount["bmm"] / wcount["bmm"] == pytest.approx(saving)


def test_loop_nest_counts_every_multiply():
    s = ConvShape(2, 4, 6, 7, 6, 3, 2, 2, 1, groups=2)
    x, w = random_operands(s)
    _, counts = direct_loops(x, w, None, s)
    assert counts.multiplies == algorithm_cost(s, Algorithm.DIRECT).mults
    # with padding, taps on padding are skipped: fewer than the closed form's full MACs
    sp = ConvShape(1, 2, 2, 5, 5, 3, 3, pad_top=1, pad_left=1, pad_bottom=1, pad_right=1)
    _, counts = direct_loops(*random_operands(sp), None, sp)
    assert (
        counts.multiplies == 2 * 2 * (3 * 5 - 2) ** 2
    )  # (rows taps) x (cols taps) per channel pair


def test_im2col_buffer_sizes():
    s = ConvShape(3, 6, 5, 11, 9, 3, 2, 2, 1, 1, 0, 1, 1, dilation_h=2)
    x, _ = random_operands(s)
    assert im2col_matrix(x, s).numel() == im2col_buffer_elems(s)
    assert im2col_buffer_elems(s) == s.batch * s.out_h * s.out_w * 6 * 6
    assert im2col_allocated_elems(s, 0) == im2col_buffer_elems(s)
    rows = im2col_chunk_rows(s, 500)
    assert rows * 36 <= 500 or rows == s.out_w
    assert algorithm_cost(s, Algorithm.IM2COL).extra_elems[
        "im2col_buffer"
    ] == im2col_allocated_elems(s)


def test_unsupported_cost_has_reason():
    s = ConvShape(1, 4, 4, 8, 8, 3, 3, 2, 2)
    for algo in Algorithm:
        cost = algorithm_cost(s, algo)
        assert cost.supported == (
            CONV_ALGOS[algo if algo != Algorithm.AUTO else Algorithm.IM2COL].unsupported(s) is None
        )
        if not cost.supported:
            assert "stride" in cost.reason
    assert algorithm_cost(s, "auto").algorithm == "im2col"


def test_winograd_memory_and_transform_counts_are_consistent():
    s = ConvShape(1, 16, 32, 16, 16, 3, 3, pad_top=1, pad_left=1, pad_bottom=1, pad_right=1)
    c = algorithm_cost(s, Algorithm.WINOGRAD_F4)
    tiles = 16  # 4x4 tiles of 4x4 outputs
    assert c.extra_elems["transformed_input"] == 36 * tiles * 16
    assert c.extra_elems["products"] == 36 * tiles * 32
    assert c.extra_elems["transformed_filters"] == 36 * 16 * 32
    assert 0 < c.transform_adds < c.adds
    # the dense kron transforms do more work than the sparse separable ones
    assert c.impl_transform_mults > c.transform_mults
