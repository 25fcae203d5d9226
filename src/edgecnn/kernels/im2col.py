"""im2col + GEMM: unroll every receptive field into a row of a matrix, then one matrix product.

Layout: the input is copied once into a zero-padded channels-last buffer; the im2col matrix is
``(N*OH*OW) x (KH*KW*Cg)`` per group (rows = output pixels, columns = (tap, channel)), gathered
from a strided view of that buffer; the weights become a ``(KH*KW*Cg) x Kg`` matrix. Groups run
as one batched GEMM (``bmm`` over groups). The im2col buffer costs
``N*OH*OW*KH*KW*C`` elements (:func:`im2col_buffer_elems`): ``KH*KW`` times the input for a
stride-1 "same" layer, the memory cost that motivates Winograd and direct methods. The GEMM of
an ungrouped layer runs on oneDNN's matmul when available (:mod:`edgecnn.kernels._gemm`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from edgecnn.errors import ShapeError
from edgecnn.hardware.tiling import ConvShape
from edgecnn.kernels._common import add_bias, channels_last_padded
from edgecnn.kernels._gemm import gemm_nt


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
    return view.permute(5, 0, 1, 2, 3, 4, 6).reshape(g, rows, taps).contiguous()


def weight_matrix(weight: torch.Tensor, s: ConvShape) -> torch.Tensor:
    """Weights as ``(G, KH*KW*Cg, Kg)``, matching :func:`im2col_matrix`'s column order."""
    g, kg, cg = s.groups, s.m_per_group, s.n_per_group
    w = weight.reshape(g, kg, cg, s.kernel_h, s.kernel_w).permute(0, 3, 4, 2, 1)
    return w.reshape(g, s.kernel_h * s.kernel_w * cg, kg).contiguous()


#: Default im2col chunk in elements (4 MiB of float32): the GEMM then reads a cache-resident
#: matrix, and large batches do not page-fault a fresh multi-megabyte buffer on every call.
IM2COL_CHUNK_ELEMS = 1 << 20


