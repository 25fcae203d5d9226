"""Mapping a convolution/GEMM onto the PE array: folds, compute cycles, SRAM operand reads.

A layer with ``G`` groups is ``G`` independent GEMMs (run one after the other), each the
im2col view of one group: ``B*OH*OW`` output pixels (``EF``), ``N/G*KH*KW`` reduction length
(``RSC``) and ``M/G`` filters (``K``). A systolic ``R x C`` array maps two of them spatially and
streams the third in time (SCALE-Sim's convention)::

    OS: (Sr, Sc, T) = (EF, K, RSC)     WS: (RSC, K, EF)     IS: (RSC, EF, K)

``folds = ceil(Sr / R) * ceil(Sc / C)``.

**Group packing** (grouped and depthwise convs on a systolic array): when one group's GEMM is
smaller than the array (``Sr <= R / 2`` or ``Sc <= C / 2``), ``pack = min(R // Sr, C // Sc, G)``
groups run in one fold, laid side by side on the columns with each its own ``Sr`` rows
(a block-diagonal operand matrix: group ``g`` owns rows ``[g Sr, (g+1) Sr)`` and columns
``[g Sc, (g+1) Sc)``; the streamed dimension ``T`` is the same for every group). For WS a
depthwise 3x3 conv packs ``min(R // 9, C)`` channels per fold, each with its own R·S = 9-row
reduction on the rows; for OS (``Sr`` = output pixels, usually > R) nothing packs. The PEs
off the diagonal blocks idle, so utilisation stays <= ``pack·Sr·Sc / (R·C)``: the dataflow's
bound, and cycles stay >= MACs / PEs. Group folds are ``ceil(G / pack)``.

Operand words streamed from SRAM into the array
(per group; a fold reads its rows' and columns' operands):

* OS: ifmap ``ceil(Sc/C) * T * Sr``, filter ``ceil(Sr/R) * T * Sc``, ofmap writes ``Sr * Sc``
* WS: ifmap ``ceil(Sc/C) * T * Sr``, filter ``Sr * Sc``, ofmap writes ``ceil(Sr/R) * T * Sc``
* IS: ifmap ``Sr * Sc``, filter ``ceil(Sc/C) * T * Sr``, ofmap writes ``ceil(Sr/R) * T * Sc``

A *flat* array of P MAC units (the seed chip's "128 FP16 units") has no systolic wiring: per
layer it behaves as the best ``r x c = P`` output-stationary grid (``c`` filters times ``r``
pixels, powers of two), with no fill/drain skew.

**Row stationary** (:attr:`Dataflow.RS`, Eyeriss; Chen et al., ISCA 2016 and JSSC 2017): see
:func:`rs_cycles`. Its SRAM operand counts use the WS fold table (filter rows stay in the PEs,
partial sums move), and SCALE-Sim mode, which has no RS, runs it as WS.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from edgecnn.hardware.config import AcceleratorConfig, Dataflow
from edgecnn.hardware.tiling import ConvShape


@dataclass(frozen=True)
class Gemm:
    """One group's GEMM: ``ef`` output pixels, ``rsc`` reduction length, ``k`` filters."""

    ef: int
    rsc: int
    k: int
    groups: int = 1

    @classmethod
    def of(cls, shape: ConvShape) -> Gemm:
        return cls(
            ef=shape.batch * shape.out_h * shape.out_w,
            rsc=shape.n_per_group * shape.kernel_h * shape.kernel_w,
            k=shape.m_per_group,
            groups=shape.groups,
        )

    @property
    def macs(self) -> int:
        return self.groups * self.ef * self.rsc * self.k


@dataclass(frozen=True)
class FoldMap:
    """The spatial mapping of one GEMM on an ``rows x cols`` grid (per group)."""

    rows: int
    cols: int
    sr: int
    sc: int
    t: int
    groups: int
    pack: int = 1
    """Groups laid side by side in one fold (block-diagonal packing, see the module docstring)."""

    @property
    def group_folds(self) -> int:
        """Folds over the groups: ``ceil(G / pack)``."""
        return math.ceil(self.groups / self.pack)

    @property
    def row_folds(self) -> int:
        return math.ceil(self.sr / self.rows)

    @property
    def col_folds(self) -> int:
        return math.ceil(self.sc / self.cols)

    @property
    def folds(self) -> int:
        """Folds of one group."""
        return self.row_folds * self.col_folds


