"""SCALE-Sim v3 compatibility: its compute cycles and SRAM access counts, in closed form.

SCALE-Sim builds per-fold demand matrices and counts their rows and valid entries; the counts
reduce to (per group, see :mod:`edgecnn.hardware.mapping` for ``Sr, Sc, T``):

* fold length (demand-matrix rows) ``T + R + C - 2`` for OS and ``T + 2R + C - 2`` for WS/IS,
  folds serialised, and the reported compute cycles are the index of the last row, i.e.
  ``folds * fold_length - 1``;
* SRAM reads/writes as in :func:`edgecnn.hardware.mapping.operand_reads`, except that its OS
  ofmap write count adds ``R + C`` per fold (the padded fold's ``shape[0] + shape[1]`` is added
  after the element count; SCALE-Sim issue #166). This mode reproduces that double count;
  the tiled model does not.

A grouped layer counts as ``G`` SCALE-Sim layers (what :mod:`edgecnn.hardware.topology` writes).
SCALE-Sim's own memory simulation (stalls from its buffer traces) is not reproduced: stall
cycles in this mode come from our bandwidth model on :func:`fixed_schedule_dram`.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgecnn.hardware.config import Dataflow
from edgecnn.hardware.mapping import Gemm, fill_drain_cycles, fold_map, operand_reads
from edgecnn.hardware.tiling import ConvShape


@dataclass(frozen=True)
class ScaleSimCounts:
    """Per-layer SCALE-Sim numbers (words; cycles without memory stalls)."""

    compute_cycles: int
    folds: int
    ifmap_sram_reads: int
    filter_sram_reads: int
    ofmap_sram_writes: int
    mapping_efficiency: float


def scalesim_counts(shape: ConvShape, rows: int, cols: int, dataflow: Dataflow) -> ScaleSimCounts:
    """SCALE-Sim's compute cycles and SRAM counts for ``shape`` on an ``rows x cols`` array."""
    gemm = Gemm.of(shape)
    fm = fold_map(gemm, rows, cols, dataflow)
    fold_len = fm.t + fill_drain_cycles(rows, cols, dataflow)
    cycles = gemm.groups * (fm.folds * fold_len - 1)
    ir, fr, ow = operand_reads(fm, dataflow)
    if dataflow == Dataflow.OS:
        ow += gemm.groups * fm.folds * (rows + cols)
    used = 0
    for i in range(fm.row_folds):  # mapping efficiency: mean used fraction of the array per fold
        r_used = min(rows, fm.sr - i * rows)
        used += r_used * fm.sc
    eff = used / (fm.folds * rows * cols)
    return ScaleSimCounts(cycles, gemm.groups * fm.folds, ir, fr, ow, eff)


def fixed_schedule_dram(
    shape: ConvShape,
    rows: int,
    cols: int,
    dataflow: Dataflow,
    ifmap_buf_words: int,
    filter_buf_words: int,
) -> tuple[int, int, int]:
    """DRAM words (ifmap reads, filter reads, ofmap writes) of SCALE-Sim's fixed fold schedule.

    An operand whose unique words fit in half its buffer (double buffering) is fetched once;
    otherwise every SRAM read of it misses and is fetched again (no reuse across folds).
    Outputs are written once per SRAM write (WS/IS partial sums included). This is an
    estimate of SCALE-Sim's schedule, not its trace-driven DRAM model; it ignores the PE
    array's own registers (a WS array holds R x C weights), so for buffers of a few KB it can
    undercut what any tiling with one tile per operand buffer achieves.
    """
    fm = fold_map(Gemm.of(shape), rows, cols, dataflow)
    ir, fr, ow = operand_reads(fm, dataflow)
    in_unique = shape.input_elems
    w_unique = shape.weight_elems
    dram_in = in_unique if in_unique <= ifmap_buf_words // 2 else max(ir, in_unique)
    dram_w = w_unique if w_unique <= filter_buf_words // 2 else max(fr, w_unique)
    return dram_in, dram_w, max(ow, shape.output_elems)
