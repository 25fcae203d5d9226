"""Every conv algorithm against torch's conv2d (float64 reference) on random shapes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from edgecnn.errors import ConfigError, ShapeError
from edgecnn.hardware.tiling import ConvShape
from edgecnn.kernels import CONV_ALGOS, Algorithm, choose_algorithm, conv2d
from edgecnn.kernels.compare import measure_error, random_operands, reference_conv, relative_error
from edgecnn.kernels.fft import fft_conv2d
from kernels_helpers import layers

#: fp32 error bounds relative to the output range, per algorithm (3x3 kernels for Winograd).
FP32_TOL = {
    Algorithm.DIRECT: 1e-6,
    Algorithm.DIRECT_LOOPS: 1e-6,
    Algorithm.IM2COL: 1e-6,
    Algorithm.WINOGRAD_F2: 1e-6,
    Algorithm.WINOGRAD_F4: 2e-5,
    Algorithm.WINOGRAD_F6: 5e-5,
    Algorithm.FFT: 1e-6,
    Algorithm.AUTO: 2e-5,
}


def test_dispatch_table_is_complete():
    assert set(CONV_ALGOS) == set(Algorithm)


def _run(s: ConvShape, algo: Algorithm, seed: int, bias: bool = True) -> float:
    x, w = random_operands(s, seed)
    b = torch.randn(s.out_channels, generator=torch.Generator().manual_seed(seed)) if bias else None
    y = conv2d(
        x,
        w,
        b,
        stride=(s.stride_h, s.stride_w),
        padding=(s.pad_top, s.pad_bottom, s.pad_left, s.pad_right),
        dilation=(s.dilation_h, s.dilation_w),
        groups=s.groups,
        algorithm=algo,
    )
    ref = reference_conv(x, w, s)
    if b is not None:
        ref = ref + b.double().view(1, -1, 1, 1)
    assert y.shape == ref.shape
    return relative_error(y, ref)


@pytest.mark.parametrize("algo", [a for a in Algorithm if not a.value.startswith("winograd")])
@settings(max_examples=30, deadline=None)
@given(s=layers(), seed=st.integers(0, 1000))
def test_matches_reference_fp32(algo, s, seed):
    reason = CONV_ALGOS[algo].unsupported(s)
    if reason:  # the algorithm refuses this layer: conv2d must say so clearly
        with pytest.raises(ShapeError, match="stride|limited"):
            _run(s, algo, seed)
        return
    assert _run(s, algo, seed) <= FP32_TOL[algo]


@pytest.mark.parametrize(
    "algo", [Algorithm.WINOGRAD_F2, Algorithm.WINOGRAD_F4, Algorithm.WINOGRAD_F6]
)
@settings(max_examples=30, deadline=None)
@given(s=layers(max_k=3, strided=False), seed=st.integers(0, 1000))
def test_winograd_matches_reference_fp32(algo, s, seed):
    tol = FP32_TOL[algo] if s.kernel_h == 3 else 2e-5
    assert _run(s, algo, seed) <= tol


@pytest.mark.parametrize(
    ("algo", "r", "tol"),
    [
        (Algorithm.WINOGRAD_F2, 5, 2e-5),
        (Algorithm.WINOGRAD_F4, 5, 2e-5),
        (Algorithm.WINOGRAD_F6, 5, 5e-3),
        (Algorithm.WINOGRAD_F4, 4, 2e-5),
    ],
)
def test_winograd_other_kernel_sizes(algo, r, tol):
    s = ConvShape(2, 5, 6, 13, 11, r, r, pad_top=2, pad_left=1, pad_bottom=2, pad_right=2)
    assert _run(s, algo, seed=3) <= tol


#: Low-precision product-stage bounds (3x3, relative to range); transforms stay in fp32.
LOW_TOL = {
    ("fp16", Algorithm.DIRECT): 2e-3,
    ("fp16", Algorithm.IM2COL): 2e-3,
    ("fp16", Algorithm.FFT): 2e-3,
    ("fp16", Algorithm.WINOGRAD_F2): 5e-3,
    ("fp16", Algorithm.WINOGRAD_F4): 5e-2,
    ("fp16", Algorithm.WINOGRAD_F6): 1e-1,
    ("bf16", Algorithm.DIRECT): 2e-2,
    ("bf16", Algorithm.IM2COL): 2e-2,
    ("bf16", Algorithm.FFT): 2e-2,
    ("bf16", Algorithm.WINOGRAD_F2): 5e-2,
    ("bf16", Algorithm.WINOGRAD_F4): 3e-1,
    ("bf16", Algorithm.WINOGRAD_F6): 5e-1,
}


@pytest.mark.parametrize(("precision", "algo"), list(LOW_TOL))
def test_low_precision_error_bounds(precision, algo):
    s = ConvShape(2, 24, 16, 14, 13, 3, 3, pad_top=1, pad_left=1, pad_bottom=1, pad_right=1)
    err = measure_error(s, algo, precision, seed=1)
    fp32 = measure_error(s, algo, "fp32", seed=1)
    assert fp32 < err <= LOW_TOL[(precision, algo)]


def test_winograd_error_grows_with_tile_size():
    s = ConvShape(1, 32, 32, 20, 20, 3, 3, pad_top=1, pad_left=1, pad_bottom=1, pad_right=1)
    errs = [
        measure_error(s, a, "fp16")
        for a in (Algorithm.WINOGRAD_F2, Algorithm.WINOGRAD_F4, Algorithm.WINOGRAD_F6)
    ]
    assert errs[0] < errs[1] < errs[2]


@pytest.mark.parametrize("tile", [0, 3, 4, 7, 100])
def test_fft_overlap_add_tiles(tile):
    s = ConvShape(
        2, 3, 4, 17, 12, 3, 5, pad_top=2, pad_left=1, pad_bottom=0, pad_right=3, dilation_h=2
    )
    x, w = random_operands(s, 5)
    y = fft_conv2d(x, w, None, s, tile=tile)
    assert relative_error(y, reference_conv(x, w, s)) <= 1e-6


def test_fft_tiles_large_inputs_by_default():
    from edgecnn.kernels.fft import fft_sizes

    s = ConvShape(1, 1, 1, 40, 20, 3, 3)
    bh, bw, fh, fw = fft_sizes(s, None)
    assert bh == 12 < s.in_h and fh == bh + 2


@pytest.mark.parametrize(
    ("algo", "kwargs", "match"),
    [
        ("winograd_f4", {"stride": 2}, "stride 1"),
        ("winograd_f2", {"stride": (1, 2)}, "stride 1"),
        ("fft", {"stride": 2}, "stride 1"),
    ],
)
def test_unsupported_cases_raise_clear_errors(algo, kwargs, match):
    x, w = torch.randn(1, 4, 9, 9), torch.randn(4, 4, 3, 3)
    with pytest.raises(ShapeError, match=match):
        conv2d(x, w, algorithm=algo, **kwargs)


def test_winograd_rejects_rectangular_kernels():
    with pytest.raises(ShapeError, match="square"):
        conv2d(torch.randn(1, 2, 8, 8), torch.randn(2, 2, 3, 1), algorithm="winograd_f2")


def test_bad_arguments():
    x = torch.randn(1, 4, 8, 8)
    with pytest.raises(ConfigError, match="winograd_f4"):
        conv2d(x, torch.randn(4, 4, 3, 3), algorithm="winograd")
    with pytest.raises(ShapeError, match="groups"):
        conv2d(x, torch.randn(4, 4, 3, 3), groups=3)
    with pytest.raises(ShapeError, match="per group"):
        conv2d(x, torch.randn(4, 3, 3, 3))
    with pytest.raises(ShapeError, match="bias"):
        conv2d(x, torch.randn(4, 4, 3, 3), torch.randn(3))
    with pytest.raises(ShapeError, match="4-D"):
        conv2d(torch.randn(4, 8, 8), torch.randn(4, 4, 3, 3))


def test_direct_loops_is_limited_to_small_shapes():
    with pytest.raises(ShapeError, match="direct"):
        conv2d(torch.randn(1, 64, 32, 32), torch.randn(64, 64, 3, 3), algorithm="direct_loops")


def test_auto_choices_are_valid_and_run():
    cases = [
        ConvShape(1, 64, 64, 28, 28, 3, 3, pad_top=1, pad_left=1, pad_bottom=1, pad_right=1),
        ConvShape(1, 64, 64, 5, 5, 3, 3, pad_top=1, pad_left=1, pad_bottom=1, pad_right=1),
        ConvShape(1, 32, 32, 20, 20, 3, 3, 2, 2, 1, 1, 1, 1, groups=32),
        ConvShape(1, 3, 8, 32, 32, 7, 7, 2, 2, 3, 3, 3, 3),
        ConvShape(1, 3, 8, 32, 32, 7, 7),
        ConvShape(1, 16, 8, 10, 10, 1, 1),
    ]
    expected = [
        Algorithm.WINOGRAD_F4,
        Algorithm.IM2COL,
        Algorithm.DIRECT,
        Algorithm.IM2COL,
        Algorithm.IM2COL,
        Algorithm.DIRECT,
    ]
    for s, exp in zip(cases, expected, strict=True):
        algo = choose_algorithm(s)
        assert algo == exp and CONV_ALGOS[algo].unsupported(s) is None
        assert _run(s, Algorithm.AUTO, seed=0) <= FP32_TOL[Algorithm.AUTO]


def test_matches_torch_conv2d_directly_in_fp32():
    x, w, b = torch.randn(3, 6, 10, 7), torch.randn(9, 2, 3, 3), torch.randn(9)
    ref = F.conv2d(x, w, b, 1, 1, 1, 3)
    for algo in (Algorithm.DIRECT, Algorithm.IM2COL, Algorithm.WINOGRAD_F4, Algorithm.FFT):
        torch.testing.assert_close(
            conv2d(x, w, b, 1, 1, 1, 3, algorithm=algo), ref, atol=1e-4, rtol=1e-4
        )
