"""FFT convolution (``torch.fft``), whole-image or tiled with overlap-add.

The padded input is cut into ``bh x bw`` blocks (one block = the whole padded image when no tile
is given). Each block's full linear convolution with the flipped, dilated kernel is computed with
real FFTs of size ``(bh + SH - 1) x (bw + SW - 1)`` (``SH = (KH-1)*DH + 1`` the dilated kernel
span), the products are summed over input channels in the frequency domain (one complex batched
contraction), and the blocks' results are added where they overlap (``fold``), which gives the
full convolution ``Y``; the cross-correlation output is ``out[p, q] = Y[p + SH - 1, q + SW - 1]``.
Stride other than 1 is refused (an FFT computes every output position).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from edgecnn.errors import ShapeError
from edgecnn.hardware.tiling import ConvShape
from edgecnn.kernels._common import add_bias, pad_input

#: Default overlap-add block edge, in multiples of the dilated kernel span (at least 8): blocks
#: much larger than the kernel make the filter spectra (K x C x FFT size) needlessly large.
FFT_TILE_PER_SPAN = 4


def fft_unsupported(s: ConvShape) -> str | None:
    """Why FFT convolution cannot run this layer (``None`` if it can)."""
    if s.stride_h != 1 or s.stride_w != 1:
        return (
            f"FFT convolution needs stride 1, this layer has stride {s.stride_h}x{s.stride_w}; "
            "use algorithm='im2col' or 'direct'"
        )
    return None


def fft_sizes(s: ConvShape, tile: int | None) -> tuple[int, int, int, int]:
    """(block_h, block_w, fft_h, fft_w) for the layer and tile choice: ``tile=None`` picks
    ``max(8, 4 * span)`` (:data:`FFT_TILE_PER_SPAN`), 0 the whole padded image."""
    hp = s.in_h + s.pad_top + s.pad_bottom
    wp = s.in_w + s.pad_left + s.pad_right
    span_h = (s.kernel_h - 1) * s.dilation_h + 1
    span_w = (s.kernel_w - 1) * s.dilation_w + 1
    if tile is None:
        tile = max(8, FFT_TILE_PER_SPAN * max(span_h, span_w))
    bh, bw = (min(tile, hp), min(tile, wp)) if tile > 0 else (hp, wp)
    return bh, bw, bh + span_h - 1, bw + span_w - 1


def _round_complex(z: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Round real and imaginary parts to ``dtype`` (CPU has no half-precision complex math)."""
    return torch.complex(z.real.to(dtype).to(z.real.dtype), z.imag.to(dtype).to(z.real.dtype))


def filter_spectra(weight: torch.Tensor, s: ConvShape, tile: int | None = None) -> torch.Tensor:
    """The flipped, dilated filters' spectra as the batched-GEMM operand ``(G*F, Cg, Kg)``
    (``F`` frequencies of the block FFT); computed once per layer by :class:`FFTConv`."""
    g, cg, kg, k = s.groups, s.n_per_group, s.m_per_group, s.out_channels
    bh, bw, fh, fw = fft_sizes(s, tile)
    span_h, span_w = fh - bh + 1, fw - bw + 1
    real = torch.float64 if weight.dtype == torch.float64 else torch.float32
    wd = weight.to(real).new_zeros(k, cg, span_h, span_w)
    wd[:, :, :: s.dilation_h, :: s.dilation_w] = weight.to(real)
    wf = torch.flip(wd, dims=(-2, -1)).view(g, kg, cg, span_h, span_w)
    ws = torch.fft.rfft2(wf, s=(fh, fw))  # (g, kg, cg, fh, fw//2+1)
    nf = fh * (fw // 2 + 1)
    return ws.reshape(g, kg, cg, nf).permute(0, 3, 2, 1).reshape(g * nf, cg, kg).contiguous()


def fft_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    s: ConvShape,
    tile: int | None = None,
    product_dtype: torch.dtype | None = None,
    spectra: torch.Tensor | None = None,
) -> torch.Tensor:
    """FFT convolution; ``tile`` > 0 selects overlap-add with ``tile x tile`` blocks, 0 one block
    for the whole image, ``None`` the default block (:func:`fft_sizes`).

    ``product_dtype`` (fp16/bf16) rounds both spectra's real and imaginary parts to that dtype
    before the complex products, which then run in complex64. ``spectra`` are precomputed
    :func:`filter_spectra` for the same ``tile``.
    """
    reason = fft_unsupported(s)
    if reason:
        raise ShapeError(reason)
    n, g, cg, kg, k = s.batch, s.groups, s.n_per_group, s.m_per_group, s.out_channels
    xp = pad_input(x, s)
    hp, wp = xp.shape[-2:]
    bh, bw, fh, fw = fft_sizes(s, tile)
    span_h, span_w = fh - bh + 1, fw - bw + 1
    nbh, nbw = -(-hp // bh), -(-wp // bw)
    real = torch.float64 if x.dtype == torch.float64 else torch.float32
    xp = F.pad(xp.to(real), (0, nbw * bw - wp, 0, nbh * bh - hp))
    blocks = xp.view(n, g, cg, nbh, bh, nbw, bw).permute(0, 3, 5, 1, 2, 4, 6)
    xs = torch.fft.rfft2(blocks, s=(fh, fw))  # (n, nbh, nbw, g, cg, fh, fw//2+1)
    ws_b = filter_spectra(weight, s, tile) if spectra is None else spectra
    # sum over input channels: one complex batched GEMM over (group, frequency)
    nf, nb = fh * (fw // 2 + 1), n * nbh * nbw
    xs_b = xs.reshape(nb, g, cg, nf).permute(1, 3, 0, 2).reshape(g * nf, nb, cg).contiguous()
    if product_dtype is not None and product_dtype not in (torch.float32, torch.float64):
        xs_b, ws_b = _round_complex(xs_b, product_dtype), _round_complex(ws_b, product_dtype)
    if cg == 1 and kg == 1:  # depthwise: elementwise complex products
        ys = xs_b * ws_b
    else:
        ys = torch.bmm(xs_b, ws_b)  # (g * nf, nb, kg)
    ys = ys.view(g, fh, fw // 2 + 1, nb, kg).permute(3, 0, 4, 1, 2)
    ys = ys.reshape(n, nbh, nbw, g, kg, fh, fw // 2 + 1)
    yb = torch.fft.irfft2(ys, s=(fh, fw))  # (n, nbh, nbw, g, kg, fh, fw)
    cols = yb.reshape(n, nbh * nbw, k * fh * fw).transpose(1, 2)
    full = F.fold(
        cols,
        output_size=(nbh * bh + span_h - 1, nbw * bw + span_w - 1),
        kernel_size=(fh, fw),
        stride=(bh, bw),
    )
    out = full[:, :, span_h - 1 : span_h - 1 + s.out_h, span_w - 1 : span_w - 1 + s.out_w]
    return add_bias(out.to(x.dtype).contiguous(), bias)
