"""Closed-form operation counts and extra memory of each algorithm, and an instrumented counter.

Conventions: ``mults`` are the general multiplications (data x weight) of the product stage:
the GEMM of direct/im2col, the elementwise products (summed over channels) of Winograd in the
transformed domain, the complex products of FFT (counted as complex multiplications; one
costs 4 real multiplications). ``adds`` are the additions of the product stage plus, for
Winograd, the additions of the input and output transforms applied separably with the sparse
transform matrices (``transform_adds``). Multiplications by transform constants other than
0 and +-1 are ``transform_mults`` (sparse, separable); ``impl_transform_mults`` counts what this
package's dense ``kron`` GEMM transforms actually execute. The filter transform is done once per
layer and is not part of a call. Bias is not counted. Extra memory is in elements (see
``extra_elems`` for the buffers), the padded input copy included. Winograd's buffers are given
for the whole batch; the implementation runs large batches in chunks of images
(``winograd.WINOGRAD_CHUNK_ELEMS``), so its peak is lower. im2col reports the chunk it allocates.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from edgecnn.hardware.tiling import ConvShape
from edgecnn.kernels.conv import CONV_ALGOS, Algorithm, choose_algorithm, winograd_m
from edgecnn.kernels.fft import fft_sizes
from edgecnn.kernels.im2col import im2col_allocated_elems
from edgecnn.kernels.winograd import winograd_transforms


@dataclass(frozen=True)
class AlgoCost:
    """Closed-form cost of one algorithm on one layer (counts are per call, whole batch)."""

    algorithm: str
    supported: bool
    reason: str | None = None
    mults: int = 0
    adds: int = 0
    transform_mults: int = 0
    transform_adds: int = 0
    impl_transform_mults: int = 0
    extra_elems: dict[str, int] = field(default_factory=dict)

    @property
    def extra_total_elems(self) -> int:
        """All extra buffers in elements."""
        return sum(self.extra_elems.values())

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return {
            "algorithm": self.algorithm,
            "supported": self.supported,
            "reason": self.reason,
            "mults": self.mults,
            "adds": self.adds,
            "transform_mults": self.transform_mults,
            "transform_adds": self.transform_adds,
            "impl_transform_mults": self.impl_transform_mults,
            "extra_elems": dict(self.extra_elems),
            "extra_total_elems": self.extra_total_elems,
        }


def _padded_elems(s: ConvShape) -> int:
    if s.pad_top == s.pad_bottom == s.pad_left == s.pad_right == 0:
        return 0
    return (
        s.batch
        * s.in_channels
        * (s.in_h + s.pad_top + s.pad_bottom)
        * (s.in_w + s.pad_left + s.pad_right)
    )


def _direct_cost(algo: Algorithm, s: ConvShape) -> AlgoCost:
    taps = s.n_per_group * s.kernel_h * s.kernel_w
    outs = s.output_elems
    extra: dict[str, int] = {}
    if algo is Algorithm.DIRECT and _padded_elems(s):
        extra["padded_input"] = _padded_elems(s)
    if algo is Algorithm.IM2COL:
        hp, wp = s.in_h + s.pad_top + s.pad_bottom, s.in_w + s.pad_left + s.pad_right
        extra["padded_input"] = s.batch * s.in_channels * hp * wp
        extra["im2col_buffer"] = im2col_allocated_elems(s)
    return AlgoCost(algo.value, True, mults=outs * taps, adds=outs * (taps - 1), extra_elems=extra)


def winograd_tiles(s: ConvShape, m: int) -> int:
    """Output tiles of F(m x m, .) over the batch, dilation phases included."""
    total = 0
    for ph in range(min(s.dilation_h, s.out_h)):
        for pw in range(min(s.dilation_w, s.out_w)):
            oh = math.ceil((s.out_h - ph) / s.dilation_h)
            ow = math.ceil((s.out_w - pw) / s.dilation_w)
            total += math.ceil(oh / m) * math.ceil(ow / m)
    return s.batch * total


def _sum_nnz_minus_one(mat) -> int:  # noqa: ANN001
    return sum(sum(v != 0 for v in row) - 1 for row in mat)


def _non_unit(mat) -> int:  # noqa: ANN001
    return sum(v not in (0, 1, -1) for row in mat for v in row)


def _winograd_cost(algo: Algorithm, s: ConvShape, m: int) -> AlgoCost:
    t = winograd_transforms(m, s.kernel_h)
    a = t.alpha
    tiles = winograd_tiles(s, m)
    c, k, cg = s.in_channels, s.out_channels, s.n_per_group
    mults = a * a * tiles * cg * k
    prod_adds = a * a * tiles * (cg - 1) * k
    # input transform B^T d B per tile and channel: 2 passes of a columns/rows each
    in_adds, in_mults = 2 * a * _sum_nnz_minus_one(t.BT), 2 * a * _non_unit(t.BT)
    # output transform A^T M A per tile and output channel: a columns, then m rows
    out_adds, out_mults = (a + m) * _sum_nnz_minus_one(t.AT), (a + m) * _non_unit(t.AT)
    tr_adds = tiles * (c * in_adds + k * out_adds)
    tr_mults = tiles * (c * in_mults + k * out_mults)
    impl = tiles * (c * a**4 + k * m * m * a * a)
    th_tw_buf = 0
    for ph in range(min(s.dilation_h, s.out_h)):
        for pw in range(min(s.dilation_w, s.out_w)):
            oh = math.ceil((s.out_h - ph) / s.dilation_h)
            ow = math.ceil((s.out_w - pw) / s.dilation_w)
            th_tw_buf = max(
                th_tw_buf,
                (math.ceil(oh / m) * m + s.kernel_h - 1) * (math.ceil(ow / m) * m + s.kernel_w - 1),
            )
    extra = {
        "padded_input": s.batch * c * th_tw_buf,
        "tiles": a * a * tiles * c,
        "transformed_input": a * a * tiles * c,
        "products": a * a * tiles * k,
        "transformed_output": m * m * tiles * k,
        "transformed_filters": a * a * cg * k,
    }
    return AlgoCost(
        algo.value,
        True,
        mults=mults,
        adds=prod_adds + tr_adds,
        transform_mults=tr_mults,
        transform_adds=tr_adds,
        impl_transform_mults=impl,
        extra_elems=extra,
    )


def _fft_cost(s: ConvShape) -> AlgoCost:
    bh, bw, fh, fw = fft_sizes(s, None)
    hp, wp = s.in_h + s.pad_top + s.pad_bottom, s.in_w + s.pad_left + s.pad_right
    blocks = math.ceil(hp / bh) * math.ceil(wp / bw)
    freqs = fh * (fw // 2 + 1)
    c, k, cg = s.in_channels, s.out_channels, s.n_per_group
    mults = s.batch * blocks * freqs * cg * k  # complex multiplications
    adds = s.batch * blocks * freqs * (cg - 1) * k  # complex additions
    extra = {
        "padded_input": s.batch * c * math.ceil(hp / bh) * bh * math.ceil(wp / bw) * bw,
        "input_spectra": 2 * s.batch * blocks * c * freqs,
        "filter_spectra": 2 * k * cg * freqs,
        "output_spectra": 2 * s.batch * blocks * k * freqs,
        "output_blocks": s.batch * blocks * k * fh * fw,
    }
    return AlgoCost(Algorithm.FFT.value, True, mults=mults, adds=adds, extra_elems=extra)


def algorithm_cost(s: ConvShape, algorithm: Algorithm | str) -> AlgoCost:
    """Closed-form cost of ``algorithm`` on layer ``s`` (``auto`` resolves to its choice)."""
    algo = Algorithm(algorithm)
    if algo is Algorithm.AUTO:
        algo = choose_algorithm(s)
    reason = CONV_ALGOS[algo].unsupported(s)
    if reason:
        return AlgoCost(algo.value, False, reason=reason)
    m = winograd_m(algo)
    if m is not None:
        return _winograd_cost(algo, s, m)
    if algo is Algorithm.FFT:
        return _fft_cost(s)
    return _direct_cost(algo, s)


def winograd_tile_savings(m: int, r: int) -> float:
    """Multiplications per output tile, direct over Winograd: ``m^2 r^2 / (m + r - 1)^2``."""
    return (m * r) ** 2 / (m + r - 1) ** 2


class MultCounter(TorchDispatchMode):
    """Counts the multiplications actually executed by matrix products and elementwise products.

    ``counts`` maps an aten op name (``mm``, ``bmm``, ``mul``; oneDNN's ``_linear_pointwise``
    matmul counts as ``mm``) to multiplications; for complex
    operands ``complex_`` is prefixed (complex multiplications). Tensor-by-scalar products are
    not counted.
    """

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        out = func(*args, **kwargs)
        n = 0
        if name in ("mm", "addmm"):
            a, b = (args[0], args[1]) if name == "mm" else (args[1], args[2])
            n = a.shape[0] * a.shape[1] * b.shape[1]
        elif name in ("bmm", "baddbmm"):
            a, b = (args[0], args[1]) if name == "bmm" else (args[1], args[2])
            n = a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]
        elif name == "_linear_pointwise":  # oneDNN matmul: input (..., K) x weight (N, K)
            a, b = args[0], args[1]
            n = a.numel() * b.shape[0]
            name = "mm"
        elif name == "mul" and all(isinstance(v, torch.Tensor) and v.dim() > 0 for v in args[:2]):
            n = out.numel()
        if n:
            prefix = "complex_" if out.is_complex() else ""
            self.counts[prefix + name] += n
        return out


def count_mults(fn, *args, **kwargs) -> tuple[object, Counter[str]]:  # noqa: ANN001
    """Run ``fn(*args, **kwargs)`` under :class:`MultCounter`; return (result, counts)."""
    with MultCounter() as mc:
        result = fn(*args, **kwargs)
    return result, mc.counts