#: (Sr, Sc, T) of a GEMM per dataflow (SCALE-Sim's convention); one entry per Dataflow member.
FOLD_AXES: dict[Dataflow, Callable[[Gemm], tuple[int, int, int]]] = {
    Dataflow.OS: lambda g: (g.ef, g.k, g.rsc),
    Dataflow.WS: lambda g: (g.rsc, g.k, g.ef),
    Dataflow.IS: lambda g: (g.rsc, g.ef, g.k),
    Dataflow.RS: lambda g: (g.rsc, g.k, g.ef),  # operand counts as WS; cycles from rs_cycles
}

#: Which of (Sr-streamed, Sc-streamed, stationary) operand counts are (ifmap, filter, ofmap).
OPERAND_ROLES: dict[Dataflow, tuple[str, str, str]] = {
    Dataflow.OS: ("rows", "cols", "full"),
    Dataflow.WS: ("rows", "full", "cols"),
    Dataflow.IS: ("full", "rows", "cols"),
    Dataflow.RS: ("rows", "full", "cols"),
}


def fold_map(
    gemm: Gemm, rows: int, cols: int, dataflow: Dataflow, pack_groups: bool = False
) -> FoldMap:
    """SCALE-Sim's (Sr, Sc, T) for ``dataflow`` (see the module docstring).

    ``pack_groups``: lay ``pack = min(rows // Sr, cols // Sc, G)`` groups side by side in one
    fold (1 when one group fills either dimension). SCALE-Sim itself never packs.
    """
    sr, sc, t = FOLD_AXES[dataflow](gemm)
    pack = 1
    if pack_groups and gemm.groups > 1 and sr <= rows and sc <= cols:
        pack = max(1, min(rows // sr, cols // sc, gemm.groups))
    return FoldMap(rows, cols, sr, sc, t, gemm.groups, pack)


def operand_reads(fm: FoldMap, dataflow: Dataflow) -> tuple[int, int, int]:
    """(ifmap reads, filter reads, ofmap writes) in words for all groups, without double counts."""
    counts = {
        "full": fm.sr * fm.sc,
        "rows": fm.col_folds * fm.t * fm.sr,  # the operand indexed by Sr, once per column fold
        "cols": fm.row_folds * fm.t * fm.sc,  # the operand indexed by Sc, once per row fold
    }
    ifmap, filt, ofmap = (fm.groups * counts[role] for role in OPERAND_ROLES[dataflow])
    return ifmap, filt, ofmap


def fill_drain_cycles(rows: int, cols: int, dataflow: Dataflow) -> int:
    """Systolic pipeline fill + drain of one fold: R+C-2 (OS) or 2R+C-2 (WS/IS/RS)."""
    return rows + cols - 2 if dataflow == Dataflow.OS else 2 * rows + cols - 2


def flat_grid(gemm: Gemm, pes: int) -> tuple[int, int]:
    """Best ``(r, c)`` with ``r * c = pes`` for a flat MAC array.

    Fewest folds first, then fewest operand words streamed from SRAM (the squarest useful grid),
    then more ``c``.

    Candidates are ``c`` = powers of two dividing ``pes`` and ``pes`` itself.
    """
    cands = {pes}
    c = 1
    while c <= pes:
        if pes % c == 0:
            cands.add(c)
        c *= 2
    best = None
    for c in sorted(cands):
        r = pes // c
        row_folds, col_folds = math.ceil(gemm.ef / r), math.ceil(gemm.k / c)
        reads = col_folds * gemm.ef + row_folds * gemm.k  # operand words per reduction step
        key = (row_folds * col_folds, reads, -c)
        if best is None or key < best[0]:
            best = (key, (r, c))
    assert best is not None
    return best[1]


@dataclass(frozen=True)
class ArrayMapping:
    """Compute cycles and SRAM operand words of a GEMM on the accelerator (tiled model)."""

    fold_map: FoldMap
    dataflow: Dataflow
    compute_cycles: int
    ifmap_reads: int
    filter_reads: int
    ofmap_writes: int
    psum_reads: int


def map_gemm(
    gemm: Gemm,
    accel: AcceleratorConfig,
    density: float = 1.0,
    shape: ConvShape | None = None,
) -> ArrayMapping:
    """Tiled-model mapping: folds run back to back, one fill/drain per layer.

    ``density`` (1 - weight sparsity, zero-skipping) scales the streamed time dimension:
    ``cycles = ceil(ceil(G / pack) * folds * T * density / mac_efficiency) + fill/drain``;
    ideal skipping is assumed; groups pack side by side on a systolic array (module
    docstring). Partial sums of WS/IS (row folds > 1 accumulate in SRAM) are read back
    ``(row_folds - 1) * T * Sc`` times per group. With the RS dataflow and the layer's
    ``shape``, cycles come from :func:`rs_cycles` instead.
    """
    eff = accel.mac_efficiency
    if accel.flat:
        r, c = flat_grid(gemm, accel.pes)
        fm = fold_map(gemm, r, c, Dataflow.OS)
        dataflow, fill = Dataflow.OS, 0
    else:
        fm = fold_map(gemm, accel.rows, accel.cols, accel.dataflow, pack_groups=True)
        dataflow = accel.dataflow
        fill = fill_drain_cycles(accel.rows, accel.cols, dataflow)
    if dataflow == Dataflow.RS and shape is not None:
        cycles = max(1, math.ceil(rs_cycles(shape, accel.rows, accel.cols) * density / eff))
    else:
        steps = fm.group_folds * fm.folds * fm.t
        cycles = max(1, math.ceil(steps * density / eff)) + fill
    ir, fr, ow = operand_reads(fm, dataflow)
    psum = 0 if dataflow == Dataflow.OS else gemm.groups * (fm.row_folds - 1) * fm.t * fm.sc
    return ArrayMapping(fm, dataflow, cycles, ir, fr, ow, psum)


@dataclass(frozen=True)
class RsMapping:
    """How one conv's logical PE sets fold onto the physical array (row stationary)."""

    row_segments: int  #: filter rows split into this many passes (R > array rows)
    seg_rows: int  #: PE rows of one segment
    strips: int  #: output rows split into this many strips (E > array columns)
    seg_cols: int  #: PE columns of one segment
    segments_per_pass: int  #: segments placed on the array at once
    passes: int
    cycles_per_pass: int  #: S * F: one 1-D row primitive, one MAC per cycle

    @property
    def cycles(self) -> int:
        return self.passes * self.cycles_per_pass


def rs_mapping(shape: ConvShape, rows: int, cols: int) -> RsMapping:
    """Row-stationary mapping after Chen et al. (ISCA 2016; JSSC 2017, Sec. III-IV).

    The 1-D *row primitive*: one PE keeps a filter row (S weights) in its register file,
    slides it over an ifmap row and produces one row of F partial sums: ``S * F`` MACs, one per
    cycle. A 2-D convolution of one (image, filter, channel) plane is a *logical PE set* of
    ``R x E`` PEs (filter rows x output rows); partial sums accumulate up each column, ifmap
    rows are multicast along the diagonals. Sets are folded onto the ``rows x cols`` array:

    * ``R > rows``: ``ceil(R / rows)`` row segments of ``ceil(R / that)`` rows (psums add up
      across passes); ``E > cols``: ``ceil(E / cols)`` strips of ``ceil(E / that)`` columns;
    * ``(rows // seg_rows) * (cols // seg_cols)`` segments share the array in one pass
      (different strips, channels, filters, images: Eyeriss's replication of sets);
    * there are ``B * M * (C/G) * row_segments * strips`` segments, so
      ``passes = ceil(segments / per pass)`` and ``cycles = passes * S * F``.

    Utilisation is lost where segments do not tile the array (AlexNet CONV1: 11 x 14 of
    12 x 14, CONV2: two 5 x 14 segments on 10 of 12 rows) and in the last pass. Per-PE
    stalls (NoC delivery, pipeline bubbles) are not modelled here: that is
    :attr:`AcceleratorConfig.mac_efficiency`. FC layers are 1 x 1 sets (R = E = S = F = 1).
    """
    r, s = shape.kernel_h, shape.kernel_w
    e, f = shape.out_h, shape.out_w
    row_segments = math.ceil(r / rows)
    seg_rows = math.ceil(r / row_segments)
    strips = math.ceil(e / cols)
    seg_cols = math.ceil(e / strips)
    per_pass = (rows // seg_rows) * (cols // seg_cols)
    segments = shape.batch * shape.out_channels * shape.n_per_group * row_segments * strips
    passes = math.ceil(segments / per_pass)
    return RsMapping(row_segments, seg_rows, strips, seg_cols, per_pass, passes, s * f)


def rs_cycles(shape: ConvShape, rows: int, cols: int) -> int:
    """Compute cycles of ``shape`` under :func:`rs_mapping` (>= MACs / (rows * cols))."""
    return rs_mapping(shape, rows, cols).cycles


@dataclass(frozen=True)
class RsGlbPlan:
    """How a row-stationary layer's passes use the global buffer (Eyeriss, JSSC 2017 Sec. IV).

    A processing pass runs full-width row strips: ``e`` output rows (the PE-set width of
    :func:`rs_mapping`) by the whole output width, for the batch. The GLB holds
    ``channels_per_pass`` input-channel strips of ``(e - 1) * stride + R`` input rows (times
    ``ifmap_buffers``: 2 when double-buffered, the next channels load during a pass) and the
    partial-sum strips of ``filters_in_glb`` filters, which stay there while the passes walk the
    input channels. Every output psum therefore goes through the array ``psum_round_trips =
    ceil(C / channels_per_pass)`` times (written back once per pass, read back for the next).
    """

    channels_per_pass: int
    filters_in_glb: int
    psum_round_trips: int
    psum_writes: int  #: psum words written to the GLB (all groups): outputs x round trips


def rs_glb_plan(
    shape: ConvShape,
    cols: int,
    glb_bytes: int,
    word_bytes: int,
    psum_bytes: int,
    ifmap_buffers: int,
    dram_pj_per_byte: float,
    glb_pj_per_byte: float,
) -> RsGlbPlan:
    """The energy-cheapest split of the GLB between ifmap and psum strips (as Eyeriss's mapper
    optimises energy): ``channels_per_pass`` ``cp`` and ``filters_in_glb`` ``m`` with
    ``ifmap_buffers * B * cp * rows_in * W * word_bytes + B * m * e * F * psum_bytes <= glb``,
    minimising ``dram_pj * ifmap_bytes * ceil(M / m) + glb_pj * 2 * psum_bytes * outputs *
    ceil(C / cp)`` (the ifmap is re-read from DRAM once per filter group; psums make a GLB round
    trip per channel group). Per group of a grouped conv; ``cp = m = 1`` when even one strip of
    each does not fit (the round trips are then a lower bound)."""
    b, c, m_total = shape.batch, shape.n_per_group, shape.m_per_group
    e_rows, f = shape.out_h, shape.out_w
    e = math.ceil(e_rows / math.ceil(e_rows / cols))
    w = (f - 1) * shape.stride_w + shape.kernel_w
    rows_in = (e - 1) * shape.stride_h + shape.kernel_h
    h_in = (e_rows - 1) * shape.stride_h + shape.kernel_h
    per_channel = ifmap_buffers * b * rows_in * w * word_bytes
    per_filter = b * e * f * psum_bytes
    ifmap_bytes = b * c * h_in * w * word_bytes
    outputs = b * m_total * e_rows * f
    best: tuple[float, int, int] | None = None
    for cp in range(1, c + 1):
        room = glb_bytes - per_channel * cp
        if room < per_filter:
            break
        m = min(m_total, room // per_filter)
        energy = dram_pj_per_byte * ifmap_bytes * math.ceil(m_total / m)
        energy += glb_pj_per_byte * 2 * psum_bytes * outputs * math.ceil(c / cp)
        if best is None or energy <= best[0]:
            best = (energy, cp, m)
    _, cp, m = best if best is not None else (0.0, 1, 1)
    trips = math.ceil(c / cp)
    return RsGlbPlan(cp, m, trips, shape.groups * outputs * trips)
