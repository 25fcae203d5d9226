"""Design-space exploration: sweep accelerator parameters, keep the Pareto front.

A *space* (YAML) names a base accelerator and the values to sweep::

    base: seed-chip            # preset or file (default seed-chip)
    objective: latency         # tiling-search objective per layer
    sweep:
      array: [16x16, 32x32]    # rows x cols (or a flat MAC count: 128)
      sram_kb: [512, 4096]     # one shared buffer, KB
      dataflow: [os, ws]
      precision: [int8, fp16]
      winograd: [none, F4]

Every combination is a *point*; its id hashes its parameters together with the sweep's context
(:func:`sweep_context`: the workload, i.e. the model at its input shape, the base accelerator's
full configuration, the objective, the cycle model and the simulation options), so a results
file never resumes another model's or another base's points. Results are appended to a
JSON-lines file as points finish (one line per point, written with a single ``write`` and
flushed), so an interrupted sweep resumes by skipping the ids already in the file (a torn last
line is ignored and recomputed). Points run in a local process pool (default) or as Ray tasks
(``ray_address``; ``"local"`` starts a local Ray). A worker that dies is replaced and its
unfinished points resubmitted (process pool: the pool is rebuilt; Ray: ``max_retries``), so no
point is lost or written twice.

Area model (mm^2, 45 nm, from Horowitz ISSCC 2014's adder/multiplier areas doubled for
registers and control): a PE is 0.001 (int8), 0.006 (fp16) or 0.024 (fp32); SRAM costs
0.0043 mm^2 per KB (6T cell ~0.35 um^2 plus ~50 % periphery); a Winograd unit adds 5 % of
the PE array.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecnn.errors import ConfigError, EdgecnnError
from edgecnn.hardware.config import AcceleratorConfig, load_accelerator
from edgecnn.hardware.search import Objective
from edgecnn.hardware.simulate import SimOptions, simulate
from edgecnn.hardware.workload import Workload
from edgecnn.schema import ResultKind

PE_AREA_MM2 = {"int8": 0.001, "fp16": 0.006, "fp32": 0.024}
SRAM_MM2_PER_KB = 0.0043
WINOGRAD_AREA_FRACTION = 0.05
SWEEP_KEYS = ("array", "sram_kb", "dataflow", "precision", "winograd", "bandwidth")
SPACE_KEYS = ("base", "objective", "sweep")
MAX_ATTEMPTS = 3


def area_mm2(accel: AcceleratorConfig, precision: str) -> float:
    """Chip area estimate (see the module docstring)."""
    pe = accel.pes * PE_AREA_MM2[precision]
    wino = pe * WINOGRAD_AREA_FRACTION if accel.winograd.m else 0.0
    return pe + wino + accel.sram_bytes / 1024 * SRAM_MM2_PER_KB


@dataclass(frozen=True)
class Space:
    """A parsed design space: base accelerator, objective and the swept values."""

    base: AcceleratorConfig
    objective: Objective
    sweep: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    def points(self) -> list[dict[str, Any]]:
        keys = [k for k in SWEEP_KEYS if k in self.sweep]
        return [
            dict(zip(keys, combo, strict=True))
            for combo in itertools.product(*(self.sweep[k] for k in keys))
        ]


def load_space(path: str | Path) -> Space:
    """Read a space YAML (unknown keys are rejected with the valid ones)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"space file '{p}' does not exist")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: invalid YAML: {' '.join(str(e).split())}") from None
    return space_from_dict(data, str(p))


