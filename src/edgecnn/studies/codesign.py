"""The co-design loop: search the network and the accelerator together (``edgecnn codesign``).

1. **Supernet** (:mod:`edgecnn.models.supernet`): trained once on the training split (sandwich
   rule), saved as ``supernet.pt`` (a state dict, loaded with ``weights_only=True``) and reused
   by every search of the run and by a resumed run.
2. **Evaluating a design** (:func:`evaluate_design`): the subnet is extracted from the supernet
   with its blocks' pruning ratios applied to the hidden channels (the elastic form,
   :func:`edgecnn.models.supernet.drop_hidden`, which the supernet trains), its BatchNorm statistics re-estimated on
   ``bn_images`` training images, BN folded, weights quantized per layer; accuracy is measured on
   the test split. The accelerator point is simulated (:func:`edgecnn.hardware.simulate`, tiled
   cycle model) once per precision the design uses, each layer taking the result of its own
   precision; latency (s), energy (J), area (mm^2, :func:`edgecnn.hardware.explore.area_mm2`)
   and model size (bytes) follow. Accuracy is cached per network (the accelerator changes it
   only through the precisions it supports).
3. **Search**: NSGA-II from pymoo (a maintained, documented multi-objective library with integer
   genes and an ask/tell interface, so evaluation stays ours: a local process pool or Ray),
   minimising (1 - accuracy, latency, energy, area); a latency or energy budget is a constraint.
   Variation is block-aware (:mod:`edgecnn.studies.codesign_operators`, ``search.operators:
   block``): a child may take one parent's network and the other's accelerator; every search of
   a run uses the same operators (with one free block they are uniform crossover and
   random-reset mutation). On the example space the joint front's hypervolume beat both
   baselines at seeds 0 and 1 with them, while with SBX/polynomial mutation it lost at seed 0.
   Every evaluation is appended to ``evaluations.jsonl`` keyed by the genome and the run's
   context (space digest + supernet checksum), so a resumed run replays the same seeded search
   and skips what is done.
4. **Baselines**, with the same number of evaluations as the joint search: *network first*
   (search the network on a fixed reference accelerator, pick the best, then search the
   accelerator for it) and *hardware first* (search the accelerator for the reference network,
   then the network for that accelerator). Fronts are compared by hypervolume in objectives
   normalised over every evaluated design (reference point 1.1 in each).
5. **Verification**: the chosen designs are retrained from scratch (same architecture, fresh
   weights, ``verify.epochs`` epochs), compressed the same way, and their accuracy is reported
   beside the supernet's estimate.

"Best" design: the most accurate one within the budget; without a budget, the knee of the front
(least sum of the normalised objectives).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgecnn.errors import ConfigError, EdgecnnError
from edgecnn.models import supernet as sn
from edgecnn.schema import ResultKind
from edgecnn.studies.codesign_space import (
    BITS,
    CodesignSpace,
    Design,
    decode,
    largest_genome,
)

OBJECTIVES = ("error", "latency_ms", "energy_mj", "area_mm2")
"""The minimised objectives, in this order (error = 1 - accuracy)."""
PENALTY = 1e9


# ---------------------------------------------------------------------------------------------
# evaluation of one design


def _slot_of(name: str) -> int | None:
    """The conv-layer slot (:func:`edgecnn.models.supernet.layer_slot`) of a layer named
    ``stages.<stage>.<block>.<expand|dw|project>``; None for the stem, the classifier and glue
    (residual adds)."""
    parts = name.split(".")
    if (
        len(parts) > 3
        and parts[0] == "stages"
        and parts[1].isdigit()
        and parts[2].isdigit()
        and parts[3] in sn.BLOCK_CONVS
    ):
        return sn.layer_slot(int(parts[1]), int(parts[2]), parts[3])
    return None


def quantize_weights(model: nn.Module, bits: Sequence[str]) -> int:
    """Quantize every conv/linear weight of ``model`` in place by its own bits (``bits`` per
    conv-layer slot; stem and
    classifier int8): int8/int4 symmetric per output channel, fp16 a round trip through half.
    Returns the weight bytes at those precisions."""
    from edgecnn.compress.fakequant import fake_quant_weight

    total = 0.0
    with torch.no_grad():
        for name, m in model.named_modules():
            if not isinstance(m, (nn.Conv2d, nn.Linear)):
                continue
            s = _slot_of(name)
            b = bits[s] if s is not None else "int8"
            if b == "fp16":
                m.weight.copy_(m.weight.half().float())
            else:
                m.weight.copy_(fake_quant_weight(m.weight, BITS[b], per_channel=True))
            total += m.weight.numel() * BITS[b] / 8
    return int(math.ceil(total))


def compressed_accuracy(
    net: nn.Module,
    resolution: int,
    bits: Sequence[str],
    x_bn: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
) -> tuple[float, int]:
    """BN re-estimation, BN folding, weight quantization, then top-1 accuracy on the test split.

    Returns ``(accuracy 0-1, weight bytes)``; ``net`` is left untouched (folding copies it).
    """
    from edgecnn.compress.adabn import reestimate_batchnorm
    from edgecnn.compress.fold import fold_batchnorm
    from edgecnn.models.edge import evaluate

    reestimate_batchnorm(net, sn.resize(x_bn, resolution))
    folded, _ = fold_batchnorm(net)
    size = quantize_weights(folded, bits)
    with torch.no_grad():
        acc = evaluate(folded, sn.resize(x_test, resolution), y_test)
    return acc, size


def design_network(
    supernet: sn.ElasticSuperNet, design: Design
) -> tuple[sn.SubnetConfig, nn.Module]:
    """The design's (pruned) subnet config and its module with the supernet's weights."""
    cfg = sn.drop_hidden(design.subnet, design.prune)
    return cfg, sn.extract_subnet(supernet, cfg)


def _simulate_at(workload: Any, accel: Any, bits: str, objective: str) -> Any:
    """``simulate`` with a layer's weight bits: fp16 and int8 run at that datapath precision;
    int4 weights run on the int8 datapath (unpacked to int8 at the array, so cycles follow
    int8) but are stored packed two per byte in DRAM (``weight_bits = 4``, no index bits), so
    their DRAM traffic, DRAM energy and any bandwidth stall halve."""
    from edgecnn.hardware.simulate import SimOptions, simulate

    if bits == "int4":
        accel = accel.replace(weight_bits=4, weight_index_bits=0)
        bits = "int8"
    return simulate(workload, accel, SimOptions(precision=bits, objective=objective))


def hardware_metrics(net: nn.Module, design: Design, base: Any, objective: str) -> dict[str, float]:
    """Latency (ms), energy (mJ), area (mm^2), cycles and MACs of ``net`` on the design's
    accelerator, each layer at its own effective precision (stem, head and glue at int8)."""
    from edgecnn.hardware.explore import area_mm2, point_accelerator
    from edgecnn.hardware.workload import build_workload
    from edgecnn.models.resolve import load_graph

    r = design.subnet.resolution
    graph = load_graph(net, (1, net.config.in_channels, r, r))
    workload = build_workload(graph)
    accel, _ = point_accelerator(base, {**design.accel_point, "precision": "int8"})
    accel = accel.replace(precisions=tuple(design.accel_precisions), precision="int8")
    eff = design.effective_bits()
    used = sorted({eff[j] for j in design.active_layer_slots()} | {"int8"})
    runs = {p: _simulate_at(workload, accel, p, objective) for p in used}
    cycles = 0
    energy = 0.0
    macs = 0
    base_layers = runs["int8"].layers
    for j, layer in enumerate(base_layers):
        s = _slot_of(layer.name)
        p = eff[s] if s is not None else "int8"
        chosen = runs[p].layers[j]
        cycles += chosen.cycles
        energy += chosen.energy_j
        macs += chosen.macs
    widest = "fp16" if "fp16" in design.accel_precisions else "int8"
    return {
        "latency_ms": cycles / accel.clock_hz * 1e3,
        "energy_mj": energy * 1e3,
        "area_mm2": area_mm2(accel, widest),
        "cycles": int(cycles),
        "macs": int(macs),
        "pes": int(accel.pes),
    }


@dataclass
class EvalContext:
    """What a worker needs to evaluate designs (built once per process)."""

    space: CodesignSpace
    supernet: sn.ElasticSuperNet
    x_bn: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    base: Any
    accuracy_cache: dict[str, tuple[float, int]] = field(default_factory=dict)


def evaluate_design(ctx: EvalContext, genome: Sequence[int]) -> dict[str, Any]:
    """One design's row: genome, design, accuracy, objectives (or ``error`` for a bad point)."""
    design = decode(ctx.space, genome)
    row: dict[str, Any] = {"genome": list(design.genome), "design": design.describe()}
    cfg, net = design_network(ctx.supernet, design)
    key = design.network_key()
    if key not in ctx.accuracy_cache:
        ctx.accuracy_cache[key] = compressed_accuracy(
            net, cfg.resolution, design.effective_bits(), ctx.x_bn, ctx.x_test, ctx.y_test
        )
    acc, size = ctx.accuracy_cache[key]
    row.update(accuracy=acc, error=1.0 - acc, model_bytes=size)
    try:
        row.update(hardware_metrics(net, design, ctx.base, ctx.space.objective))
    except EdgecnnError as e:
        row["failure"] = str(e)
    return row


