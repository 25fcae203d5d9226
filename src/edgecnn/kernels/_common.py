"""Shared helpers of the convolution algorithms: argument normalisation and layer geometry.

Every algorithm works on NCHW tensors and describes the layer with the one shape type shared
with the accelerator model, :class:`edgecnn.hardware.tiling.ConvShape` (channels are totals,
padding is per side, sizes are in elements).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from edgecnn.errors import ShapeError
from edgecnn.hardware.tiling import ConvShape

IntPair = int | Sequence[int]


def pair(value: IntPair, name: str) -> tuple[int, int]:
    """``3`` -> ``(3, 3)``; ``(2, 1)`` stays. Raises :class:`ShapeError` for other lengths."""
    if isinstance(value, int):
        return (value, value)
    vals = tuple(int(v) for v in value)
    if len(vals) != 2:
        raise ShapeError(f"{name} must be an int or a pair (h, w), got {value!r}")
    return vals  # type: ignore[return-value]


def padding4(value: IntPair) -> tuple[int, int, int, int]:
    """Padding as (top, bottom, left, right) from an int, a pair (h, w) or a 4-tuple."""
    if isinstance(value, int):
        return (value,) * 4
    vals = tuple(int(v) for v in value)
    if len(vals) == 2:
        return (vals[0], vals[0], vals[1], vals[1])
    if len(vals) == 4:
        return vals  # type: ignore[return-value]
    raise ShapeError(
        f"padding must be an int, a pair (h, w) or (top, bottom, left, right), got {value!r}"
    )


def conv_shape(
    x_shape: Sequence[int],
    w_shape: Sequence[int],
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    groups: int = 1,
) -> ConvShape:
    """Validate NCHW input and KCRS weight shapes and return the layer's :class:`ConvShape`."""
    if len(x_shape) != 4:
        raise ShapeError(
            f"input must be 4-D NCHW, got shape {tuple(x_shape)}; add a batch dimension"
        )
    if len(w_shape) != 4:
        raise ShapeError(f"weight must be 4-D (out, in/groups, kh, kw), got shape {tuple(w_shape)}")
    n, c, h, w = (int(v) for v in x_shape)
    k, cg, kh, kw = (int(v) for v in w_shape)
    if groups < 1 or c % groups or k % groups:
        raise ShapeError(f"groups={groups} must divide input channels {c} and output channels {k}")
    if cg != c // groups:
        raise ShapeError(
            f"weight has {cg} input channels per group but input has {c} channels / groups={groups} "
            f"= {c // groups}; check the weight shape or groups"
        )
    sh, sw = pair(stride, "stride")
    dh, dw = pair(dilation, "dilation")
    pt, pb, pl, pr = padding4(padding)
    return ConvShape(
        batch=n,
        in_channels=c,
        out_channels=k,
        in_h=h,
        in_w=w,
        kernel_h=kh,
        kernel_w=kw,
        stride_h=sh,
        stride_w=sw,
        pad_top=pt,
        pad_left=pl,
        pad_bottom=pb,
        pad_right=pr,
        dilation_h=dh,
        dilation_w=dw,
        groups=groups,
    )


def pad_input(x: torch.Tensor, s: ConvShape) -> torch.Tensor:
    """Zero-pad an NCHW tensor by the layer's padding."""
    if s.pad_top == s.pad_bottom == s.pad_left == s.pad_right == 0:
        return x
    return torch.nn.functional.pad(x, (s.pad_left, s.pad_right, s.pad_top, s.pad_bottom))


def channels_last_padded(
    x: torch.Tensor, pad_top: int, pad_left: int, height: int, width: int
) -> torch.Tensor:
    """An (N, height, width, C) zero buffer holding ``x`` (NCHW) at offset (pad_top, pad_left).

    Parts of ``x`` that fall outside the buffer are dropped (callers size the buffer so that
    only never-read rows/columns are cut).
    """
    n, c, h, w = x.shape
    hh = max(0, min(h, height - pad_top))
    ww = max(0, min(w, width - pad_left))
    if not (hh and ww):
        return x.new_zeros(n, height, width, c)
    buf = x.new_empty(n, height, width, c)  # zero only the border, then copy the interior
    buf[:, :pad_top].zero_()
    buf[:, pad_top + hh :].zero_()
    buf[:, pad_top : pad_top + hh, :pad_left].zero_()
    buf[:, pad_top : pad_top + hh, pad_left + ww :].zero_()
    buf[:, pad_top : pad_top + hh, pad_left : pad_left + ww] = x[:, :, :hh, :ww].permute(0, 2, 3, 1)
    return buf


def add_bias(out: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``out + bias`` broadcast over NCHW (in place when possible)."""
    if bias is None:
        return out
    return out.add_(bias.to(out.dtype).view(1, -1, 1, 1))
