"""Per-layer search over tile sizes and loop orders of the tiled model.

Traffic is the closed form of :mod:`edgecnn.hardware.tiling` (``tiled_traffic``,
``tile_footprint``), evaluated here for all candidates at once with numpy
(:func:`traffic_grid` equals ``tiled_traffic`` element by element; a test checks it). The best
candidate is then re-evaluated with ``tiled_traffic`` itself for the reported numbers.

Candidates per tile dimension of extent ``D``: powers of two below ``D``, ``ceil(D / k)`` for
``k = 1..8`` and ``D`` itself (a few dozen values at most), crossed over the four dimensions and
the three loop orders; those whose working set does not fit the buffers are dropped. Among
the rest, candidates within 0.1 % of the best primary cost (latency or energy; DRAM bytes are
minimised exactly) tie and the secondary cost (DRAM bytes for latency, cycles otherwise) picks
one, so a latency search never trades a large DRAM excess for a negligible prologue saving.

Costs of a candidate (``dram`` in bytes, ``bw`` bytes/cycle, ``compute`` cycles of the array):

* without double buffering: ``cycles = compute + dram / bw`` (transfers and compute alternate);
* with double buffering: ``cycles = max(compute, dram / bw) + first_load / bw``, the first tiles
  of every operand being loaded before compute can start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache

import numpy as np

from edgecnn.errors import ConfigError
from edgecnn.hardware.tiling import (
    LOOP_SEQUENCE,
    RELEVANT_LOOPS,
    ConvShape,
    LoopOrder,
    Tiles,
    input_extent,
)


class Objective(str, Enum):
    """What the per-layer search minimises (ties broken by the others)."""

    LATENCY = "latency"
    ENERGY = "energy"
    DRAM = "dram"


@dataclass(frozen=True)
class Budget:
    """Bytes available to one tile of each operand (already halved for double buffering).

    ``shared`` > 0 means one pool for the sum of the operands' tiles; resident operands
    (kept on chip as whole feature maps) need no tile. With ``shared``, ``weight_bytes`` is
    extra storage for weights only (the PEs' weight register files): a weight tile uses it
    first and the pool for the rest.
    """

    input_bytes: int
    weight_bytes: int
    output_bytes: int
    shared: int = 0


@dataclass(frozen=True)
class Operands:
    """Word sizes and which operands already sit on chip."""

    word_bytes: int
    psum_bytes: int
    weight_scale: float = 1.0  # on-chip weight tile growth (Winograd-domain weights: n^2/9)
    input_resident: bool = False
    output_resident: bool = False


def candidates(extent: int) -> np.ndarray:
    """Tile-size candidates for a dimension of ``extent``."""
    vals = {extent}
    p = 1
    while p < extent:
        vals.add(p)
        p *= 2
    for k in range(1, 9):
        vals.add(math.ceil(extent / k))
    return np.array(sorted(vals), dtype=np.int64)


def _extent_sums(out: int, tiles: np.ndarray, stride: int, pad: int, span: int, size: int):
    sums = np.empty(len(tiles), dtype=np.int64)
    maxs = np.empty(len(tiles), dtype=np.int64)
    for i, t in enumerate(tiles):
        ext = [
            input_extent(s, min(int(t), out - s), stride, pad, span, size)
            for s in range(0, out, int(t))
        ]
        sums[i] = sum(ext)
        maxs[i] = max(ext)
    return sums, maxs


@dataclass(frozen=True)
class Grid:
    """All candidates of one layer, broadcast to a common shape (tm, tn, tr, tc axes)."""

    tm: np.ndarray
    tn: np.ndarray
    tr: np.ndarray
    tc: np.ndarray
    input_pass: np.ndarray  # elements of one full pass over the input tiles
    in_fp: np.ndarray
    w_fp: np.ndarray
    out_fp: np.ndarray
    trips: dict[str, np.ndarray]


@lru_cache(maxsize=1024)
def build_grid(shape: ConvShape) -> Grid:
    """Candidate tiles and their per-candidate quantities (footprints, trips, input pass)."""
    tm = candidates(shape.m_per_group)[:, None, None, None]
    tn = candidates(shape.n_per_group)[None, :, None, None]
    tr1 = candidates(shape.out_h)
    tc1 = candidates(shape.out_w)
    span_h = (shape.kernel_h - 1) * shape.dilation_h + 1
    span_w = (shape.kernel_w - 1) * shape.dilation_w + 1
    rsum, rmax = _extent_sums(shape.out_h, tr1, shape.stride_h, shape.pad_top, span_h, shape.in_h)
    csum, cmax = _extent_sums(shape.out_w, tc1, shape.stride_w, shape.pad_left, span_w, shape.in_w)
    tr = tr1[None, None, :, None]
    tc = tc1[None, None, None, :]
    rsum, rmax = rsum[None, None, :, None], rmax[None, None, :, None]
    csum, cmax = csum[None, None, None, :], cmax[None, None, None, :]
    khw = shape.kernel_h * shape.kernel_w
    trips = {
        "g": np.full((1, 1, 1, 1), shape.groups, dtype=np.int64),
        "m": -(-shape.m_per_group // tm),
        "n": -(-shape.n_per_group // tn),
        "s": shape.batch * (-(-shape.out_h // tr)) * (-(-shape.out_w // tc)),
    }
    return Grid(
        tm=tm,
        tn=tn,
        tr=tr,
        tc=tc,
        input_pass=shape.groups * shape.n_per_group * shape.batch * rsum * csum,
        in_fp=tn * rmax * cmax,
        w_fp=tm * tn * khw,
        out_fp=tm * tr * tc,
        trips=trips,
    )


def visits_grid(order: LoopOrder, trips: dict[str, np.ndarray], operand: str) -> np.ndarray:
    """Vectorised ``operand_visits`` of :mod:`edgecnn.hardware.tiling` (broadcast, not expanded)."""
    sequence = ("g",) + LOOP_SEQUENCE[order]
    relevant = RELEVANT_LOOPS[operand] | {"g"}
    cum = np.ones((1, 1, 1, 1), dtype=np.int64)
    visits = np.ones((1, 1, 1, 1), dtype=np.int64)
    for loop in sequence:
        t = trips[loop]
        if loop in relevant:
            visits = np.where(t > 1, cum, visits)
        else:
            cum = cum * t
    return visits


def traffic_grid(shape: ConvShape, grid: Grid, order: LoopOrder) -> dict[str, np.ndarray]:
    """Element counts as ``tiled_traffic`` for every candidate of ``grid``."""
    out = shape.output_elems
    psum = visits_grid(order, grid.trips, "output") - 1
    return {
        "input_reads": visits_grid(order, grid.trips, "input") * grid.input_pass,
        "weight_reads": visits_grid(order, grid.trips, "weight") * shape.weight_elems,
        "output_writes": np.full_like(psum, out),
        "psum_writes": psum * out,
        "psum_reads": psum * out,
    }


TOLERANCE = 1e-3
"""Candidates within this relative margin of the best primary cost tie; the secondary decides."""


def _better(key: tuple[float, float], other: tuple[float, float], tol: float) -> bool:
    if key[0] < other[0] * (1 - tol):
        return True
    if other[0] < key[0] * (1 - tol):
        return False
    return key[1] < other[1]


@dataclass(frozen=True)
class Choice:
    """The search's pick for one layer."""

    tiles: Tiles
    order: LoopOrder
    dram_bytes: int
    cycles: int
    first_load_bytes: int


def search_tiles(
    shape: ConvShape,
    ops: Operands,
    budget: Budget,
    compute_cycles: int,
    bw_bytes_per_cycle: float,
    double_buffering: bool,
    objective: Objective = Objective.LATENCY,
    dram_pj_per_byte: float = 1.0,
    sram_pj_per_byte: float = 0.0,
    layer: str = "",
) -> Choice:
    """Best tiles and loop order of ``shape`` under ``budget`` (see the module docstring).

    Raises ConfigError when not even the smallest tile (1, 1, 1, 1) fits the buffers. Results
    are memoised on the arguments (the search is a pure function; networks repeat shapes).
    """
    try:
        return _search_cached(
            shape,
            ops,
            budget,
            compute_cycles,
            bw_bytes_per_cycle,
            double_buffering,
            Objective(objective),
            dram_pj_per_byte,
            sram_pj_per_byte,
        )
    except _NoFit as e:
        raise ConfigError(
            f"layer {layer or '?'}: on-chip buffer too small for one tile "
            f"(smallest tile needs {e.need} bytes, buffer gives {e.have} bytes"
            f"{' after halving for double buffering' if double_buffering else ''}); "
            "enlarge the SRAM"
        ) from None


class _NoFit(Exception):
    def __init__(self, need: int, have: int) -> None:
        super().__init__(need, have)
        self.need, self.have = need, have


@lru_cache(maxsize=8192)
def _search_cached(
    shape: ConvShape,
    ops: Operands,
    budget: Budget,
    compute_cycles: int,
    bw_bytes_per_cycle: float,
    double_buffering: bool,
    objective: Objective = Objective.LATENCY,
    dram_pj_per_byte: float = 1.0,
    sram_pj_per_byte: float = 0.0,
) -> Choice:
    grid = build_grid(shape)
    wb, pb = ops.word_bytes, ops.psum_bytes
    in_b = np.zeros_like(grid.in_fp) if ops.input_resident else grid.in_fp * wb
    w_b = np.ceil(grid.w_fp * ops.weight_scale).astype(np.int64) * wb
    out_b = np.zeros_like(grid.out_fp) if ops.output_resident else grid.out_fp * pb
    in_b, w_b, out_b = np.broadcast_arrays(in_b, w_b, out_b)
    if budget.shared:
        fits = in_b + np.maximum(w_b - budget.weight_bytes, 0) + out_b <= budget.shared
    else:
        fits = (
            (in_b <= budget.input_bytes)
            & (w_b <= budget.weight_bytes)
            & (out_b <= budget.output_bytes)
        )
    if not fits.any():
        need = int(in_b.min() + w_b.min() + out_b.min())
        have = budget.shared or min(budget.input_bytes, budget.weight_bytes, budget.output_bytes)
        raise _NoFit(need, have)
    best: tuple | None = None
    tol = 0.0 if objective == Objective.DRAM else TOLERANCE
    first_load = (in_b + w_b).astype(np.float64)
    for order in LoopOrder:
        t = traffic_grid(shape, grid, order)
        dram = np.zeros(fits.shape, dtype=np.float64)
        if not ops.input_resident:
            dram = dram + t["input_reads"] * wb
        dram = dram + t["weight_reads"] * wb
        if not ops.output_resident:
            dram = dram + t["output_writes"] * wb + (t["psum_writes"] + t["psum_reads"]) * pb
        xfer = dram / bw_bytes_per_cycle
        if double_buffering:
            cycles = np.maximum(compute_cycles, xfer) + first_load / bw_bytes_per_cycle
        else:
            cycles = compute_cycles + xfer
        cycles = np.ceil(cycles)
        energy = dram * (dram_pj_per_byte + sram_pj_per_byte)
        if objective == Objective.LATENCY:
            keys = (cycles, dram)
        elif objective == Objective.ENERGY:
            keys = (energy, cycles)
        else:
            keys = (dram, cycles)
        k0 = np.where(fits, keys[0], np.inf)
        m0 = float(k0.min())
        k1 = np.where(k0 <= m0 * (1 + tol), keys[1], np.inf)
        idx = np.unravel_index(int(np.argmin(k1)), k1.shape)
        key = (m0, float(k1[idx]))
        if best is None or _better(key, best[0], tol):
            tiles = Tiles(
                int(grid.tm.flat[idx[0]]),
                int(grid.tn.flat[idx[1]]),
                int(grid.tr.flat[idx[2]]),
                int(grid.tc.flat[idx[3]]),
            )
            best = (key, tiles, order, int(dram[idx]), int(cycles[idx]), int(first_load[idx]))
    assert best is not None
    _, tiles, order, dram_b, cyc, fl = best
    return Choice(tiles, order, dram_b, cyc, fl)