# ---------------------------------------------------------------------------------------------
# the evaluation pool (local processes or Ray) and the resumable results file

_WORKER: EvalContext | None = None


def _init_worker(space_dict: dict, supernet_path: str, data: str, threads: int) -> None:
    import signal

    global _WORKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles interrupts
    torch.set_num_threads(threads)
    _WORKER = make_context(CodesignSpace(**space_dict), Path(supernet_path), data)


def _worker_eval(genome: list[int]) -> dict[str, Any]:
    assert _WORKER is not None
    return evaluate_design(_WORKER, genome)


def make_context(space: CodesignSpace, supernet_path: Path, data: str) -> EvalContext:
    from edgecnn.data.loaders import load_data
    from edgecnn.hardware.config import load_accelerator

    splits = load_data(data)
    net = load_supernet(supernet_path, splits.input_shape[0])
    return EvalContext(
        space=space,
        supernet=net,
        x_bn=splits.x_train[: space.bn_images],
        x_test=splits.x_test,
        y_test=splits.y_test,
        base=load_accelerator(space.base),
    )


class Evaluations:
    """Evaluated designs of one run: an in-memory table mirrored to a JSON-lines file.

    A row's id hashes its genome with the run's context; rows are appended with one ``write``
    and flushed, a torn last line is ignored (and recomputed) on resume.
    """

    def __init__(self, path: Path, context: str) -> None:
        self.path = path
        self.context = context
        self.rows: dict[str, dict[str, Any]] = {}
        self.resumed = 0
        if path.is_file():
            for line in path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if isinstance(row, dict) and row.get("context") == context and "id" in row:
                    self.rows[row["id"]] = row
            self.resumed = len(self.rows)

    def genome_id(self, genome: Sequence[int]) -> str:
        text = self.context + json.dumps([int(g) for g in genome])
        return hashlib.sha1(text.encode()).hexdigest()[:16]

    def add(self, row: dict[str, Any]) -> dict[str, Any]:
        row = {**row, "id": self.genome_id(row["genome"]), "context": self.context}
        self.rows[row["id"]] = row
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row, allow_nan=False) + "\n")
            f.flush()
        return row


