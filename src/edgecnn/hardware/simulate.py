"""Simulate a network on an accelerator: per-layer cycles, traffic and energy.

Entry point: :func:`simulate` (a :class:`~edgecnn.graph.Graph` or a :class:`Workload`, an
:class:`AcceleratorConfig`, :class:`SimOptions`) -> :class:`SimResult`.

Two cycle models (``SimOptions.model_cycles``):

* ``tiled`` (default): array compute cycles from :func:`edgecnn.hardware.mapping.map_gemm`,
  DRAM traffic from the per-layer tiling search (:mod:`edgecnn.hardware.search`) over the
  closed form of :mod:`edgecnn.hardware.tiling`, stalls from DRAM bandwidth with or without
  double buffering, Winograd, zero-skipping and on-chip feature-map reuse;
* ``scalesim``: SCALE-Sim v3's compute cycles and SRAM counts
  (:mod:`edgecnn.hardware.scalesim`), its fixed-schedule DRAM estimate, no Winograd or reuse.

Network effects (tiled model): BatchNorm folded and activations fused when ``fuse``; with
``fmap_reuse`` a feature map stays on chip while it is live if it fits in the feature-map half
of the SRAM (the other half holds tiles), so neither its write nor its reads cross DRAM;
Winograd F(m x m, 3 x 3) runs eligible 3x3 stride-1 convs as ``(m+2)^2`` GEMMs over
``ceil(OH/m) * ceil(OW/m)`` tiles (``(m+2)^2 / (9 m^2)`` of the multiplications), with its
input/output transforms on the vector unit (overlapped with the array); weights cross DRAM in
the spatial domain and are transformed on chip (``G g G^T``, once per 3x3 kernel per layer;
re-transforms after a weight refetch are not counted), so the on-chip weight tile is
``(m+2)^2 / 9`` larger but DRAM weight traffic is unchanged; zero-skipping scales array time and
MACs by the layer's weight density.

DRAM compression and caching (tiled model): ``fmap_rlc`` run-length-codes every feature map
but the network input (:func:`~edgecnn.hardware.config.rlc_bytes`), ``weight_bits`` sizes
weights as Deep Compression stores them (nonzeros x (bits + index bits)), ``param_cache`` keeps
the first parameters that fit on chip across inferences (no per-inference DRAM reads); the
searched stall is scaled by the bytes that actually cross. ``--sparsity`` needs zero-skipping
or compressed weights (refused otherwise: it would change nothing). Row stationary
(``Dataflow.RS``) takes its cycles from :func:`edgecnn.hardware.mapping.rs_cycles`; grouped
convs pack side by side on systolic arrays (:mod:`edgecnn.hardware.mapping`).

Stalls use :attr:`AcceleratorConfig.stall_bw_bytes_per_cycle` (infinite, so none, for a
SCALE-Sim ``InterfaceBandwidth: CALC`` config). Transposed convs run on the array by sub-pixel
decomposition and batched matmuls as grouped GEMMs (:mod:`edgecnn.hardware.workload`).

Energy (picojoules per access, :class:`~edgecnn.hardware.config.EnergyTable`): MACs, three
register accesses per MAC (two operands, one accumulator), SRAM words moved (array side plus
DRAM fills and drains) at the buffer's size, DRAM bytes, vector-unit ops.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from edgecnn.analysis.residency import Residency, Step, allocate_resident
from edgecnn.errors import ConfigError
from edgecnn.graph.ir import Graph
from edgecnn.hardware.config import (
    AcceleratorConfig,
    Dataflow,
    compressed_weight_bytes,
    rlc_bytes,
)
from edgecnn.hardware.mapping import ArrayMapping, Gemm, map_gemm, rs_glb_plan
from edgecnn.hardware.scalesim import fixed_schedule_dram, scalesim_counts
from edgecnn.hardware.search import Budget, Choice, Objective, Operands, search_tiles
from edgecnn.hardware.tiling import one_touch_elems, tiled_traffic
from edgecnn.hardware.workload import ArrayWork, VectorWork, Workload, build_workload

MODEL_CYCLES = ("tiled", "scalesim")

WINOGRAD_NNZ: dict[int, tuple[int, int, int]] = {2: (8, 6, 6), 4: (22, 18, 14)}
"""Non-zeros of B^T, A^T and G for F(2x2,3x3) and F(4x4,3x3) (Lavin and Gray, CVPR 2016).

