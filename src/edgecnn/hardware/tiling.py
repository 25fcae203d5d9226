"""Closed-form off-chip traffic of a tiled convolution loop nest.

This is the one traffic formula shared by the accelerator model (``edgecnn.hardware``) and the
executable loop nests of ``edgecnn.kernels.loopnest``, which must count exactly the same numbers.

The loop nest
-------------
A convolution with ``G`` groups, ``Mg = M/G`` output and ``Ng = N/G`` input channels per group,
batch ``B`` and output ``OH x OW`` is tiled by ``Tiles(tm, tn, tr, tc)`` (the seeds' Tm, Tn,
Tr, Tc): ``tm`` output channels and ``tn`` input channels of one group, ``tr x tc`` output pixels of
one image. Four tile loops run, outermost first::

    for g in groups:                      # relevant to every operand
        <three loops over m-tiles, n-tiles and s-tiles in the order's sequence>

where the s-loop walks batch, then output-row tiles, then output-column tiles. Operands depend on
loops as: weights (m, n), input (n, s), output (m, s). ``LoopOrder`` fixes the sequence:

* ``OUTPUT_REUSE``  (m, s, n): the output tile stays on chip while all input channels accumulate;
* ``WEIGHT_REUSE``  (m, n, s): the weight tile stays on chip while it sweeps the feature map;
* ``INPUT_REUSE``   (s, n, m): the input tile stays on chip while it updates every output channel.

On-chip, each operand has room for one tile. A tile is loaded from DRAM only when the tile the
next iteration needs differs from the resident one (so a loop with a single trip never forces a
reload). Tiles are identified by their loop indices, not by the data they cover: two spatial tiles
whose clipped input boxes happen to coincide (a kernel wider than the padded input) are distinct
tiles and both are loaded. An output tile that is evicted before its last input-channel tile was accumulated is
written back as partial sums and read back on its next visit (first visits start from zero).

Tile extents
------------
Edge tiles are clipped (``min(tm, Mg - m0)`` etc.). The input tile of output rows
``[r0, r0 + h)`` is the bounding box of input rows ``r0*S - pad_top`` to
``(r0 + h - 1)*S - pad_top + (KH - 1)*DH``, clipped to ``[0, H)``: zero padding is never loaded,
and rows skipped inside the box by a stride larger than the kernel are loaded anyway. Columns
likewise.

Result
------
Every count is in elements (multiply by the word size, or the partial-sum size for ``psum_*``):

* ``input_reads  = visits(input)  * sum over input tiles of their elements``
* ``weight_reads = visits(weight) * G*Mg*Ng*KH*KW``
* ``output_writes = B*M*OH*OW`` (final results), ``psum_writes = psum_reads = (visits(output)-1) * B*M*OH*OW``

where ``visits(X)`` is the product of the trip counts of the loops irrelevant to ``X`` that sit
outside the innermost loop relevant to ``X`` with more than one trip (1 if there is none).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache

from edgecnn.errors import ConfigError, ShapeError


class LoopOrder(str, Enum):
    """Which operand stays on chip (the seeds' input-, output- and weight-reuse orders)."""

    INPUT_REUSE = "input-reuse"
    OUTPUT_REUSE = "output-reuse"
    WEIGHT_REUSE = "weight-reuse"


#: Tile loops of each order, outermost first (inside the group loop).
LOOP_SEQUENCE: dict[LoopOrder, tuple[str, str, str]] = {
    LoopOrder.OUTPUT_REUSE: ("m", "s", "n"),
    LoopOrder.WEIGHT_REUSE: ("m", "n", "s"),
    LoopOrder.INPUT_REUSE: ("s", "n", "m"),
}

#: Loops each operand's tile depends on.
RELEVANT_LOOPS: dict[str, frozenset[str]] = {
    "weight": frozenset({"m", "n"}),
    "input": frozenset({"n", "s"}),
    "output": frozenset({"m", "s"}),
}


@dataclass(frozen=True)
class ConvShape:
    """A convolution layer's shape. Channels are totals (not per group); sizes in elements."""

    batch: int
    in_channels: int
    out_channels: int
    in_h: int
    in_w: int
    kernel_h: int
    kernel_w: int
    stride_h: int = 1
    stride_w: int = 1
    pad_top: int = 0
    pad_left: int = 0
    pad_bottom: int = 0
    pad_right: int = 0
    dilation_h: int = 1
    dilation_w: int = 1
    groups: int = 1

    def __post_init__(self) -> None:
        positive = ("batch", "in_channels", "out_channels", "in_h", "in_w", "kernel_h", "kernel_w")
        for name in positive + ("stride_h", "stride_w", "dilation_h", "dilation_w", "groups"):
            if getattr(self, name) < 1:
                raise ShapeError(f"conv {name} must be >= 1, got {getattr(self, name)}")
        for name in ("pad_top", "pad_left", "pad_bottom", "pad_right"):
            if getattr(self, name) < 0:
                raise ShapeError(f"conv {name} must be >= 0, got {getattr(self, name)}")
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ShapeError(
                f"channels {self.in_channels}->{self.out_channels} not divisible by groups={self.groups}"
            )
        if self.out_h < 1 or self.out_w < 1:
            raise ShapeError(f"conv output would be empty ({self.out_h}x{self.out_w})")

    @property
    def out_h(self) -> int:
        span = (self.kernel_h - 1) * self.dilation_h + 1
        return (self.in_h + self.pad_top + self.pad_bottom - span) // self.stride_h + 1

    @property
    def out_w(self) -> int:
        span = (self.kernel_w - 1) * self.dilation_w + 1
        return (self.in_w + self.pad_left + self.pad_right - span) // self.stride_w + 1

    @property
    def m_per_group(self) -> int:
        return self.out_channels // self.groups

    @property
    def n_per_group(self) -> int:
        return self.in_channels // self.groups

    @property
    def macs(self) -> int:
        """B*M*OH*OW*(N/G)*KH*KW multiply-accumulates."""
        return (
            self.batch
            * self.out_channels
            * self.out_h
            * self.out_w
            * self.n_per_group
            * self.kernel_h
            * self.kernel_w
        )

    @property
    def weight_elems(self) -> int:
        return self.out_channels * self.n_per_group * self.kernel_h * self.kernel_w

    @property
    def input_elems(self) -> int:
        return self.batch * self.in_channels * self.in_h * self.in_w

    @property
    def output_elems(self) -> int:
        return self.batch * self.out_channels * self.out_h * self.out_w

    @classmethod
    def linear(cls, batch: int, in_features: int, out_features: int) -> ConvShape:
        """A fully connected layer as a 1x1 convolution on a 1x1 map."""
        return cls(batch, in_features, out_features, 1, 1, 1, 1)


@dataclass(frozen=True)
class Tiles:
    """Tile sizes: output channels (per group), input channels (per group), output rows, output cols."""

    tm: int
    tn: int
    tr: int
    tc: int

    def __post_init__(self) -> None:
        if min(self.tm, self.tn, self.tr, self.tc) < 1:
            raise ConfigError(f"tile sizes must be >= 1, got {self}")

    def clipped(self, shape: ConvShape) -> Tiles:
        """The same tiling with each size capped at the layer's extent."""
        return Tiles(
            min(self.tm, shape.m_per_group),
            min(self.tn, shape.n_per_group),
            min(self.tr, shape.out_h),
            min(self.tc, shape.out_w),
        )


@dataclass(frozen=True)
class TileTraffic:
    """Elements moved between DRAM and the on-chip buffers by one layer."""

    input_reads: int
    weight_reads: int
    output_writes: int
    psum_writes: int
    psum_reads: int

    @property
    def total(self) -> int:
        """All elements moved (reads + writes, partial sums included)."""
        return (
            self.input_reads
            + self.weight_reads
            + self.output_writes
            + self.psum_writes
            + self.psum_reads
        )


@dataclass(frozen=True)
class TileFootprint:
    """Largest tile of each operand, in elements (what each on-chip buffer must hold)."""

    input_elems: int
    weight_elems: int
    output_elems: int


def input_extent(out_start: int, out_len: int, stride: int, pad: int, span: int, size: int) -> int:
    """Input rows (or cols) loaded for output rows ``[out_start, out_start + out_len)``.

    ``span`` is the dilated kernel extent ``(K-1)*D + 1``; the bounding box is clipped to ``[0, size)``.
    """
    lo = out_start * stride - pad
    hi = (out_start + out_len - 1) * stride - pad + span - 1
    return max(0, min(hi, size - 1) - max(lo, 0) + 1)


def _tile_extents(total: int, tile: int) -> list[tuple[int, int]]:
    return [(s, min(tile, total - s)) for s in range(0, total, tile)]


def _input_sums(shape: ConvShape, tiles: Tiles) -> tuple[int, int, int, int]:
    """(sum of input rows over row tiles, max, sum of input cols over col tiles, max)."""
    span_h = (shape.kernel_h - 1) * shape.dilation_h + 1
    span_w = (shape.kernel_w - 1) * shape.dilation_w + 1
    rows = [
        input_extent(r0, h, shape.stride_h, shape.pad_top, span_h, shape.in_h)
        for r0, h in _tile_extents(shape.out_h, tiles.tr)
    ]
    cols = [
        input_extent(c0, w, shape.stride_w, shape.pad_left, span_w, shape.in_w)
        for c0, w in _tile_extents(shape.out_w, tiles.tc)
    ]
    return sum(rows), max(rows), sum(cols), max(cols)


def loop_trips(shape: ConvShape, tiles: Tiles) -> dict[str, int]:
    """Trip counts of the group loop and the three tile loops."""
    return {
        "g": shape.groups,
        "m": math.ceil(shape.m_per_group / tiles.tm),
        "n": math.ceil(shape.n_per_group / tiles.tn),
        "s": shape.batch * math.ceil(shape.out_h / tiles.tr) * math.ceil(shape.out_w / tiles.tc),
    }


def operand_visits(order: LoopOrder, trips: dict[str, int], operand: str) -> int:
    """How many times each tile of ``operand`` is brought on chip (see the module docstring)."""
    sequence = ("g",) + LOOP_SEQUENCE[order]
    relevant = RELEVANT_LOOPS[operand] | {"g"}
    innermost = -1
    for i, loop in enumerate(sequence):
        if loop in relevant and trips[loop] > 1:
            innermost = i
    visits = 1
    for loop in sequence[: max(innermost, 0)]:
        if loop not in relevant:
            visits *= trips[loop]
    return visits


def tiled_traffic(shape: ConvShape, tiles: Tiles, order: LoopOrder) -> TileTraffic:
    """DRAM traffic in elements of ``shape`` run as the tiled loop nest ``order`` with ``tiles``."""
    t = tiles.clipped(shape)
    trips = loop_trips(shape, t)
    row_sum, _, col_sum, _ = _input_sums(shape, t)
    input_pass = shape.groups * shape.n_per_group * shape.batch * row_sum * col_sum
    out = shape.output_elems
    psum_visits = operand_visits(order, trips, "output") - 1
    return TileTraffic(
        input_reads=operand_visits(order, trips, "input") * input_pass,
        weight_reads=operand_visits(order, trips, "weight") * shape.weight_elems,
        output_writes=out,
        psum_writes=psum_visits * out,
        psum_reads=psum_visits * out,
    )


def tile_footprint(shape: ConvShape, tiles: Tiles) -> TileFootprint:
    """Largest tile of each operand in elements, for buffer-fit checks."""
    t = tiles.clipped(shape)
    _, row_max, _, col_max = _input_sums(shape, t)
    return TileFootprint(
        input_elems=t.tn * row_max * col_max,
        weight_elems=t.tm * t.tn * shape.kernel_h * shape.kernel_w,
        output_elems=t.tm * t.tr * t.tc,
    )


@lru_cache(maxsize=4096)
def touched_extent(
    out_size: int, stride: int, pad: int, kernel: int, dilation: int, size: int
) -> int:
    """Input rows (or cols) that at least one kernel tap of at least one output reads."""
    return len(
        {
            o * stride - pad + k * dilation
            for o in range(out_size)
            for k in range(kernel)
            if 0 <= o * stride - pad + k * dilation < size
        }
    )


def one_touch_elems(shape: ConvShape) -> int:
    """The traffic floor in elements: weights, outputs and every input element that is read, once.

    Input rows/cols that no kernel tap reads (stride larger than the dilated kernel, or cut off by
    the output size) are not part of the floor; every tiling's traffic is at least this.
    """
    rows = touched_extent(
        shape.out_h, shape.stride_h, shape.pad_top, shape.kernel_h, shape.dilation_h, shape.in_h
    )
    cols = touched_extent(
        shape.out_w, shape.stride_w, shape.pad_left, shape.kernel_w, shape.dilation_w, shape.in_w
    )
    return shape.batch * shape.in_channels * rows * cols + shape.weight_elems + shape.output_elems