class Runner:
    """Evaluates genomes (cached) in-process, in a local process pool, or on Ray."""

    def __init__(
        self,
        space: CodesignSpace,
        supernet_path: Path,
        data: str,
        evaluations: Evaluations,
        workers: int = 1,
        ray_address: str | None = None,
    ) -> None:
        self.space = space
        self.evaluations = evaluations
        self.workers = max(1, workers)
        self.computed = 0
        args = (space.to_dict(), str(supernet_path), data, 1)
        self._local: EvalContext | None = None
        self._pool = None
        if ray_address is not None:
            try:
                import ray
                from ray.util.multiprocessing import Pool as RayPool
            except ImportError:
                raise ConfigError(
                    "--ray needs Ray: pip install 'ray>=2.9' (or run without --ray)"
                ) from None
            if not ray.is_initialized():
                ray.init(
                    address=None if ray_address == "local" else ray_address,
                    include_dashboard=False,
                    log_to_driver=False,
                    num_cpus=self.workers if ray_address == "local" else None,
                )
            self._pool = RayPool(processes=self.workers, initializer=_init_worker, initargs=args)
        elif self.workers > 1:
            import multiprocessing as mp

            self._pool = mp.get_context("spawn").Pool(
                self.workers, initializer=_init_worker, initargs=args
            )
        else:
            self._local = make_context(space, supernet_path, data)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool = None

    def evaluate(
        self, genomes: Sequence[Sequence[int]], on_done: Callable[[int], None] | None = None
    ) -> list[dict[str, Any]]:
        ev = self.evaluations
        ids = [ev.genome_id(g) for g in genomes]
        todo: dict[str, list[int]] = {}
        for i, g in zip(ids, genomes, strict=True):
            if i not in ev.rows and i not in todo:
                todo[i] = [int(v) for v in g]
        items = list(todo.values())
        if items:
            if self._pool is not None:
                results = self._pool.imap(_worker_eval, items)
            else:
                assert self._local is not None
                results = (evaluate_design(self._local, g) for g in items)
            for row in results:
                ev.add(row)
                self.computed += 1
                if on_done is not None:
                    on_done(1)
        return [ev.rows[i] for i in ids]


