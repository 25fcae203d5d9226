"""Executable tiled convolution loop nests with the three reuse orders, counting DRAM traffic.

The nest follows :mod:`edgecnn.hardware.tiling`'s docstring exactly: the group loop outermost,
then the order's three tile loops (``m`` output-channel tiles, ``n`` input-channel tiles, ``s``
spatial tiles walking batch, output-row tiles, output-column tiles); one resident tile per
operand in on-chip input, weight and output buffers; a tile is loaded only when the one the
current iteration needs differs from the resident one (tiles are identified by their loop
indices); an output tile evicted before its last input-channel tile is written back as partial
sums and read back on its next visit (first visits start from zero); input tiles are the
bounding box of the receptive field clipped to the unpadded input (padding is never loaded).

Every count is measured, not derived: it is the ``numel`` of the tensors actually copied between
the modelled DRAM (the caller's tensors) and the on-chip buffers (tensors private to the run).
Each tile's arithmetic is one ``torch.nn.functional.conv2d`` on the on-chip tiles, so the
result can be checked against an untiled convolution.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from edgecnn.errors import ConfigError
from edgecnn.hardware.tiling import (
    LOOP_SEQUENCE,
    ConvShape,
    LoopOrder,
    TileFootprint,
    Tiles,
    TileTraffic,
    tile_footprint,
    tiled_traffic,
)
from edgecnn.kernels._common import IntPair, conv_shape


@dataclass(frozen=True)
class Buffers:
    """On-chip buffer capacities in elements (one resident tile per operand)."""

    input_elems: int
    weight_elems: int
    output_elems: int

    def __post_init__(self) -> None:
        if min(self.input_elems, self.weight_elems, self.output_elems) < 1:
            raise ConfigError(f"buffer sizes must be >= 1 element, got {self}")

    def fits(self, fp: TileFootprint) -> bool:
        """Whether the largest tiles fit."""
        return (
            fp.input_elems <= self.input_elems
            and fp.weight_elems <= self.weight_elems
            and fp.output_elems <= self.output_elems
        )


@dataclass(frozen=True)
class LoopNestResult:
    """Output of an executed loop nest and what it moved (elements)."""

    output: torch.Tensor
    traffic: TileTraffic
    largest_tiles: TileFootprint
    tile_loads: dict[str, int]


def _extents(total: int, tile: int) -> list[tuple[int, int]]:
    return [(s, min(tile, total - s)) for s in range(0, total, tile)]


def tiled_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    tiles: Tiles,
    order: LoopOrder,
    bias: torch.Tensor | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    buffers: Buffers | None = None,
) -> LoopNestResult:
    """Run the tiled loop nest ``order`` and count every element moved to or from DRAM.

    ``buffers`` (optional) are checked against the largest tiles; a tiling that does not fit
    raises :class:`ConfigError`. Bias is added on chip before the final write.
    """
    s = conv_shape(x.shape, weight.shape, stride, padding, dilation, groups)
    t = tiles.clipped(s)
    if buffers is not None and not buffers.fits(tile_footprint(s, t)):
        raise ConfigError(
            f"tiles {tiles} need on-chip {tile_footprint(s, t)} elements but buffers hold {buffers}; "
            "use smaller tiles or bigger buffers"
        )
    mg, ng = s.m_per_group, s.n_per_group
    span_h = (s.kernel_h - 1) * s.dilation_h + 1
    span_w = (s.kernel_w - 1) * s.dilation_w + 1
    loops = {
        "m": _extents(mg, t.tm),
        "n": _extents(ng, t.tn),
        "s": [
            (b, r0, h, c0, w)
            for b in range(s.batch)
            for r0, h in _extents(s.out_h, t.tr)
            for c0, w in _extents(s.out_w, t.tc)
        ],
    }
    n_trips = len(loops["n"])
    dram_out = x.new_zeros(s.batch, s.out_channels, s.out_h, s.out_w)  # finals and partial sums
    counts = dict.fromkeys(("input", "weight", "output", "psum_w", "psum_r"), 0)
    loads = dict.fromkeys(("input", "weight", "output"), 0)
    largest = dict.fromkeys(("input", "weight", "output"), 0)
    resident: dict[str, tuple | None] = dict.fromkeys(("input", "weight", "output"), None)
    w_chip = x_chip = o_chip = None
    x_box: tuple[int, int, int, int] = (0, 0, 0, 0)  # lo_r, lo_c of the unclipped box, size
    accumulated: dict[tuple, int] = {}

    def out_slice(key: tuple) -> tuple:
        g, (m0, mt), (b, r0, h, c0, w) = key
        return (b, slice(g * mg + m0, g * mg + m0 + mt), slice(r0, r0 + h), slice(c0, c0 + w))

    def evict_output() -> None:
        key = resident["output"]
        if key is None:
            return
        dst = out_slice(key)
        if accumulated[key] == n_trips:
            final = o_chip if bias is None else o_chip + bias[dst[1]].view(-1, 1, 1)
            dram_out[dst] = final
            counts["output"] += final.numel()
        else:
            dram_out[dst] = o_chip
            counts["psum_w"] += o_chip.numel()

    seq = LOOP_SEQUENCE[order]
    for g in range(s.groups):
        for combo in itertools.product(*(loops[name] for name in seq)):
            idx = dict(zip(seq, combo, strict=True))
            (m0, mt), (n0, nt), sp = idx["m"], idx["n"], idx["s"]
            b, r0, h, c0, w = sp
            wkey = (g, idx["m"], idx["n"])
            if resident["weight"] != wkey:
                k0, ci0 = g * mg + m0, n0
                w_chip = weight[k0 : k0 + mt, ci0 : ci0 + nt].clone()
                counts["weight"] += w_chip.numel()
                loads["weight"] += 1
                largest["weight"] = max(largest["weight"], w_chip.numel())
                resident["weight"] = wkey
            ikey = (g, idx["n"], sp)
            if resident["input"] != ikey:
                lo_r = r0 * s.stride_h - s.pad_top
                hi_r = (r0 + h - 1) * s.stride_h - s.pad_top + span_h - 1
                lo_c = c0 * s.stride_w - s.pad_left
                hi_c = (c0 + w - 1) * s.stride_w - s.pad_left + span_w - 1
                cr0, cr1 = max(lo_r, 0), min(hi_r, s.in_h - 1) + 1
                cc0, cc1 = max(lo_c, 0), min(hi_c, s.in_w - 1) + 1
                ch0 = g * ng + n0
                x_chip = x[b, ch0 : ch0 + nt, cr0 : max(cr0, cr1), cc0 : max(cc0, cc1)].clone()
                counts["input"] += x_chip.numel()
                loads["input"] += 1
                largest["input"] = max(largest["input"], x_chip.numel())
                x_box = (lo_r, lo_c, hi_r - lo_r + 1, hi_c - lo_c + 1)
                resident["input"] = ikey
            okey = (g, idx["m"], sp)
            if resident["output"] != okey:
                evict_output()
                if okey in accumulated:
                    o_chip = dram_out[out_slice(okey)].clone()
                    counts["psum_r"] += o_chip.numel()
                else:
                    o_chip = x.new_zeros(mt, h, w)
                    accumulated[okey] = 0
                loads["output"] += 1
                largest["output"] = max(largest["output"], o_chip.numel())
                resident["output"] = okey
            # compute on chip: re-insert the zero padding the box was clipped by, then convolve
            lo_r, lo_c, box_h, box_w = x_box
            local = x_chip.new_zeros(nt, box_h, box_w)
            cr0, cc0 = max(lo_r, 0) - lo_r, max(lo_c, 0) - lo_c
            local[:, cr0 : cr0 + x_chip.shape[1], cc0 : cc0 + x_chip.shape[2]] = x_chip
            o_chip += F.conv2d(
                local.unsqueeze(0),
                w_chip,
                stride=(s.stride_h, s.stride_w),
                dilation=(s.dilation_h, s.dilation_w),
            )[0]
            accumulated[okey] += 1
    evict_output()
    traffic = TileTraffic(
        input_reads=counts["input"],
        weight_reads=counts["weight"],
        output_writes=counts["output"],
        psum_writes=counts["psum_w"],
        psum_reads=counts["psum_r"],
    )
    return LoopNestResult(
        output=dram_out,
        traffic=traffic,
        largest_tiles=TileFootprint(largest["input"], largest["weight"], largest["output"]),
        tile_loads=loads,
    )


@dataclass(frozen=True)
class OrderChoice:
    """The best tiling found for one loop order under a buffer budget."""

    order: LoopOrder
    tiles: Tiles
    traffic: TileTraffic

    def to_dict(self) -> dict:
        """JSON-ready dict (elements)."""
        return {
            "order": self.order.value,
            "tiles": [self.tiles.tm, self.tiles.tn, self.tiles.tr, self.tiles.tc],
            "total_elems": self.traffic.total,
            "input_reads": self.traffic.input_reads,
            "weight_reads": self.traffic.weight_reads,
            "output_writes": self.traffic.output_writes,
            "psum_elems": self.traffic.psum_writes + self.traffic.psum_reads,
        }


def _candidates(total: int) -> list[int]:
    vals = {total}
    v = 1
    while v < total:
        vals.add(v)
        v *= 2
    return sorted(vals)


def best_tiling_per_order(shape: ConvShape, buffers: Buffers) -> list[OrderChoice]:
    """For each order, the power-of-two (or full-extent) tiling fitting ``buffers`` with the
    least total DRAM traffic (:func:`edgecnn.hardware.tiling.tiled_traffic`), best order first.

    Raises :class:`ConfigError` if not even 1x1x1x1 tiles fit.
    """
    best: dict[LoopOrder, OrderChoice] = {}
    for tm, tn, tr, tc in itertools.product(
        _candidates(shape.m_per_group),
        _candidates(shape.n_per_group),
        _candidates(shape.out_h),
        _candidates(shape.out_w),
    ):
        tiles = Tiles(tm, tn, tr, tc)
        if not buffers.fits(tile_footprint(shape, tiles)):
            continue
        for order in LoopOrder:
            tr_ = tiled_traffic(shape, tiles, order)
            cur = best.get(order)
            if cur is None or tr_.total < cur.traffic.total:
                best[order] = OrderChoice(order, tiles, tr_)
    if not best:
        raise ConfigError(f"no tiling of this layer fits the buffers {buffers}; enlarge them")
    return sorted(best.values(), key=lambda c: (c.traffic.total, c.order.value))


def rank_orders(shape: ConvShape, tiles: Tiles) -> list[OrderChoice]:
    """The three orders with fixed ``tiles``, least total DRAM traffic first (ties by name)."""
    choices = [OrderChoice(o, tiles, tiled_traffic(shape, tiles, o)) for o in LoopOrder]
    return sorted(choices, key=lambda c: (c.traffic.total, c.order.value))
