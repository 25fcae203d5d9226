"""Side-by-side comparison of the algorithms on one layer: counts, memory, measured error,
and which loop order moves the least data.

Layer spec (``parse_layer``): ``HxWxCINxCOUTkK`` followed by optional suffixes ``sS`` (stride),
``pP`` (padding on every side; default ``(K-1)//2 * D``, i.e. "same" for odd K at stride 1),
``dD`` (dilation), ``gG`` (groups) and ``bB`` (batch, default 1), in any order. Examples:
``56x56x64x64k3`` (ResNet 3x3), ``224x224x3x64k7s2p3`` (the stem), ``112x112x32x32k3g32``
(depthwise).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from edgecnn.errors import ShapeError
from edgecnn.hardware.tiling import ConvShape, Tiles
from edgecnn.kernels.conv import Algorithm, conv2d
from edgecnn.kernels.counts import AlgoCost, algorithm_cost
from edgecnn.kernels.loopnest import Buffers, OrderChoice, best_tiling_per_order, rank_orders
from edgecnn.schema import ResultKind

#: Product-stage precisions: name -> dtype (``None`` = the input's float32).
PRECISIONS: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
}

_LAYER_RE = re.compile(r"^(\d+)x(\d+)x(\d+)x(\d+)k(\d+)((?:[spdgb]\d+)*)$")


def parse_layer(spec: str) -> ConvShape:
    """Parse a layer spec (see the module docstring) into a :class:`ConvShape`."""
    m = _LAYER_RE.match(spec.strip().lower())
    if not m:
        raise ShapeError(
            f"malformed layer '{spec}': expected HxWxCINxCOUTkK with optional s<stride> p<pad> "
            "d<dilation> g<groups> b<batch>, e.g. 56x56x64x64k3 or 224x224x3x64k7s2p3"
        )
    h, w, cin, cout, k = (int(v) for v in m.groups()[:5])
    opts: dict[str, int] = {}
    for key, val in re.findall(r"([spdgb])(\d+)", m.group(6)):
        if key in opts:
            raise ShapeError(f"layer '{spec}' gives '{key}' twice")
        opts[key] = int(val)
    d = opts.get("d", 1)
    p = opts.get("p", (k - 1) // 2 * d)
    return ConvShape(
        batch=opts.get("b", 1),
        in_channels=cin,
        out_channels=cout,
        in_h=h,
        in_w=w,
        kernel_h=k,
        kernel_w=k,
        stride_h=opts.get("s", 1),
        stride_w=opts.get("s", 1),
        pad_top=p,
        pad_left=p,
        pad_bottom=p,
        pad_right=p,
        dilation_h=d,
        dilation_w=d,
        groups=opts.get("g", 1),
    )


def conv_kwargs(s: ConvShape) -> dict:
    """``stride/padding/dilation/groups`` keyword arguments of :func:`conv2d` for ``s``."""
    return {
        "stride": (s.stride_h, s.stride_w),
        "padding": (s.pad_top, s.pad_bottom, s.pad_left, s.pad_right),
        "dilation": (s.dilation_h, s.dilation_w),
        "groups": s.groups,
    }


def random_operands(s: ConvShape, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Standard-normal float32 input and weight for ``s`` (weights scaled by 1/sqrt(fan-in))."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(s.batch, s.in_channels, s.in_h, s.in_w, generator=gen)
    fan_in = s.n_per_group * s.kernel_h * s.kernel_w
    w = torch.randn(s.out_channels, s.n_per_group, s.kernel_h, s.kernel_w, generator=gen)
    return x, w / fan_in**0.5


def reference_conv(x: torch.Tensor, w: torch.Tensor, s: ConvShape) -> torch.Tensor:
    """float64 ``F.conv2d`` of ``s`` (asymmetric padding applied explicitly)."""
    xp = F.pad(x.double(), (s.pad_left, s.pad_right, s.pad_top, s.pad_bottom))
    return F.conv2d(
        xp, w.double(), None, (s.stride_h, s.stride_w), 0, (s.dilation_h, s.dilation_w), s.groups
    )


def relative_error(y: torch.Tensor, ref: torch.Tensor) -> float:
    """``max |y - ref| / scale`` with ``scale = max(max ref - min ref, max |ref|)``: the error
    relative to the output range, guarded against near-constant outputs (a tiny range would
    inflate float rounding). Returns inf on NaN or overflow."""
    scale = max((ref.max() - ref.min()).item(), ref.abs().max().item())
    err = (y.double() - ref).abs().max().item() / (scale if scale > 0 else 1.0)
    return err if math.isfinite(err) else math.inf  # overflow (e.g. fp16) is an infinite error


def measure_error(
    s: ConvShape, algorithm: Algorithm | str, precision: str = "fp32", seed: int = 0
) -> float:
    """Error of ``algorithm`` on random float32 operands against the float64 reference, relative
    to the output range. ``precision`` is the product stage's dtype (transforms stay float32)."""
    x, w = random_operands(s, seed)
    ref = reference_conv(x, w, s)
    pdt = PRECISIONS[precision]
    y = conv2d(
        x, w, algorithm=algorithm, product_dtype=None if pdt == x.dtype else pdt, **conv_kwargs(s)
    )
    return relative_error(y, ref)


