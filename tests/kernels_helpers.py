"""Shared hypothesis strategies of the kernels tests."""

from __future__ import annotations

from hypothesis import strategies as st

from edgecnn.hardware.tiling import ConvShape


@st.composite
def layers(draw, max_k: int = 5, strided: bool = True) -> ConvShape:
    k = draw(st.integers(1, max_k))
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    depthwise = draw(st.booleans()) and groups > 1
    cg = 1 if depthwise else draw(st.integers(1, 7))
    kg = 1 if depthwise else draw(st.integers(1, 7))
    dil = draw(st.sampled_from([1, 1, 2]))
    stride = draw(st.sampled_from([1, 1, 2, 3])) if strided else 1
    pads = [draw(st.integers(0, 3)) for _ in range(4)]
    span = (k - 1) * dil + 1
    h = draw(st.integers(max(1, span - pads[0] - pads[1]), 15))
    w = draw(st.integers(max(1, span - pads[2] - pads[3]), 15))
    return ConvShape(
        batch=draw(st.integers(1, 3)),
        in_channels=groups * cg,
        out_channels=groups * kg,
        in_h=h,
        in_w=w,
        kernel_h=k,
        kernel_w=k,
        stride_h=stride,
        stride_w=stride,
        pad_top=pads[0],
        pad_bottom=pads[1],
        pad_left=pads[2],
        pad_right=pads[3],
        dilation_h=dil,
        dilation_w=dil,
        groups=groups,
    )
