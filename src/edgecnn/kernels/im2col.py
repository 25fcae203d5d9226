"""im2col + GEMM: unroll every receptive field into a row of a matrix, then one matrix product.

Layout: the input is copied once into a zero-padded channels-last buffer; the im2col matrix is
``(N*OH*OW) x (KH*KW*Cg)`` per group (rows = output pixels, columns = (tap, channel)), gathered
from a strided view of that buffer; the weights become a ``(KH*KW*Cg) x Kg`` matrix. Groups run
as one batched GEMM (``bmm`` over groups). The im2col buffer costs
``N*OH*OW*KH*KW*C`` elements (:func:`im2col_buffer_elems`): ``KH*KW`` times the input for a
stride-1 "same" layer, the memory cost that motivates Winograd and direct methods.
"""

from __future__ import annotations

import torch

from edgecnn.hardware.tiling import ConvShape
from edgecnn.kernels._common import add_bias, channels_last_padded


def im2col_buffer_elems(s: ConvShape) -> int:
    """Elements of the im2col matrix: ``N*OH*OW * KH*KW*C`` (all groups)."""
    return s.batch * s.out_h * s.out_w * s.kernel_h * s.kernel_w * s.in_channels


def im2col_matrix(x: torch.Tensor, s: ConvShape) -> torch.Tensor:
    """The im2col buffer as ``(G, N*OH*OW, KH*KW*Cg)`` (a fresh contiguous tensor)."""
    hp = s.in_h + s.pad_top + s.pad_bottom
    wp = s.in_w + s.pad_left + s.pad_right
    buf = channels_last_padded(x, s.pad_top, s.pad_left, hp, wp)
    sn, sh, sw, sc = buf.stride()
    g, cg = s.groups, s.n_per_group
    view = buf.as_strided(
        (s.batch, s.out_h, s.out_w, s.kernel_h, s.kernel_w, g, cg),
        (sn, s.stride_h * sh, s.stride_w * sw, s.dilation_h * sh, s.dilation_w * sw, cg * sc, sc),
    )
    rows = s.batch * s.out_h * s.out_w
    taps = s.kernel_h * s.kernel_w * cg
    if g == 1:
        return view.reshape(1, rows, taps)
    return view.permute(5, 0, 1, 2, 3, 4, 6).reshape(g, rows, taps)


def weight_matrix(weight: torch.Tensor, s: ConvShape) -> torch.Tensor:
    """Weights as ``(G, KH*KW*Cg, Kg)``, matching :func:`im2col_matrix`'s column order."""
    g, kg, cg = s.groups, s.m_per_group, s.n_per_group
    w = weight.reshape(g, kg, cg, s.kernel_h, s.kernel_w).permute(0, 3, 4, 2, 1)
    return w.reshape(g, s.kernel_h * s.kernel_w * cg, kg)


def im2col_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    s: ConvShape,
    product_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Convolution as im2col + GEMM. ``product_dtype`` runs the GEMM in that dtype (e.g. bf16)."""
    cols = im2col_matrix(x, s)
    wm = weight_matrix(weight, s)
    pdt = product_dtype or x.dtype
    if pdt != x.dtype:
        cols, wm = cols.to(pdt), wm.to(pdt)
    if s.groups == 1:
        out = torch.mm(cols[0], wm[0]).unsqueeze(0)
    else:
        out = torch.bmm(cols, wm)  # (G, rows, Kg)
    out = out.to(x.dtype)
    # (G, N, OH, OW, Kg) -> (N, G*Kg, OH, OW)
    out = out.view(s.groups, s.batch, s.out_h, s.out_w, s.m_per_group).permute(1, 0, 4, 2, 3)
    out = out.reshape(s.batch, s.out_channels, s.out_h, s.out_w)
    return add_bias(out, bias)