Transform costs count one vector op per non-zero use: input ``B^T d B`` takes ``2 n nnz(B^T)``
ops per tile and input channel, output ``A^T M A`` takes ``(n + m) nnz(A^T)`` per tile and output
channel, and the weight transform ``G g G^T`` ``(3 + n) nnz(G)`` per 3x3 kernel.
"""
FMAP_FRACTION = 0.5
"""Share of the feature-map SRAM that may hold resident feature maps when reuse is on."""


@dataclass(frozen=True)
class SimOptions:
    """Switches of one simulation (all default to the accelerator's own capabilities)."""

    model_cycles: str = "tiled"
    precision: str | None = None
    objective: Objective = Objective.LATENCY
    fuse: bool = True
    winograd: bool = True
    """Use the accelerator's Winograd unit (if it has one) where it lowers compute cycles."""
    fmap_reuse: bool = True
    sparsity: float | None = None
    """Weight sparsity for every layer (overrides a layer's ``weight_sparsity`` attribute);
    :func:`simulate` refuses it on an accelerator without zero-skipping or compressed weights."""

    def __post_init__(self) -> None:
        if self.model_cycles not in MODEL_CYCLES:
            raise ConfigError(
                f"model_cycles = {self.model_cycles!r} is not valid: choose {' or '.join(MODEL_CYCLES)}"
            )
        try:
            object.__setattr__(self, "objective", Objective(self.objective))
        except ValueError:
            raise ConfigError(
                f"objective = {self.objective!r} is not valid: choose latency, energy or dram"
            ) from None
        if self.sparsity is not None and not 0 <= self.sparsity < 1:
            raise ConfigError(f"sparsity = {self.sparsity} is invalid: give a fraction in [0, 1)")


@dataclass
class LayerResult:
    """One layer's simulation. Words are elements; bytes at the layer's word size.

    ``sram_reads_by_operand`` / ``sram_writes_by_operand`` split ``sram_reads`` /
    ``sram_writes`` (words): array-side operand streams, partial-sum read-back, DRAM fills
    (writes) and drains (``drain`` reads of outputs leaving for DRAM). In ``scalesim`` mode they
    are SCALE-Sim's three counts.
    """

    name: str
    op: str
    unit: str  # "array" or "vector"
    macs: int
    effective_macs: int
    cycles: int
    compute_cycles: int
    stall_cycles: int
    utilization: float
    folds: int
    sram_reads: int
    sram_writes: int
    sram_bytes: int
    dram_bytes: int
    dram_read_bytes: dict[str, int]
    dram_write_bytes: dict[str, int]
    sram_reads_by_operand: dict[str, int]
    sram_writes_by_operand: dict[str, int]
    energy_j: float
    energy_breakdown: dict[str, float]
    vector_ops: int = 0
    winograd: bool = False
    tiling: dict[str, Any] | None = None
    fused: list[str] = field(default_factory=list)
    input_on_chip: bool = False
    output_on_chip: bool = False
    one_touch_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SimResult:
    """A network's simulation: per-layer results and totals (``cycles`` = sum of the layers')."""

    model: str
    accelerator: dict[str, Any]
    model_cycles: str
    precision: str
    layers: list[LayerResult]
    unknown_ops: list[str]
    options: dict[str, Any]

    @property
    def totals(self) -> dict[str, Any]:
        cycles = sum(r.cycles for r in self.layers)
        pes = self.accelerator["pes"]
        eff = sum(r.effective_macs for r in self.layers)
        breakdown: dict[str, float] = {}
        for r in self.layers:
            for k, v in r.energy_breakdown.items():
                breakdown[k] = breakdown.get(k, 0.0) + v
        return {
            "cycles": cycles,
            "compute_cycles": sum(r.compute_cycles for r in self.layers),
            "stall_cycles": sum(r.stall_cycles for r in self.layers),
            "macs": sum(r.macs for r in self.layers),
            "effective_macs": eff,
            "pes": pes,
            "latency_s": cycles / self.accelerator["clock_hz"],
            "utilization": eff / (cycles * pes) if cycles else 0.0,
            "dram_bytes": sum(r.dram_bytes for r in self.layers),
            "sram_bytes": sum(r.sram_bytes for r in self.layers),
            "energy_j": sum(r.energy_j for r in self.layers),
            "energy_breakdown": breakdown,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "simulate",
            "model": self.model,
            "accelerator": self.accelerator,
            "model_cycles": self.model_cycles,
            "precision": self.precision,
            "options": self.options,
            "layers": [r.to_dict() for r in self.layers],
            "totals": self.totals,
            "unknown_ops": self.unknown_ops,
        }


def _cached_params(workload: Workload, accel: AcceleratorConfig, wb: int) -> frozenset[str]:
    """Array layers whose weights stay on chip (``param_cache``).

    Greedy in execution order, as the Edge TPU compiler places the first parameters that fit
    and streams the rest (Coral: the on-chip SRAM caches parameters), into the SRAM left after
    the activation working set: the largest input + output of any one layer (a lower bound of
    peak liveness; a device with no DRAM of its own must hold its activations on chip), or
    into ``param_cache_bytes`` when the config gives the compiler's budget. The cache and the
    tile buffers are not subtracted from each other (a simplification)."""
    if not accel.param_cache:
        return frozenset()
    working = max(
        (sum(n for _, n in it.inputs) + sum(n for _, n in it.outputs) for it in workload.items),
        default=0,
    )
    room = accel.sram_bytes - working * wb
    if accel.param_cache_bytes:
        room = min(accel.param_cache_bytes, accel.sram_bytes)
    names = []
    for item in workload.items:
        if not isinstance(item, ArrayWork) or item.weight_is_activation:
            continue
        need = item.shape.weight_elems * wb
        if need > room:
            break
        room -= need
        names.append(item.name)
    return frozenset(names)


def _residency(workload: Workload, capacity_bytes: int, wb: int) -> Residency:
    """Feature maps kept on chip: :func:`edgecnn.analysis.residency.allocate_resident`."""
    steps = [
        Step(
            tuple((name, numel * wb) for name, numel in item.inputs),
            tuple((name, numel * wb) for name, numel in item.outputs),
        )
        for item in workload.items
    ]
    return allocate_resident(steps, capacity_bytes, workload.graph_outputs)


def _energy(
    accel: AcceleratorConfig,
    precision: str,
    macs: int,
    sram_words: dict[str, int],
    dram_bytes: int,
    vector_ops: int,
) -> dict[str, float]:
    e = accel.energy
    wb = accel.word_bytes(precision)
    if accel.shared_sram_bytes:
        sizes = dict.fromkeys(sram_words, accel.shared_sram_bytes)
    else:
        sizes = {
            "ifmap": accel.ifmap_sram_bytes,
            "filter": accel.filter_sram_bytes,
            "ofmap": accel.ofmap_sram_bytes,
        }
    sram_pj = sum(sram_words[k] * wb * e.sram_pj_per_byte(sizes[k]) for k in sram_words)
    return {
        "mac": macs * e.mac(precision) * 1e-12,
        "register": macs * 3 * wb * e.register_pj_per_byte * 1e-12,
        "sram": sram_pj * 1e-12,
        "dram": dram_bytes * e.dram_pj_per_byte * 1e-12,
        "vector": vector_ops * e.vector_op_pj * 1e-12,
    }


def _stall(compute: int, xfer_bytes: float, bw: float, double_buffering: bool) -> int:
    xfer = xfer_bytes / bw
    total = max(compute, xfer) if double_buffering else compute + xfer
    return max(0, math.ceil(total) - compute)


def simulate(
    model: Graph | Workload,
    accel: AcceleratorConfig,
    options: SimOptions | None = None,
) -> SimResult:
    """Simulate ``model`` on ``accel`` (see the module docstring)."""
    opts = options or SimOptions()
    precision = accel.check_precision(opts.precision)
    if opts.sparsity is not None and not (accel.zero_skipping or accel.weight_bits):
        raise ConfigError(
            f"accelerator {accel.name!r} has no zero-skipping (and no compressed weights), so "
            f"sparsity = {opts.sparsity} would change nothing: set zero_skipping = true (or "
            "weight_bits for compressed weights) in its config, or drop --sparsity"
        )
    wb = accel.word_bytes(precision)
    pb = accel.partial_sum_bytes(precision)
    workload = model if isinstance(model, Workload) else build_workload(model, fuse=opts.fuse)
    tiled = opts.model_cycles == "tiled"
    db = 2 if accel.double_buffering else 1
    shared = accel.shared_sram_bytes
    reuse = tiled and opts.fmap_reuse
    fmap_pool = shared if shared else accel.ifmap_sram_bytes + accel.ofmap_sram_bytes
    capacity = int(fmap_pool * FMAP_FRACTION) if reuse else 0
    residency = _residency(workload, capacity, wb)
    resident = residency.resident
    use_wino = tiled and opts.winograd and accel.winograd.m > 0
    ctx = _Context(accel, opts, precision, wb, pb, use_wino)

    cached = _cached_params(workload, accel, wb) if tiled else frozenset()
    results: list[LayerResult] = []
    for i, item in enumerate(workload.items):
        in_res = all(n in resident for n, _ in item.inputs) and bool(item.inputs)
        out_res = all(n in resident for n, _ in item.outputs) and bool(item.outputs)
        if isinstance(item, VectorWork):
            results.append(_vector_layer(item, accel, precision, in_res, out_res, resident))
            continue
        if tiled:
            first = any(n in workload.graph_inputs for n, _ in item.inputs)
            place = _Placement(in_res, out_res, residency.held_bytes[i], first, item.name in cached)
            results.append(_tiled_layer(item, ctx, place))
        else:
            results.append(_scalesim_layer(item, accel, precision, wb))
    return SimResult(
        model=workload.name,
        accelerator=accel.to_dict(),
        model_cycles=opts.model_cycles,
        precision=precision,
        layers=results,
        unknown_ops=list(workload.unknown),
        options={
            "objective": opts.objective.value,
            "fuse": opts.fuse,
            "winograd": bool(use_wino),
            "fmap_reuse": reuse,
            "sparsity": opts.sparsity,
            "db_factor": db,
        },
    )


def _vector_layer(
    item: VectorWork,
    accel: AcceleratorConfig,
    precision: str,
    in_res: bool,
    out_res: bool,
    resident: frozenset[str],
) -> LayerResult:
    wb = accel.word_bytes(precision)
    in_words = sum(n for _, n in item.inputs)
    out_words = sum(n for _, n in item.outputs)
    dram_in = sum(n for name, n in item.inputs if name not in resident) * wb
    dram_out = sum(n for name, n in item.outputs if name not in resident) * wb
    compute = max(1, math.ceil(item.ops / accel.lanes))
    stall = _stall(
        compute, dram_in + dram_out, accel.stall_bw_bytes_per_cycle, accel.double_buffering
    )
    sram = {"ifmap": in_words + dram_in // wb, "filter": 0, "ofmap": out_words + dram_out // wb}
    energy = _energy(accel, precision, 0, sram, dram_in + dram_out, item.ops)
    return LayerResult(
        name=item.name,
        op=item.op,
        unit="vector",
        macs=0,
        effective_macs=0,
        cycles=compute + stall,
        compute_cycles=compute,
        stall_cycles=stall,
        utilization=0.0,
        folds=0,
        sram_reads=in_words + dram_out // wb,
        sram_writes=out_words + dram_in // wb,
        sram_bytes=(in_words + out_words + (dram_in + dram_out) // wb) * wb,
        dram_bytes=dram_in + dram_out,
        dram_read_bytes={"input": dram_in, "weight": 0, "psum": 0},
        dram_write_bytes={"output": dram_out, "psum": 0},
        sram_reads_by_operand={"ifmap": in_words, "filter": 0, "psum": 0, "drain": dram_out // wb},
        sram_writes_by_operand={"ifmap": dram_in // wb, "filter": 0, "ofmap": out_words},
        energy_j=sum(energy.values()),
        energy_breakdown=energy,
        vector_ops=item.ops,
        fused=list(item.fused),
        input_on_chip=in_res,
        output_on_chip=out_res,
        one_touch_bytes=0,
    )


def _density(item: ArrayWork, accel: AcceleratorConfig, opts: SimOptions) -> float:
    if not accel.zero_skipping:
        return 1.0
    s = opts.sparsity if opts.sparsity is not None else item.sparsity
    return 1.0 - s


@dataclass(frozen=True)
class _Context:
    """What every array layer of one simulation shares."""

    accel: AcceleratorConfig
    opts: SimOptions
    precision: str
    wb: int  #: operand word, bytes
    pb: int  #: partial-sum word, bytes
    use_wino: bool

    @property
    def db(self) -> int:
        return 2 if self.accel.double_buffering else 1


@dataclass(frozen=True)
class _Placement:
    """Where one layer's feature maps live: on chip or in DRAM, and the resident bytes held."""

    in_res: bool
    out_res: bool
    live_bytes: int
    reads_graph_input: bool = False  #: the input is the network's (an image: never RLC'd)
    weights_cached: bool = False  #: weights held on chip across inferences (param_cache)


@dataclass(frozen=True)
class _Compute:
    """The array side of a layer: mapping, cycles, multiplications and Winograd's extra work."""

    mapping: ArrayMapping
    cycles: int
    effective_macs: int
    vector_ops: int = 0
    weight_scale: float = 1.0  #: on-chip weight tile growth (Winograd: n^2 / 9)
    winograd: bool = False


@dataclass(frozen=True)
class _Traffic:
    """DRAM bytes of one layer by operand (0 for feature maps that stay on chip)."""

    rd_in: int
    rd_w: int
    wr_out: int
    psum_r: int
    psum_w: int

    @property
    def total(self) -> int:
        return self.rd_in + self.rd_w + self.wr_out + self.psum_r + self.psum_w


def _direct_compute(item: ArrayWork, ctx: _Context, density: float) -> _Compute:
    """Im2col GEMM on the array; zero-skipping scales time and multiplications by ``density``."""
    gemm = Gemm.of(item.shape)
    mapping = map_gemm(gemm, ctx.accel, density, shape=item.shape)
    cycles = max(mapping.compute_cycles, _rs_psum_cycles(item, ctx))
    return _Compute(mapping, cycles, math.ceil(gemm.macs * density))


def _rs_psum_cycles(item: ArrayWork, ctx: _Context) -> int:
    """Row stationary with a psum-network limit: the cycles the layer's partial-sum write-backs
    to the GLB take (:func:`edgecnn.hardware.mapping.rs_glb_plan`); 0 otherwise."""
    accel = ctx.accel
    bw = accel.psum_noc_words_per_cycle
    if accel.dataflow is not Dataflow.RS or bw <= 0 or accel.flat:
        return 0
    glb = accel.shared_sram_bytes or accel.ifmap_sram_bytes + accel.ofmap_sram_bytes
    e = accel.energy
    plan = rs_glb_plan(
        item.shape, accel.cols, glb, ctx.wb, ctx.pb, ctx.db,
        e.dram_pj_per_byte, e.sram_pj_per_byte(glb),
    )  # fmt: skip
    return math.ceil(plan.psum_writes / bw)


def _winograd_compute(item: ArrayWork, ctx: _Context, density: float) -> _Compute:
    """F(m x m, 3 x 3): ``(m+2)^2`` GEMMs over the tiles, transforms on the vector unit.

    Cycles are the larger of the array's and the transforms' (they overlap).
    """
    shape, accel = item.shape, ctx.accel
    m = accel.winograd.m
    n = m + 2
    tiles = shape.batch * math.ceil(shape.out_h / m) * math.ceil(shape.out_w / m)
    wgemm = Gemm(ef=tiles, rsc=shape.in_channels, k=shape.out_channels, groups=n * n)
    wmap = map_gemm(wgemm, accel, density)
    nnz_b, nnz_a, nnz_g = WINOGRAD_NNZ[m]
    in_ops, out_ops = 2 * n * nnz_b, (n + m) * nnz_a  # per tile and channel
    w_ops = tiles * (in_ops * shape.in_channels + out_ops * shape.out_channels)
    w_ops += shape.weight_elems // 9 * (3 + n) * nnz_g  # G g G^T once per 3x3 kernel
    w_cycles = max(wmap.compute_cycles, math.ceil(w_ops / accel.lanes))
    return _Compute(wmap, w_cycles, math.ceil(wgemm.macs * density), w_ops, n * n / 9, True)


def _array_compute(item: ArrayWork, ctx: _Context) -> _Compute:
    """Direct mapping, or Winograd where the unit is on, the layer eligible and it is faster."""
    density = _density(item, ctx.accel, ctx.opts)
    direct = _direct_compute(item, ctx, density)
    if ctx.use_wino and item.winograd_eligible:
        wino = _winograd_compute(item, ctx, density)
        if wino.cycles < direct.cycles:
            return wino
    return direct


def _tile_budget(ctx: _Context, live_bytes: int) -> Budget:
    """Tile buffers: a shared SRAM minus the resident feature maps, or the separate buffers
    (feature-map halves given to residency when reuse is on), halved for double buffering.
    With a shared SRAM, the PEs' weight registers (``pes x pe_weight_rf_bytes``, one pad per
    PE, not halved) hold weight tiles too."""
    accel, db = ctx.accel, ctx.db
    if accel.shared_sram_bytes:
        rf = accel.pes * accel.pe_weight_rf_bytes  # weight tiles in the PE registers
        return Budget(0, rf, 0, shared=max(0, accel.shared_sram_bytes - live_bytes) // db)
    shrink = FMAP_FRACTION if ctx.opts.fmap_reuse else 1.0
    return Budget(
        int(accel.ifmap_sram_bytes * shrink) // db,
        accel.filter_sram_bytes // db,
        int(accel.ofmap_sram_bytes * shrink) // db,
    )


def _search(item: ArrayWork, ctx: _Context, comp: _Compute, place: _Placement) -> Choice:
    """The searched tiling of the layer under its budget and objective."""
    accel = ctx.accel
    e = accel.energy
    sram_size = accel.shared_sram_bytes or accel.filter_sram_bytes
    return search_tiles(
        item.shape,
        Operands(ctx.wb, ctx.pb, comp.weight_scale, place.in_res, place.out_res),
        _tile_budget(ctx, place.live_bytes),
        comp.cycles,
        accel.stall_bw_bytes_per_cycle,
        accel.double_buffering,
        ctx.opts.objective,
        e.dram_pj_per_byte,
        e.sram_pj_per_byte(sram_size),
        layer=item.name,
    )


def _weight_density(item: ArrayWork, opts: SimOptions) -> float:
    """1 - weight sparsity (the option, else the layer's own attribute)."""
    return 1.0 - (opts.sparsity if opts.sparsity is not None else item.sparsity)


def _fmap_bytes(elems: int, ctx: _Context, compressible: bool) -> int:
    """Feature-map DRAM bytes: RLC-compressed when the accelerator has it, else raw."""
    accel = ctx.accel
    if accel.fmap_rlc and compressible:
        return rlc_bytes(elems, accel.fmap_zero_fraction, ctx.wb)
    return elems * ctx.wb


def _weight_bytes(elems: int, item: ArrayWork, ctx: _Context) -> int:
    """Weight DRAM bytes: Deep-Compression-sized (nonzeros x (bits + index bits)) or raw.

    Activation operands of matmuls (``weight_is_activation``) are feature maps."""
    accel = ctx.accel
    if item.weight_is_activation:
        return _fmap_bytes(elems, ctx, True)
    if accel.weight_bits:
        density = _weight_density(item, ctx.opts)
        return compressed_weight_bytes(elems, density, accel.weight_bits, accel.weight_index_bits)
    return elems * ctx.wb


def _dram(item: ArrayWork, ctx: _Context, choice: Choice, place: _Placement) -> _Traffic:
    """DRAM bytes of the chosen tiling; resident inputs/outputs (and their psums) cost none.

    Feature maps are RLC-compressed (``fmap_rlc``) except the network's input; weights are
    compressed with ``weight_bits``; partial sums are never compressed."""
    t = tiled_traffic(item.shape, choice.tiles, choice.order)
    pb = ctx.pb
    return _Traffic(
        rd_in=0 if place.in_res else _fmap_bytes(t.input_reads, ctx, not place.reads_graph_input),
        rd_w=0 if place.weights_cached else _weight_bytes(t.weight_reads, item, ctx),
        wr_out=0 if place.out_res else _fmap_bytes(t.output_writes, ctx, True),
        psum_r=0 if place.out_res else t.psum_reads * pb,
        psum_w=0 if place.out_res else t.psum_writes * pb,
    )


def _one_touch_bytes(item: ArrayWork, ctx: _Context, place: _Placement) -> int:
    """The one-touch DRAM floor (compressed like the traffic), without on-chip feature maps."""
    shape = item.shape
    in_elems = one_touch_elems(shape) - shape.weight_elems - shape.output_elems
    floor = 0 if place.weights_cached else _weight_bytes(shape.weight_elems, item, ctx)
    if not place.in_res:
        floor += _fmap_bytes(in_elems, ctx, not place.reads_graph_input)
    if not place.out_res:
        floor += _fmap_bytes(shape.output_elems, ctx, True)
    return floor


def _serial_fmap_cycles(tr: _Traffic, compute_cycles: int, accel: AcceleratorConfig) -> int:
    """Cycles when feature-map DRAM transfers do not overlap compute (``fmap_dram_overlap``
    False): compute + feature-map bytes (inputs, outputs, partial sums) / link bandwidth, plus
    whatever of the weight stream outlasts compute. 0 when they overlap or the link is ideal."""
    bw = accel.stall_bw_bytes_per_cycle
    if accel.fmap_dram_overlap or math.isinf(bw):
        return 0
    fmap = tr.rd_in + tr.wr_out + tr.psum_r + tr.psum_w
    weight_excess = max(0, math.ceil(tr.rd_w / bw) - compute_cycles)
    return compute_cycles + math.ceil(fmap / bw) + weight_excess


def _tiled_layer(item: ArrayWork, ctx: _Context, place: _Placement) -> LayerResult:
    """One array layer in the tiled model: compute, tiling, DRAM, SRAM words, energy."""
    accel, wb, pb = ctx.accel, ctx.wb, ctx.pb
    comp = _array_compute(item, ctx)
    mapping = comp.mapping
    choice = _search(item, ctx, comp, place)
    tr = _dram(item, ctx, choice, place)
    cycles = choice.cycles
    if choice.dram_bytes and tr.total < choice.dram_bytes and cycles > comp.cycles:
        # the search priced its stall at raw, per-inference bytes: scale it to the bytes that
        # cross (compressed, cached weights left out)
        ratio = min(1.0, tr.total / choice.dram_bytes)
        cycles = comp.cycles + math.ceil((cycles - comp.cycles) * ratio)
    cycles = max(cycles, _serial_fmap_cycles(tr, comp.cycles, accel))
    fills = (tr.rd_in + tr.rd_w) // wb + tr.psum_r // pb
    drains = tr.wr_out // wb + tr.psum_w // pb
    sram_words = {
        "ifmap": mapping.ifmap_reads + (tr.rd_in // wb),
        "filter": mapping.filter_reads + (tr.rd_w // wb),
        "ofmap": mapping.ofmap_writes + mapping.psum_reads + drains + tr.psum_r // pb,
    }
    energy = _energy(
        accel, ctx.precision, comp.effective_macs, sram_words, tr.total, comp.vector_ops
    )
    sram_reads = mapping.ifmap_reads + mapping.filter_reads + mapping.psum_reads + drains
    sram_writes = mapping.ofmap_writes + fills
    return LayerResult(
        name=item.name,
        op=item.op,
        unit="array",
        macs=item.shape.macs,
        effective_macs=comp.effective_macs,
        cycles=cycles,
        compute_cycles=comp.cycles,
        stall_cycles=cycles - comp.cycles,
        utilization=comp.effective_macs / (cycles * accel.pes),
        folds=mapping.fold_map.folds * mapping.fold_map.group_folds,
        sram_reads=sram_reads,
        sram_writes=sram_writes,
        sram_bytes=(sram_reads + sram_writes) * wb,
        dram_bytes=tr.total,
        dram_read_bytes={"input": tr.rd_in, "weight": tr.rd_w, "psum": tr.psum_r},
        dram_write_bytes={"output": tr.wr_out, "psum": tr.psum_w},
        sram_reads_by_operand={
            "ifmap": mapping.ifmap_reads,
            "filter": mapping.filter_reads,
            "psum": mapping.psum_reads,
            "drain": drains,
        },
        sram_writes_by_operand={
            "ifmap": tr.rd_in // wb,
            "filter": tr.rd_w // wb,
            "ofmap": mapping.ofmap_writes + tr.psum_r // pb,
        },
        energy_j=sum(energy.values()),
        energy_breakdown=energy,
        vector_ops=comp.vector_ops,
        winograd=comp.winograd,
        tiling={
            "tm": choice.tiles.tm,
            "tn": choice.tiles.tn,
            "tr": choice.tiles.tr,
            "tc": choice.tiles.tc,
            "order": choice.order.value,
        },
        fused=list(item.fused),
        input_on_chip=place.in_res,
        output_on_chip=place.out_res,
        one_touch_bytes=_one_touch_bytes(item, ctx, place),
    )


def _scalesim_layer(
    item: ArrayWork, accel: AcceleratorConfig, precision: str, wb: int
) -> LayerResult:
    shape = item.shape
    rows, cols = accel.rows, accel.cols
    c = scalesim_counts(shape, rows, cols, accel.dataflow)
    if accel.shared_sram_bytes:
        ifb = fb = accel.shared_sram_bytes // 3
    else:
        ifb, fb = accel.ifmap_sram_bytes, accel.filter_sram_bytes
    d_in, d_w, d_out = fixed_schedule_dram(shape, rows, cols, accel.dataflow, ifb // wb, fb // wb)
    dram = (d_in + d_w + d_out) * wb
    stall = _stall(c.compute_cycles, dram, accel.stall_bw_bytes_per_cycle, accel.double_buffering)
    cycles = c.compute_cycles + stall
    sram_words = {
        "ifmap": c.ifmap_sram_reads + d_in,
        "filter": c.filter_sram_reads + d_w,
        "ofmap": c.ofmap_sram_writes + d_out,
    }
    energy = _energy(accel, precision, shape.macs, sram_words, dram, 0)
    reads = c.ifmap_sram_reads + c.filter_sram_reads
    return LayerResult(
        name=item.name,
        op=item.op,
        unit="array",
        macs=shape.macs,
        effective_macs=shape.macs,
        cycles=cycles,
        compute_cycles=c.compute_cycles,
        stall_cycles=stall,
        utilization=shape.macs / (cycles * accel.pes),
        folds=c.folds,
        sram_reads=reads,
        sram_writes=c.ofmap_sram_writes,
        sram_bytes=(reads + c.ofmap_sram_writes) * wb,
        dram_bytes=dram,
        dram_read_bytes={"input": d_in * wb, "weight": d_w * wb, "psum": 0},
        dram_write_bytes={"output": d_out * wb, "psum": 0},
        sram_reads_by_operand={
            "ifmap": c.ifmap_sram_reads,
            "filter": c.filter_sram_reads,
            "psum": 0,
            "drain": 0,
        },
        sram_writes_by_operand={"ifmap": 0, "filter": 0, "ofmap": c.ofmap_sram_writes},
        energy_j=sum(energy.values()),
        energy_breakdown=energy,
        fused=list(item.fused),
        tiling={"mapping_efficiency": c.mapping_efficiency},
    )
