"""Direct convolution: a reference 7-deep loop nest and a vectorised form.

Both compute ``out[n, k, p, q] = sum_{c, r, s} x_pad[n, g*Cg + c, p*SH + r*DH, q*SW + s*DW]
* w[k, c, r, s]`` (cross-correlation, as ``torch.nn.functional.conv2d``) with ``g = k // Kg``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from edgecnn.errors import ShapeError
from edgecnn.hardware.tiling import ConvShape
from edgecnn.kernels._common import add_bias, pad_input

#: Largest layer (in MACs) the pure-Python loop nest accepts.
LOOP_NEST_MAX_MACS = 200_000


@dataclass(frozen=True)
class LoopNestCounts:
    """Scalar operations executed by the reference loop nest."""

    multiplies: int
    additions: int


def direct_loops(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, s: ConvShape
) -> tuple[torch.Tensor, LoopNestCounts]:
    """The explicit 7-deep loop nest (n, k, p, q, c, r, s) in pure Python, float64 accumulation.

    For small shapes only (at most :data:`LOOP_NEST_MAX_MACS` MACs). Returns the output (dtype of
    ``x``) and the multiplications/additions it executed: each tap that reads padding is skipped
    (a real loop nest would test the bounds), so counts equal the MACs on non-padded inputs.
    """
    if s.macs > LOOP_NEST_MAX_MACS:
        raise ShapeError(
            f"direct_loops is a pure-Python reference limited to {LOOP_NEST_MAX_MACS} MACs, "
            f"this layer has {s.macs}; use algorithm='direct' instead"
        )
    xl = x.double().tolist()
    wl = weight.double().tolist()
    bl = bias.double().tolist() if bias is not None else None
    kg, cg = s.m_per_group, s.n_per_group
    out = [
        [[[0.0] * s.out_w for _ in range(s.out_h)] for _ in range(s.out_channels)]
        for _ in range(s.batch)
    ]
    mults = adds = 0
    for n in range(s.batch):
        for k in range(s.out_channels):
            g = k // kg
            for p in range(s.out_h):
                for q in range(s.out_w):
                    acc = 0.0 if bl is None else bl[k]
                    for c in range(cg):
                        plane = xl[n][g * cg + c]
                        wk = wl[k][c]
                        for r in range(s.kernel_h):
                            i = p * s.stride_h + r * s.dilation_h - s.pad_top
                            if i < 0 or i >= s.in_h:
                                continue
                            row = plane[i]
                            for t in range(s.kernel_w):
                                j = q * s.stride_w + t * s.dilation_w - s.pad_left
                                if j < 0 or j >= s.in_w:
                                    continue
                                acc += row[j] * wk[r][t]
                                mults += 1
                                adds += 1
                    out[n][k][p][q] = acc
    result = torch.tensor(out, dtype=torch.float64).to(x.dtype)
    return result, LoopNestCounts(multiplies=mults, additions=adds)


def direct_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    s: ConvShape,
    product_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Vectorised direct convolution: one batched contraction over channels per kernel tap.

    A Python loop runs over the ``KH*KW`` taps only; each tap is one batched GEMM over groups,
    ``(G, Kg, Cg) x (G, Cg, N*OH*OW)``, on a strided view of the padded input. ``product_dtype`` (e.g. ``torch.bfloat16``) rounds both
    operands and runs the products in that dtype; accumulation across taps stays in ``x.dtype``.
    """
    xp = pad_input(x, s)
    n, g, cg, kg = s.batch, s.groups, s.n_per_group, s.m_per_group
    hp, wp = xp.shape[-2:]
    xg = xp.reshape(n, g, cg, hp, wp)
    wg = weight.reshape(g, kg, cg, s.kernel_h, s.kernel_w)
    pdt = product_dtype or x.dtype
    if pdt != x.dtype:
        xg = xg.to(pdt)
        wg = wg.to(pdt)
    out = x.new_zeros(g, kg, n, s.out_h, s.out_w)
    h_end = (s.out_h - 1) * s.stride_h + 1
    w_end = (s.out_w - 1) * s.stride_w + 1
    for r in range(s.kernel_h):
        for t in range(s.kernel_w):
            i0, j0 = r * s.dilation_h, t * s.dilation_w
            patch = xg[..., i0 : i0 + h_end : s.stride_h, j0 : j0 + w_end : s.stride_w]
            patch = patch.permute(1, 2, 0, 3, 4)  # (g, cg, n, oh, ow)
            if cg == 1 and kg == 1:  # depthwise: an elementwise product, no contraction
                out += (patch * wg[:, :, 0, r, t].reshape(g, 1, 1, 1, 1)).to(out.dtype)
            else:  # (g, kg, cg) x (g, cg, n*oh*ow)
                prod = torch.bmm(wg[..., r, t], patch.reshape(g, cg, -1).contiguous())
                out += prod.view(g, kg, n, s.out_h, s.out_w).to(out.dtype)
    out = out.permute(2, 0, 1, 3, 4).reshape(n, s.out_channels, s.out_h, s.out_w)
    return add_bias(out, bias)