@dataclass(frozen=True)
class AlgoRow:
    """One algorithm's row of the comparison."""

    cost: AlgoCost
    mult_saving: float | None
    errors: dict[str, float | None]

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return {
            **self.cost.to_dict(),
            "mult_saving_vs_direct": self.mult_saving,
            "errors": self.errors,
        }


@dataclass(frozen=True)
class CompareResult:
    """Everything ``edgecnn kernels compare`` prints. Memory in elements; errors relative to range."""

    layer: ConvShape
    macs: int
    rows: list[AlgoRow]
    buffers: Buffers
    orders: list[OrderChoice] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        lay = self.layer
        return {
            "kind": ResultKind.KERNELS_COMPARE.value,
            "layer": {k: getattr(lay, k) for k in lay.__dataclass_fields__}
            | {
                "out_h": lay.out_h,
                "out_w": lay.out_w,
            },
            "macs": self.macs,
            "algorithms": [r.to_dict() for r in self.rows],
            "buffers_elems": {
                "input": self.buffers.input_elems,
                "weight": self.buffers.weight_elems,
                "output": self.buffers.output_elems,
            },
            "loop_orders": [o.to_dict() for o in self.orders],
        }


def compare_algorithms(
    s: ConvShape,
    precisions: tuple[str, ...] = ("fp32", "fp16", "bf16"),
    buffers: Buffers | None = None,
    seed: int = 0,
    tiles: Tiles | None = None,
) -> CompareResult:
    """Closed-form costs and measured errors of every algorithm (not ``auto``) on ``s``, plus the
    best tiling of each loop order within ``buffers`` (default 16384 elements each), or, when
    ``tiles`` is given, the three orders ranked at those fixed tiles."""
    for p in precisions:
        if p not in PRECISIONS:
            raise ShapeError(f"unknown precision '{p}'; choose from {', '.join(PRECISIONS)}")
    buffers = buffers or Buffers(16384, 16384, 16384)
    rows = []
    direct_mults = s.macs
    for algo in Algorithm:
        if algo is Algorithm.AUTO:
            continue
        cost = algorithm_cost(s, algo)
        errors: dict[str, float | None] = {}
        for p in precisions:
            errors[p] = measure_error(s, algo, p, seed) if cost.supported else None
        saving = direct_mults / cost.mults if cost.supported and cost.mults else None
        rows.append(AlgoRow(cost, saving, errors))
    orders = rank_orders(s, tiles) if tiles else best_tiling_per_order(s, buffers)
    return CompareResult(s, s.macs, rows, buffers, orders)