def space_from_dict(data: dict[str, Any], source: str = "space") -> Space:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping with keys {', '.join(SPACE_KEYS)}")
    bad = sorted(set(data) - set(SPACE_KEYS))
    if bad:
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(bad)}; valid keys: {', '.join(SPACE_KEYS)}"
        )
    sweep = data.get("sweep")
    if not sweep:
        raise ConfigError(
            f"{source}: no 'sweep' to explore: give sweep with lists of values for any of "
            f"{', '.join(SWEEP_KEYS)} (see edgecnn/hardware/presets/space-example.yaml)"
        )
    if not isinstance(sweep, dict):
        raise ConfigError(f"{source}: sweep must map parameter names to lists of values")
    bad = sorted(set(sweep) - set(SWEEP_KEYS))
    if bad:
        raise ConfigError(
            f"{source}: unknown sweep key(s) {', '.join(bad)}; valid: {', '.join(SWEEP_KEYS)}"
        )
    values: dict[str, tuple[Any, ...]] = {}
    for k, v in sweep.items():
        vals = tuple(v) if isinstance(v, list) else (v,)
        if not vals:
            raise ConfigError(f"{source}: sweep.{k} is empty")
        values[k] = vals
    try:
        objective = Objective(data.get("objective", "latency"))
    except ValueError:
        raise ConfigError(f"{source}: objective must be latency, energy or dram") from None
    space = Space(load_accelerator(data.get("base")), objective, values)
    for point in space.points():  # validate every point up front: fail before running anything
        point_accelerator(space.base, point)
    return space


def _array(value: Any) -> dict[str, Any]:
    if isinstance(value, int):
        return {"rows": 1, "cols": value, "flat": True}
    text = str(value).lower()
    if "x" in text:
        try:
            r, c = (int(x) for x in text.split("x"))
        except ValueError:
            raise ConfigError(
                f"array {value!r}: give ROWSxCOLS (e.g. 32x32) or a MAC count"
            ) from None
        return {"rows": r, "cols": c, "flat": False}
    raise ConfigError(f"array {value!r}: give ROWSxCOLS (e.g. 32x32) or a MAC count")


def point_accelerator(
    base: AcceleratorConfig, point: dict[str, Any]
) -> tuple[AcceleratorConfig, str]:
    """The accelerator and precision of one point."""
    changes: dict[str, Any] = {}
    if "array" in point:
        changes.update(_array(point["array"]))
    if "sram_kb" in point:
        changes["shared_sram_bytes"] = int(float(point["sram_kb"]) * 1024)
    if "dataflow" in point:
        changes["dataflow"] = point["dataflow"]
    if "winograd" in point:
        changes["winograd"] = str(point["winograd"])
    if "bandwidth" in point:
        changes["dram_bw_bytes_per_cycle"] = float(point["bandwidth"])
    precision = point.get("precision", base.precision)
    if precision not in base.precisions:
        changes["precisions"] = tuple(base.precisions) + (precision,)
    changes["name"] = f"{base.name}:{point_id(point)}"
    try:
        return base.replace(**changes), precision
    except TypeError as e:
        raise ConfigError(f"point {point}: {e}") from None


def point_id(point: dict[str, Any], context: str = "") -> str:
    """Stable id of a point: hash of its sorted parameters and the sweep ``context``."""
    text = json.dumps(point, sort_keys=True, default=str)
    return hashlib.sha1((context + text).encode()).hexdigest()[:12]


CYCLE_MODEL = "tiled"  #: the cycle model every explored point is simulated with


