"""Mapping a convolution/GEMM onto the PE array: folds, compute cycles, SRAM operand reads.

A layer with ``G`` groups is ``G`` independent GEMMs (run one after the other), each the
im2col view of one group: ``B*OH*OW`` output pixels (``EF``), ``N/G*KH*KW`` reduction length
(``RSC``) and ``M/G`` filters (``K``). A systolic ``R x C`` array maps two of them spatially and
streams the third in time (SCALE-Sim's convention)::

    OS: (Sr, Sc, T) = (EF, K, RSC)     WS: (RSC, K, EF)     IS: (RSC, EF, K)

``folds = ceil(Sr / R) * ceil(Sc / C)``. Operand words streamed from SRAM into the array
(per group; a fold reads its rows' and columns' operands):

* OS: ifmap ``ceil(Sc/C) * T * Sr``, filter ``ceil(Sr/R) * T * Sc``, ofmap writes ``Sr * Sc``
* WS: ifmap ``ceil(Sc/C) * T * Sr``, filter ``Sr * Sc``, ofmap writes ``ceil(Sr/R) * T * Sc``
* IS: ifmap ``Sr * Sc``, filter ``ceil(Sc/C) * T * Sr``, ofmap writes ``ceil(Sr/R) * T * Sc``

A *flat* array of P MAC units (the seed chip's "128 FP16 units") has no systolic wiring: per
layer it behaves as the best ``r x c = P`` output-stationary grid (``c`` filters times ``r``
pixels, powers of two), with no fill/drain skew.
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
}

#: Which of (Sr-streamed, Sc-streamed, stationary) operand counts are (ifmap, filter, ofmap).
OPERAND_ROLES: dict[Dataflow, tuple[str, str, str]] = {
    Dataflow.OS: ("rows", "cols", "full"),
    Dataflow.WS: ("rows", "full", "cols"),
    Dataflow.IS: ("full", "rows", "cols"),
}


def fold_map(gemm: Gemm, rows: int, cols: int, dataflow: Dataflow) -> FoldMap:
    """SCALE-Sim's (Sr, Sc, T) for ``dataflow`` (see the module docstring)."""
    sr, sc, t = FOLD_AXES[dataflow](gemm)
    return FoldMap(rows, cols, sr, sc, t, gemm.groups)


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
    """Systolic pipeline fill + drain of one fold: R+C-2 (OS) or 2R+C-2 (WS/IS)."""
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


def map_gemm(gemm: Gemm, accel: AcceleratorConfig, density: float = 1.0) -> ArrayMapping:
    """Tiled-model mapping: folds run back to back, one fill/drain per layer.

    ``density`` (1 - weight sparsity, zero-skipping) scales the streamed time dimension:
    ``cycles = ceil(G * folds * T * density) + fill/drain``; ideal skipping is assumed.
    Partial sums of WS/IS (row folds > 1 accumulate in SRAM) are read back
    ``(row_folds - 1) * T * Sc`` times per group.
    """
    if accel.flat:
        r, c = flat_grid(gemm, accel.pes)
        fm = fold_map(gemm, r, c, Dataflow.OS)
        dataflow, fill = Dataflow.OS, 0
    else:
        fm = fold_map(gemm, accel.rows, accel.cols, accel.dataflow)
        dataflow = accel.dataflow
        fill = fill_drain_cycles(accel.rows, accel.cols, dataflow)
    steps = gemm.groups * fm.folds * fm.t
    cycles = max(1, math.ceil(steps * density)) + fill
    ir, fr, ow = operand_reads(fm, dataflow)
    psum = 0 if dataflow == Dataflow.OS else gemm.groups * (fm.row_folds - 1) * fm.t * fm.sc
    return ArrayMapping(fm, dataflow, cycles, ir, fr, ow, psum)