# ---------------------------------------------------------------------------------------------
# fronts, selection, hypervolume


def objectives(row: dict[str, Any]) -> list[float]:
    if "failure" in row:
        return [PENALTY] * len(OBJECTIVES)
    return [float(row[k]) for k in OBJECTIVES]


def feasible(row: dict[str, Any], budget: dict[str, float]) -> bool:
    if "failure" in row:
        return False
    return all(row[k] <= v for k, v in budget.items())


def pareto(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows no other row dominates (all objectives <=, one <), duplicates of a genome once."""
    uniq = list({r["id"]: r for r in rows}.values())
    pts = [objectives(r) for r in uniq]
    out = []
    for i, p in enumerate(pts):
        dom = any(
            all(a <= b for a, b in zip(q, p, strict=True))
            and any(a < b for a, b in zip(q, p, strict=True))
            for j, q in enumerate(pts)
            if j != i
        )
        if not dom:
            out.append(uniq[i])
    return sorted(out, key=lambda r: (r["latency_ms"], r["error"]))


class Normaliser:
    """Min-max normalisation of the objectives over a set of rows (the union of all runs)."""

    def __init__(self, rows: Sequence[dict[str, Any]]) -> None:
        pts = np.array([objectives(r) for r in rows], dtype=float)
        self.lo = pts.min(0)
        self.hi = pts.max(0)

    def __call__(self, row: dict[str, Any]) -> np.ndarray:
        span = np.where(self.hi > self.lo, self.hi - self.lo, 1.0)
        return (np.array(objectives(row)) - self.lo) / span


def hypervolume(front: Sequence[dict[str, Any]], norm: Normaliser, ref: float = 1.1) -> float:
    """Hypervolume of ``front`` in normalised objectives, reference point ``ref`` in each."""
    from pymoo.indicators.hv import HV

    if not front:
        return 0.0
    pts = np.array([norm(r) for r in front])
    return float(HV(ref_point=np.full(len(OBJECTIVES), ref))(pts))


def coverage(a: Sequence[dict[str, Any]], b: Sequence[dict[str, Any]]) -> float:
    """Share of ``b``'s points weakly dominated by some point of ``a`` (1.0: ``a`` covers ``b``)."""
    if not b:
        return 1.0
    pa = [objectives(r) for r in a]
    hit = sum(
        any(all(x <= y for x, y in zip(p, objectives(r), strict=True)) for p in pa) for r in b
    )
    return hit / len(b)


def select_best(rows: Sequence[dict[str, Any]], budget: dict[str, float]) -> dict[str, Any] | None:
    """Most accurate feasible row within the budget; without one, the front's knee."""
    ok = [r for r in rows if feasible(r, budget)]
    if not ok:
        return None
    if budget:
        return min(ok, key=lambda r: (r["error"], r["latency_ms"], r["energy_mj"]))
    front = pareto(ok)
    norm = Normaliser(front)
    return min(front, key=lambda r: float(norm(r).sum()))


# ---------------------------------------------------------------------------------------------
# NSGA-II


def nsga2(
    runner: Runner,
    space: CodesignSpace,
    budget: dict[str, float],
    generations: int,
    fixed: dict[int, int] | None = None,
    seed: int = 0,
    on_done: Callable[[int], None] | None = None,
    start: Sequence[int] | None = None,
    operators: str = "block",
) -> list[dict[str, Any]]:
    """NSGA-II over the genes not in ``fixed`` (gene index -> value); returns every row it
    evaluated (population x generations, duplicates removed by pymoo). ``start`` (a full
    genome) replaces one random member of the first population (every search of a run starts
    from the same reference design, so the baselines and the joint search share it).
    ``operators``: ``block`` (:mod:`edgecnn.studies.codesign_operators`: whole network or
    accelerator blocks exchanged and mutated) or ``sbx`` (SBX crossover and polynomial
    mutation, gene by gene)."""
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.core.evaluator import Evaluator
    from pymoo.core.problem import Problem
    from pymoo.core.termination import NoTermination
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.problems.static import StaticProblem

    fixed = fixed or {}
    sizes = space.gene_sizes
    free = [i for i in range(len(sizes)) if i not in fixed]
    if not free:
        raise ConfigError("nothing to search: every gene is fixed")
    xu = np.array([sizes[i] - 1 for i in free], dtype=float)
    n_constr = len(budget)
    problem = Problem(
        n_var=len(free), n_obj=len(OBJECTIVES), n_ieq_constr=n_constr, xl=0.0, xu=xu, vtype=int
    )
    rng = np.random.default_rng(seed)
    x0 = np.stack([rng.integers(0, int(u) + 1, space.population) for u in xu], axis=1)
    if start is not None:
        x0[0] = [start[i] for i in free]
    if operators == "block":
        from edgecnn.studies.codesign_operators import BlockCrossover, BlockMutation

        n_net = space.n_network_genes
        blocks = [
            [j for j, i in enumerate(free) if i < n_net],
            [j for j, i in enumerate(free) if i >= n_net],
        ]
        crossover: Any = BlockCrossover(blocks)
        mutation: Any = BlockMutation(blocks)
    elif operators == "sbx":
        crossover = SBX(prob=0.9, eta=15, vtype=float, repair=RoundingRepair())
        mutation = PM(eta=20, vtype=float, repair=RoundingRepair())
    else:
        raise ConfigError(f"search.operators '{operators}': choose block or sbx")
    algo = NSGA2(
        pop_size=space.population,
        sampling=x0.astype(float),
        crossover=crossover,
        mutation=mutation,
        eliminate_duplicates=True,
    )
    algo.setup(problem, termination=NoTermination(), seed=seed, verbose=False)
    seen: list[dict[str, Any]] = []

    def full(x: np.ndarray) -> list[int]:
        g = [0] * len(sizes)
        for i, v in fixed.items():
            g[i] = int(v)
        for i, v in zip(free, x, strict=True):
            g[i] = int(min(max(round(float(v)), 0), sizes[i] - 1))
        return g

    for _ in range(generations):
        pop = algo.ask()
        genomes = [full(x) for x in pop.get("X")]
        rows = runner.evaluate(genomes, on_done)
        seen += rows
        F = np.array([objectives(r) for r in rows])
        kw: dict[str, Any] = {"F": F}
        if n_constr:
            kw["G"] = np.array(
                [
                    [
                        (r.get(k, PENALTY) - v) if "failure" not in r else PENALTY
                        for k, v in budget.items()
                    ]
                    for r in rows
                ]
            )
        Evaluator().eval(StaticProblem(problem, **kw), pop)
        algo.tell(infills=pop)
    return seen


# ---------------------------------------------------------------------------------------------
# the supernet file


def supernet_settings(space: CodesignSpace, data: str) -> dict[str, Any]:
    return {
        "data": data,
        "epochs": space.supernet_epochs,
        "random_subnets": space.random_subnets,
        "lr": space.supernet_lr,
        "label_weight": space.supernet_label_weight,
        "quant_aware": space.supernet_quant_aware,
        "seed": space.seed,
        "train_images": space.train_images,
        "choices": asdict(network_choices(space)),
        "distillation": "in-place",
        "arch": [
            sn.STAGES,
            sn.MAX_DEPTH,
            list(sn.MAX_CHANNELS),
            list(sn.EXPANDS),
            list(sn.KERNELS),
        ],
    }


def network_choices(space: CodesignSpace) -> sn.ElasticChoices:
    """The supernet subnets the space can pick (what the supernet is trained on)."""
    n = space.network
    return sn.ElasticChoices(
        depths=tuple(n["depth"]),
        widths=tuple(float(w) for w in n["width"]),
        kernels=tuple(n["kernel"]),
        expands=tuple(n["expand"]),
        resolutions=tuple(n["resolution"]),
        prunes=tuple(float(p) for p in n["prune"]),
        bits=tuple(BITS[b] for b in n["bits"]),
    )


def _supernet_quantizer(space: CodesignSpace) -> sn.WeightQuantizer | None:
    """Per-output-channel symmetric fake quantization, as :func:`quantize_weights` applies it
    (per-channel scaling commutes with BN folding, so training on unfolded weights matches)."""
    if not space.supernet_quant_aware:
        return None
    from edgecnn.compress.fakequant import fake_quant_weight

    return lambda w, bits: fake_quant_weight(w, bits, per_channel=True)


def load_supernet(path: Path, in_channels: int) -> sn.ElasticSuperNet:
    net = sn.ElasticSuperNet(in_channels=in_channels)
    state = torch.load(path, map_location="cpu", weights_only=True)
    net.load_state_dict(state["model"])
    return net.eval()


def prepare_supernet(
    space: CodesignSpace, data: str, out_dir: Path, on_epoch: Callable[[int], None] | None = None
) -> tuple[Path, dict[str, Any], bool]:
    """Train the supernet (or reuse ``out_dir/supernet.pt`` trained with the same settings).

    Returns ``(path, training info, reused)``."""
    from edgecnn.data.loaders import load_data
    from edgecnn.io import atomic_write_bytes

    path = out_dir / "supernet.pt"
    settings = supernet_settings(space, data)
    if path.is_file():
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(state, dict) and state.get("settings") == json.dumps(
                settings, sort_keys=True
            ):
                return path, json.loads(state["training"]), True
        except Exception:  # a torn or foreign file: train again
            pass
    splits = load_data(data)
    torch.manual_seed(space.seed)
    net = sn.ElasticSuperNet(in_channels=splits.input_shape[0])
    n = space.train_images or len(splits.y_train)
    info = sn.train_supernet(
        net,
        splits.x_train[:n],
        splits.y_train[:n],
        epochs=space.supernet_epochs,
        lr=space.supernet_lr,
        random_subnets=space.random_subnets,
        seed=space.seed,
        on_epoch=on_epoch,
        choices=network_choices(space),
        label_weight=space.supernet_label_weight,
        quantizer=_supernet_quantizer(space),
    ).to_dict()
    import io

    buf = io.BytesIO()
    torch.save(
        {
            "model": net.state_dict(),
            "settings": json.dumps(settings, sort_keys=True),
            "training": json.dumps(info),
        },
        buf,
    )
    atomic_write_bytes(path, buf.getvalue())
    return path, info, False


def _file_digest(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# the study


@dataclass
class Verification:
    """A chosen design retrained from scratch beside its supernet estimate (accuracy 0-1)."""

    label: str
    design: dict[str, Any]
    supernet_accuracy: float
    retrained_accuracy: float
    difference_points: float  # (retrained - supernet) x 100
    epochs: int
    seconds: float


@dataclass
class CodesignResult:
    """``edgecnn codesign``: fronts, hypervolumes, chosen designs and their verification."""

    data: str
    space: dict[str, Any]
    budget: dict[str, float]
    objectives: list[str]
    supernet: dict[str, Any]
    supernet_reused: bool
    evaluations: int
    evaluations_resumed: int
    joint_front: list[dict[str, Any]]
    baseline_fronts: dict[str, list[dict[str, Any]]]
    hypervolume: dict[str, float]
    coverage_of_baselines: dict[str, float]
    joint_dominates: bool
    chosen: dict[str, dict[str, Any] | None]
    verification: list[Verification]
    seconds: dict[str, float]
    workers: int
    ray: bool
    all_points: list[dict[str, Any]] = field(default_factory=list)
    kind: str = ResultKind.CODESIGN.value

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ("context",)}


def search_runs(
    runner: Runner,
    space: CodesignSpace,
    budget: dict[str, float],
    seed: int | None = None,
    on_done: Callable[[int], None] | None = None,
    operators: str | None = None,
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, float]]:
    """The joint NSGA-II search and the two sequential baselines, each with ``population x
    generations`` evaluations (each baseline stage gets half the generations), all starting
    from the reference design. Returns ``({"joint"|"network_first"|"hardware_first": rows},
    {"joint"|"baselines": seconds})``."""
    seed = space.seed if seed is None else seed
    ops = operators or space.operators
    G = space.generations
    half = max(1, math.ceil(G / 2))
    ref = largest_genome(space)
    t0 = time.perf_counter()
    joint = nsga2(runner, space, budget, G, seed=seed, on_done=on_done, start=ref, operators=ops)
    t_joint = time.perf_counter() - t0
    t0 = time.perf_counter()
    n_net = space.n_network_genes
    net_idx = range(n_net)
    acc_idx = range(n_net, len(space.gene_sizes))

    def sequential(first_fixed: range, then_fixed: range, seed: int, fallback: int):
        """Search the genes outside ``first_fixed`` (held at the reference), pick the best,
        then search the genes outside ``then_fixed`` (held at the best's values)."""
        fixed = {i: ref[i] for i in first_fixed}
        a = nsga2(runner, space, budget, half, fixed, seed, on_done, ref, ops)
        best = select_best(a, budget) or min(a, key=lambda r: objectives(r)[fallback])
        fixed = {i: best["genome"][i] for i in then_fixed}
        return a + nsga2(runner, space, budget, half, fixed, seed + 1, on_done, best["genome"], ops)

    # network first: network on the reference accelerator, then the accelerator for the best
    net_first = sequential(acc_idx, net_idx, seed + 1, 0)
    # hardware first: accelerator for the reference network, then the network for the best
    hw_first = sequential(net_idx, acc_idx, seed + 3, 1)
    runs = {"joint": joint, "network_first": net_first, "hardware_first": hw_first}
    return runs, {"joint": t_joint, "baselines": time.perf_counter() - t0}


