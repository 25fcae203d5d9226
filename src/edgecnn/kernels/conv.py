"""The one entry point :func:`conv2d` and the complete dispatch table of algorithms.

Each :class:`Algorithm` has one :class:`AlgoImpl` in :data:`CONV_ALGOS` (a test checks that the
table is complete): a ``run`` function ``(x, weight, bias, shape, product_dtype) -> Tensor`` and
an ``unsupported`` check ``shape -> reason | None`` used both to raise a clear
:class:`ShapeError` and by ``auto`` to skip algorithms that cannot run a layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import torch

from edgecnn.errors import ConfigError, ShapeError
from edgecnn.hardware.tiling import ConvShape
from edgecnn.kernels._common import IntPair, conv_shape
from edgecnn.kernels.direct import LOOP_NEST_MAX_MACS, direct_conv2d, direct_loops
from edgecnn.kernels.fft import fft_conv2d, fft_unsupported
from edgecnn.kernels.im2col import im2col_conv2d
from edgecnn.kernels.winograd import winograd_conv2d, winograd_unsupported


class Algorithm(str, Enum):
    """Convolution algorithms; ``AUTO`` picks one per layer (see :func:`choose_algorithm`)."""

    DIRECT = "direct"
    DIRECT_LOOPS = "direct_loops"
    IM2COL = "im2col"
    WINOGRAD_F2 = "winograd_f2"
    WINOGRAD_F4 = "winograd_f4"
    WINOGRAD_F6 = "winograd_f6"
    FFT = "fft"
    AUTO = "auto"


RunFn = Callable[
    [torch.Tensor, torch.Tensor, "torch.Tensor | None", ConvShape, "torch.dtype | None"],
    torch.Tensor,
]


@dataclass(frozen=True)
class AlgoImpl:
    """One algorithm: how to run it and when it cannot."""

    run: RunFn
    unsupported: Callable[[ConvShape], str | None]


def _always(_: ConvShape) -> None:
    return None


def _loops_unsupported(s: ConvShape) -> str | None:
    if s.macs > LOOP_NEST_MAX_MACS:
        return (
            f"direct_loops is a pure-Python reference limited to {LOOP_NEST_MAX_MACS} MACs, "
            f"this layer has {s.macs}; use algorithm='direct'"
        )
    return None


def _run_loops(x, weight, bias, s, product_dtype):  # noqa: ANN001
    if product_dtype is not None and product_dtype != x.dtype:
        x, weight = x.to(product_dtype).to(x.dtype), weight.to(product_dtype).to(weight.dtype)
    return direct_loops(x, weight, bias, s)[0]


def _run_winograd(m: int) -> RunFn:
    return lambda x, w, b, s, pdt: winograd_conv2d(x, w, b, s, m, product_dtype=pdt)


def _run_auto(x, weight, bias, s, product_dtype):  # noqa: ANN001
    algo = choose_algorithm(s)
    return CONV_ALGOS[algo].run(x, weight, bias, s, product_dtype)


#: The dispatch table: every member of :class:`Algorithm` has exactly one entry.
CONV_ALGOS: dict[Algorithm, AlgoImpl] = {
    Algorithm.DIRECT: AlgoImpl(direct_conv2d, _always),
    Algorithm.DIRECT_LOOPS: AlgoImpl(_run_loops, _loops_unsupported),
    Algorithm.IM2COL: AlgoImpl(im2col_conv2d, _always),
    Algorithm.WINOGRAD_F2: AlgoImpl(_run_winograd(2), winograd_unsupported),
    Algorithm.WINOGRAD_F4: AlgoImpl(_run_winograd(4), winograd_unsupported),
    Algorithm.WINOGRAD_F6: AlgoImpl(_run_winograd(6), winograd_unsupported),
    Algorithm.FFT: AlgoImpl(
        lambda x, w, b, s, pdt: fft_conv2d(x, w, b, s, None, pdt), fft_unsupported
    ),
    Algorithm.AUTO: AlgoImpl(_run_auto, _always),
}


def winograd_m(algo: Algorithm) -> int | None:
    """Output tile size m of a Winograd algorithm, ``None`` for the others."""
    return {Algorithm.WINOGRAD_F2: 2, Algorithm.WINOGRAD_F4: 4, Algorithm.WINOGRAD_F6: 6}.get(algo)


def parse_algorithm(name: str | Algorithm) -> Algorithm:
    """``"winograd_f4"`` -> ``Algorithm.WINOGRAD_F4``; :class:`ConfigError` listing valid names."""
    if isinstance(name, Algorithm):
        return name
    try:
        return Algorithm(name)
    except ValueError:
        valid = ", ".join(a.value for a in Algorithm)
        raise ConfigError(f"unknown conv algorithm '{name}'; choose one of: {valid}") from None


def choose_algorithm(s: ConvShape) -> Algorithm:
    """The algorithm ``auto`` runs: the fastest of ours on ``benchmarks/bench_kernels.py``
    (single-threaded fp32, ResNet-50 and MobileNetV2 layers at batch 1 and 8).

    Rules: depthwise layers and 1x1 kernels run ``direct`` (one elementwise product or one GEMM
    per tap, no buffers); stride-1 square 3x3 layers with at least 32 input channels per group
    run ``winograd_f4``, or ``im2col`` when fewer than 100 output pixels (batch x OH x OW) leave
    too few tiles to amortise the transforms; everything else (strided, rectangular, large
    kernels, few channels) runs ``im2col``. FFT never won on the benchmarked layers.
    """
    depthwise = s.n_per_group == 1 and s.m_per_group == 1
    if depthwise or (s.kernel_h == 1 and s.kernel_w == 1):
        return Algorithm.DIRECT
    if winograd_unsupported(s) is None and s.kernel_h == 3 and s.n_per_group >= 32:
        if s.batch * s.out_h * s.out_w >= 100:
            return Algorithm.WINOGRAD_F4
    return Algorithm.IM2COL


def conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    algorithm: str | Algorithm = "auto",
    product_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """2-D convolution of NCHW ``x`` with ``weight`` (K, C/groups, KH, KW), like ``F.conv2d``.

    ``padding`` is an int, (h, w) or (top, bottom, left, right). ``algorithm`` is one of
    :class:`Algorithm`'s values. ``product_dtype`` (e.g. ``torch.float16``) runs the multiply stage
    in low precision with transforms kept in float32, as hardware would. Raises
    :class:`ShapeError` when the algorithm cannot run this layer (e.g. Winograd with stride 2).
    """
    algo = parse_algorithm(algorithm)
    s = conv_shape(x.shape, weight.shape, stride, padding, dilation, groups)
    if bias is not None and tuple(bias.shape) != (s.out_channels,):
        raise ShapeError(f"bias must have shape ({s.out_channels},), got {tuple(bias.shape)}")
    impl = CONV_ALGOS[algo]
    reason = impl.unsupported(s)
    if reason:
        raise ShapeError(reason)
    return impl.run(x, weight, bias, s, product_dtype)