def sweep_context(workload: Workload, space: Space) -> str:
    """Digest of what besides a point's parameters decides its result: the workload (model,
    input shape and every layer), the base accelerator, the objective, the cycle model and the
    default simulation options."""
    from dataclasses import asdict

    text = json.dumps(
        {
            "workload": repr(workload),
            "base": asdict(space.base),
            "objective": space.objective.value,
            "model_cycles": CYCLE_MODEL,
            "options": repr(SimOptions()),
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def evaluate_point(
    workload: Workload, base: AcceleratorConfig, objective: str, point: dict[str, Any]
) -> dict[str, Any]:
    """Simulate one point; user errors become an ``error`` field (the point still finishes).

    The row has no ``id``: :func:`explore` gives it one from the point and the sweep context."""
    row: dict[str, Any] = {"params": point}
    try:
        accel, precision = point_accelerator(base, point)
        res = simulate(workload, accel, SimOptions(precision=precision, objective=objective))
    except EdgecnnError as e:
        row["error"] = str(e)
        return row
    t = res.totals
    row.update(
        latency_s=t["latency_s"],
        energy_j=t["energy_j"],
        area_mm2=area_mm2(accel, precision),
        cycles=t["cycles"],
        dram_bytes=t["dram_bytes"],
        utilization=t["utilization"],
        pes=accel.pes,
    )
    return row


Evaluator = Callable[[Workload, AcceleratorConfig, str, dict[str, Any]], dict[str, Any]]


def read_results(path: Path) -> dict[str, dict[str, Any]]:
    """Finished points of a results file by id (torn or malformed lines are skipped)."""
    done: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return done
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "id" in row:
            done.setdefault(row["id"], row)
    return done


class _Appender:
    """Appends one JSON line per finished point; repairs a torn last line first."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.exists() and path.stat().st_size:
            with path.open("rb") as f:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    with path.open("ab") as g:
                        g.write(b"\n")

    def write(self, row: dict[str, Any]) -> None:
        line = (json.dumps(row, sort_keys=True) + "\n").encode()
        with self.path.open("ab") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


@dataclass
class ExploreResult:
    """All finished points (this run and earlier ones) and the Pareto front."""

    points: list[dict[str, Any]]
    computed: int
    skipped: int
    front: list[dict[str, Any]]
    out: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": ResultKind.EXPLORE.value,
            "out": self.out,
            "points": len(self.points),
            "computed": self.computed,
            "skipped": self.skipped,
            "errors": sum(1 for p in self.points if "error" in p),
            "pareto_front": self.front,
        }


def pareto_front(
    rows: list[dict[str, Any]], keys: tuple[str, ...] = ("latency_s", "energy_j", "area_mm2")
) -> list[dict[str, Any]]:
    """Points not dominated in all of ``keys`` (lower is better), sorted by the first key."""
    ok = [r for r in rows if "error" not in r]
    front = []
    for r in ok:
        dominated = any(
            all(o[k] <= r[k] for k in keys) and any(o[k] < r[k] for k in keys)
            for o in ok
            if o is not r
        )
        if not dominated:
            front.append(r)
    return sorted(front, key=lambda r: tuple(r[k] for k in keys))


def explore(
    workload: Workload,
    space: Space,
    out: str | Path,
    ray_address: str | None = None,
    workers: int | None = None,
    evaluator: Evaluator = evaluate_point,
    progress: Callable[[int, int], None] | None = None,
) -> ExploreResult:
    """Run every point of ``space`` not yet in ``out`` and return all results with the front."""
    from edgecnn.io import check_output_path

    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers} (default: one per CPU)")
    path = check_output_path(out)
    done = read_results(path)
    ctx = sweep_context(workload, space)
    points = space.points()
    todo = [p for p in points if point_id(p, ctx) not in done]
    skipped = len(points) - len(todo)
    appender = _Appender(path)
    finished = 0

    def record(row: dict[str, Any]) -> None:
        nonlocal finished
        row = {**row, "id": point_id(row["params"], ctx), "context": ctx, "model": workload.name}
        if row["id"] in done:
            return
        done[row["id"]] = row
        appender.write(row)
        finished += 1
        if progress:
            progress(finished, len(todo))

    if todo:
        runner = _run_ray if ray_address else _run_pool
        runner(workload, space, todo, record, evaluator, workers, ray_address)
    rows = [done[i] for i in (point_id(p, ctx) for p in points) if i in done]
    return ExploreResult(rows, finished, skipped, pareto_front(rows), str(path))


def _worker_init() -> None:
    """Pool workers leave Ctrl-C to the main process, which stops them (see ``_stop_pool``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and terminate the workers now (no orphans, no waiting)."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    for proc in procs:
        proc.join(timeout=5)
        if proc.is_alive():
            proc.kill()


def _run_pool(workload, space, todo, record, evaluator, workers, _address) -> None:
    """Run the points on a local process pool. On an interrupt (Ctrl-C, or SIGTERM, which the
    CLI turns into one) the workers are terminated at once; every finished point is already a
    complete line of the results file, so the file stays consistent and a rerun resumes."""
    attempts = {point_id(p): 0 for p in todo}
    pending = list(todo)
    n = workers or min(len(todo), os.cpu_count() or 1)
    while pending:
        pool = ProcessPoolExecutor(max_workers=max(1, n), initializer=_worker_init)
        try:
            futures = {}
            for p in pending:
                attempts[point_id(p)] += 1
                futures[pool.submit(evaluator, workload, space.base, space.objective.value, p)] = p
            pending = []
            broken = False
            remaining = set(futures)
            while remaining:
                # a timeout keeps the main thread responsive to signals
                finished, remaining = wait(remaining, timeout=0.5, return_when=FIRST_COMPLETED)
                for fut in finished:
                    p = futures[fut]
                    try:
                        record(fut.result())
                    except BrokenProcessPool:
                        broken = True
                        pending.append(p)
        except BaseException:
            _stop_pool(pool)
            raise
        pool.shutdown(wait=True, cancel_futures=True)
        if broken:
            for p in pending:
                if attempts[point_id(p)] >= MAX_ATTEMPTS:
                    record(
                        {
                            "id": point_id(p),
                            "params": p,
                            "error": f"worker died {MAX_ATTEMPTS} times",
                        }
                    )
            pending = [p for p in pending if attempts[point_id(p)] < MAX_ATTEMPTS]


def _run_ray(workload, space, todo, record, evaluator, workers, address) -> None:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--ray needs Ray: pip install 'edgecnn[ray]' (or pip install ray)"
        ) from None
    started = False
    if not ray.is_initialized():
        try:
            if address in (None, "", "local"):
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=address, log_to_driver=False)
        except (ValueError, ConnectionError, RuntimeError) as e:
            raise ConfigError(f"cannot start or join Ray at {address!r}: {e}") from None
        started = True
    try:
        task = ray.remote(max_retries=MAX_ATTEMPTS, retry_exceptions=False)(evaluator)
        wl = ray.put(workload)
        refs = {task.remote(wl, space.base, space.objective.value, p): p for p in todo}
        remaining = list(refs)
        while remaining:
            ready, remaining = ray.wait(remaining, num_returns=1)
            for ref in ready:
                p = refs[ref]
                try:
                    record(ray.get(ref))
                except ray.exceptions.RayError as e:
                    record(
                        {
                            "id": point_id(p),
                            "params": p,
                            "error": f"ray task failed: {type(e).__name__}",
                        }
                    )
    finally:
        if started:
            ray.shutdown()


def plot_front(result: ExploreResult, path: str | Path) -> Path:
    """Latency vs energy of every point (colour = area), the Pareto front outlined; PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgecnn.io import atomic_path

    ok = [r for r in result.points if "error" not in r]
    fig, ax = plt.subplots(figsize=(7, 5))
    if ok:
        sc = ax.scatter(
            [r["latency_s"] * 1e3 for r in ok],
            [r["energy_j"] * 1e3 for r in ok],
            c=[r["area_mm2"] for r in ok],
            cmap="viridis",
            s=30,
        )
        fig.colorbar(sc, ax=ax, label="area (mm²)")
        ax.scatter(
            [r["latency_s"] * 1e3 for r in result.front],
            [r["energy_j"] * 1e3 for r in result.front],
            facecolors="none",
            edgecolors="red",
            s=90,
            label="Pareto front (latency, energy, area)",
        )
        ax.legend()
    ax.set_xscale("log")
    ax.set_yscale("log")
    from matplotlib.ticker import NullFormatter

    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("energy per inference (mJ)")
    ax.set_title("design-space exploration")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def iter_rows(path: Path) -> Iterator[dict[str, Any]]:
    yield from read_results(path).values()