def run_codesign(
    space: CodesignSpace,
    out_dir: Path,
    data: str = "mnist",
    budget_latency_ms: float | None = None,
    budget_energy_mj: float | None = None,
    workers: int | None = None,
    ray_address: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> CodesignResult:
    """Run the whole loop in ``out_dir`` (supernet, joint search, two baselines, verification).

    ``progress(stage, done, total)`` is called as work finishes. Files written in ``out_dir``:
    ``supernet.pt`` and ``evaluations.jsonl`` (both reused by a resumed run).
    """
    t_start = time.perf_counter()
    budget: dict[str, float] = {}
    if budget_latency_ms is not None:
        if budget_latency_ms <= 0:
            raise ConfigError("--budget-latency-ms must be positive")
        budget["latency_ms"] = float(budget_latency_ms)
    if budget_energy_mj is not None:
        if budget_energy_mj <= 0:
            raise ConfigError("--budget-energy-mj must be positive")
        budget["energy_mj"] = float(budget_energy_mj)
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    out_dir.mkdir(parents=True, exist_ok=True)
    report = progress or (lambda *_: None)

    epochs = space.supernet_epochs
    t0 = time.perf_counter()
    sup_path, sup_info, reused = prepare_supernet(
        space, data, out_dir, lambda e: report("supernet", e + 1, epochs)
    )
    t_supernet = time.perf_counter() - t0
    context = space.digest() + ":" + _file_digest(sup_path)
    evals = Evaluations(out_dir / "evaluations.jsonl", context)
    P, G = space.population, space.generations
    half = max(1, math.ceil(G / 2))
    total = P * (G + 4 * half)
    done = [0]

    def tick(n: int) -> None:
        done[0] += n
        report("search", min(done[0], total), total)

    runner = Runner(space, sup_path, data, evals, workers, ray_address)
    try:
        runs, t_search = search_runs(runner, space, budget, on_done=tick)
    finally:
        runner.close()
    t_joint, t_baselines = t_search["joint"], t_search["baselines"]
    fronts = {k: pareto([r for r in v if feasible(r, budget)]) for k, v in runs.items()}
    every = [r for v in runs.values() for r in v if feasible(r, budget)]
    if not every:
        raise ConfigError(
            "no evaluated design meets the budget: raise --budget-latency-ms/--budget-energy-mj "
            "or widen the space"
        )
    norm = Normaliser(every)
    hv = {k: hypervolume(f, norm) for k, f in fronts.items()}
    cov = {k: coverage(fronts["joint"], fronts[k]) for k in ("network_first", "hardware_first")}
    chosen = {k: select_best(v, budget) for k, v in runs.items()}

    # verification: retrain the chosen joint designs from scratch
    t0 = time.perf_counter()
    picks: list[tuple[str, dict[str, Any]]] = []
    if chosen["joint"] is not None:
        picks.append(("best", chosen["joint"]))
    for r in sorted(fronts["joint"], key=lambda r: r["error"]):
        if len(picks) >= space.verify_designs:
            break
        if all(r["id"] != p["id"] for _, p in picks):
            picks.append(("most accurate" if len(picks) == 1 else f"front #{len(picks)}", r))
    picks = picks[: space.verify_designs]
    verification = [
        verify_design(
            space,
            data,
            label,
            row,
            lambda e, i=i: report(
                "verify", i * space.verify_epochs + e + 1, len(picks) * space.verify_epochs
            ),
        )
        for i, (label, row) in enumerate(picks)
    ]
    t_verify = time.perf_counter() - t0
    return CodesignResult(
        data=data,
        space=space.to_dict(),
        budget=budget,
        objectives=list(OBJECTIVES),
        supernet=sup_info,
        supernet_reused=reused,
        evaluations=len(evals.rows),
        evaluations_resumed=evals.resumed,
        joint_front=[_public(r) for r in fronts["joint"]],
        baseline_fronts={
            k: [_public(r) for r in fronts[k]] for k in ("network_first", "hardware_first")
        },
        hypervolume=hv,
        coverage_of_baselines=cov,
        joint_dominates=all(hv["joint"] >= hv[k] for k in ("network_first", "hardware_first")),
        chosen={k: (_public(v) if v else None) for k, v in chosen.items()},
        verification=verification,
        seconds={
            "supernet": t_supernet,
            "joint_search": t_joint,
            "baselines": t_baselines,
            "verification": t_verify,
            "total": time.perf_counter() - t_start,
        },
        workers=workers,
        ray=ray_address is not None,
        all_points=[
            {"id": r["id"], "run": k, **{o: r[o] for o in OBJECTIVES}, "accuracy": r["accuracy"]}
            for k, v in runs.items()
            for r in {x["id"]: x for x in v if "failure" not in x}.values()
        ],
    )


def verify_design(
    space: CodesignSpace,
    data: str,
    label: str,
    row: dict[str, Any],
    on_epoch: Callable[[int], None] | None = None,
) -> Verification:
    """Retrain ``row``'s network from scratch and compress it like the search did."""
    from edgecnn.data.loaders import load_data
    from edgecnn.models.edge import train_model

    splits = load_data(data)
    design = decode(space, row["genome"])
    cfg = sn.drop_hidden(design.subnet, design.prune)  # fresh weights, the same widths
    torch.manual_seed(space.seed)
    net = sn.SubNet(cfg)
    t0 = time.perf_counter()
    r = cfg.resolution
    n = space.train_images or len(splits.y_train)
    train_model(
        net,
        sn.resize(splits.x_train[:n], r),
        splits.y_train[:n],
        epochs=space.verify_epochs,
        lr=5e-3,
        seed=space.seed,
        threads=None,
        progress=(lambda e, _n: on_epoch(e)) if on_epoch else None,
    )
    acc, _ = compressed_accuracy(
        net,
        r,
        design.effective_bits(),
        splits.x_train[: space.bn_images],
        splits.x_test,
        splits.y_test,
    )
    return Verification(
        label=label,
        design=design.describe(),
        supernet_accuracy=float(row["accuracy"]),
        retrained_accuracy=float(acc),
        difference_points=(acc - float(row["accuracy"])) * 100,
        epochs=space.verify_epochs,
        seconds=time.perf_counter() - t0,
    )