def im2col_chunk_rows(s: ConvShape, chunk_elems: int | None = IM2COL_CHUNK_ELEMS) -> int:
    """Output pixels (rows of the im2col matrix) per chunk: whole images when an image's rows
    fit ``chunk_elems``, else whole output rows of one image; ``chunk_elems=None`` or 0 means the
    whole batch at once."""
    taps = s.kernel_h * s.kernel_w * s.in_channels
    per_image = s.out_h * s.out_w
    if not chunk_elems:
        return s.batch * per_image
    if per_image * taps <= chunk_elems:
        return per_image * max(1, min(s.batch, chunk_elems // (per_image * taps)))
    return s.out_w * max(1, chunk_elems // (s.out_w * taps))


def im2col_allocated_elems(s: ConvShape, chunk_elems: int | None = IM2COL_CHUNK_ELEMS) -> int:
    """Elements of the im2col buffer this implementation allocates (one chunk; groups > 1 use
    the whole matrix)."""
    if s.groups > 1:
        return im2col_buffer_elems(s)
    return im2col_chunk_rows(s, chunk_elems) * s.kernel_h * s.kernel_w * s.in_channels


def im2col_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    s: ConvShape,
    product_dtype: torch.dtype | None = None,
    chunk_elems: int | None = IM2COL_CHUNK_ELEMS,
) -> torch.Tensor:
    """Convolution as im2col + GEMM. ``product_dtype`` runs the GEMM in that dtype (e.g. bf16).

    Ungrouped layers build the im2col matrix in chunks of :func:`im2col_chunk_rows` rows (one
    reused buffer, see :func:`im2col_allocated_elems`) and run one GEMM per chunk; grouped layers
    build the whole ``(G, N*OH*OW, KH*KW*Cg)`` matrix and run one batched GEMM; depthwise layers
    keep it as ``(N*OH*OW, KH*KW, C)`` and multiply-sum over taps.
    """
    pdt = product_dtype or x.dtype
    if s.groups == 1:
        return add_bias(_im2col_chunked(x, weight, s, pdt, chunk_elems), bias)
    if s.n_per_group == 1 and s.m_per_group == 1:  # depthwise: keep the channels-last layout
        return add_bias(_im2col_depthwise(x, weight, s, pdt), bias)
    cols = im2col_matrix(x, s).to(pdt)
    out = torch.bmm(cols, weight_matrix(weight, s).to(pdt)).to(x.dtype)  # (G, rows, Kg)
    # (G, N, OH, OW, Kg) -> (N, G*Kg, OH, OW)
    out = out.view(s.groups, s.batch, s.out_h, s.out_w, s.m_per_group).permute(1, 0, 4, 2, 3)
    out = out.reshape(s.batch, s.out_channels, s.out_h, s.out_w)
    return add_bias(out, bias)


def _im2col_depthwise(
    x: torch.Tensor, weight: torch.Tensor, s: ConvShape, pdt: torch.dtype
) -> torch.Tensor:
    """Depthwise im2col: the ``(N*OH*OW, KH*KW, C)`` buffer (channels innermost, no transpose)
    times the per-channel taps, summed over taps (a matrix-vector product per channel)."""
    hp = s.in_h + s.pad_top + s.pad_bottom
    wp = s.in_w + s.pad_left + s.pad_right
    buf = channels_last_padded(x, s.pad_top, s.pad_left, hp, wp)
    sn, sh, sw, sc = buf.stride()
    c, taps = s.in_channels, s.kernel_h * s.kernel_w
    cols = buf.as_strided(
        (s.batch, s.out_h, s.out_w, s.kernel_h, s.kernel_w, c),
        (sn, s.stride_h * sh, s.stride_w * sw, s.dilation_h * sh, s.dilation_w * sw, sc),
    ).reshape(s.batch * s.out_h * s.out_w, taps, c)
    w_tc = weight.reshape(c, taps).t().contiguous()  # (taps, C)
    out = (cols.to(pdt) * w_tc.to(pdt)).sum(1).to(x.dtype)  # (N*OH*OW, C)
    return out.view(s.batch, s.out_h, s.out_w, c).permute(0, 3, 1, 2).contiguous()


def gemm_weight(weight: torch.Tensor) -> torch.Tensor:
    """Weights (K, C, KH, KW) as the ``(K, KH*KW*C)`` GEMM operand of an ungrouped layer."""
    k = weight.shape[0]
    return weight.permute(0, 2, 3, 1).reshape(k, -1).contiguous()


def _im2col_chunked(
    x: torch.Tensor,
    weight: torch.Tensor | None,
    s: ConvShape,
    pdt: torch.dtype,
    chunk_elems: int | None,
    w_kt: torch.Tensor | None = None,
) -> torch.Tensor:
    hp = s.in_h + s.pad_top + s.pad_bottom
    wp = s.in_w + s.pad_left + s.pad_right
    buf = channels_last_padded(x, s.pad_top, s.pad_left, hp, wp)
    sn, sh, sw, sc = buf.stride()
    kh, kw, c, k = s.kernel_h, s.kernel_w, s.in_channels, s.out_channels
    view = buf.as_strided(
        (s.batch, s.out_h, s.out_w, kh, kw, c),
        (sn, s.stride_h * sh, s.stride_w * sw, s.dilation_h * sh, s.dilation_w * sw, sc),
    )
    taps = kh * kw * c
    w_kt = (gemm_weight(weight) if w_kt is None else w_kt).to(pdt)  # type: ignore[arg-type]  # (K, KH*KW*C)
    rows = im2col_chunk_rows(s, chunk_elems)
    per_image = s.out_h * s.out_w
    out = x.new_empty(s.batch, k, per_image)  # NCHW, written once per chunk (transposing copy)
    cols = x.new_empty(rows * taps, dtype=pdt)
    if rows >= per_image:  # whole images per chunk
        step = rows // per_image
        for n0 in range(0, s.batch, step):
            nb = min(step, s.batch - n0)
            chunk = cols[: nb * per_image * taps].view(nb, s.out_h, s.out_w, kh, kw, c)
            chunk.copy_(view[n0 : n0 + nb])
            res = gemm_nt(chunk.view(nb * per_image, taps), w_kt)
            out[n0 : n0 + nb].copy_(res.view(nb, per_image, k).transpose(1, 2))
    else:  # whole output rows of one image per chunk
        step = rows // s.out_w
        for n in range(s.batch):
            for o0 in range(0, s.out_h, step):
                r = min(step, s.out_h - o0)
                chunk = cols[: r * s.out_w * taps].view(r, s.out_w, kh, kw, c)
                chunk.copy_(view[n, o0 : o0 + r])
                res = gemm_nt(chunk.view(r * s.out_w, taps), w_kt)
                p0 = o0 * s.out_w
                out[n, :, p0 : p0 + r * s.out_w].copy_(res.t())
    return out.view(s.batch, k, s.out_h, s.out_w)


@dataclass(frozen=True)
class Im2colConv:
    """An ungrouped layer's im2col + GEMM with the weight matrix laid out once (as a runtime
    would at load time); ``__call__(x, shape)`` runs :func:`im2col_conv2d`'s chunked path."""

    weight_matrix: torch.Tensor  # (K, KH*KW*C)

    @classmethod
    def prepare(cls, weight: torch.Tensor) -> Im2colConv:
        """Reorder ``weight`` (K, C, KH, KW) into the GEMM operand."""
        return cls(gemm_weight(weight))

    def __call__(
        self,
        x: torch.Tensor,
        s: ConvShape,
        bias: torch.Tensor | None = None,
        chunk_elems: int | None = IM2COL_CHUNK_ELEMS,
    ) -> torch.Tensor:
        """Convolve ``x`` for layer ``s`` (groups must be 1)."""
        if s.groups != 1:
            raise ShapeError(f"Im2colConv handles groups=1 only, got groups={s.groups}; use conv2d")
        out = _im2col_chunked(x, None, s, x.dtype, chunk_elems, w_kt=self.weight_matrix)
        return add_bias(out, bias)
