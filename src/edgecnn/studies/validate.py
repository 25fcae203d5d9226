"""Predictions against published hardware figures: ``edgecnn validate``.

The references live in ``references.toml`` beside this module (what is measured, the published
value, model, batch, precision, target, source). For each one we predict the figure:

* accelerator targets (a preset name): :func:`edgecnn.hardware.simulate.simulate` with the
  preset, the reference's input shape (batch first), precision and tiling objective (default
  latency); ``scope = "conv"`` sums the conv layers only (as Eyeriss's paper reports);
* CPU targets (a catalog device with a core count, e.g. ``rpi4``): the CPU latency model
  :mod:`edgecnn.analysis.cpu_latency` at the reference's ``threads`` (absent: all cores) and
  ``runtime`` (its convolution algorithms: ncnn's Winograd for 3x3 stride-1 convs); other
  catalog devices: the :func:`edgecnn.analysis.profile.profile` roofline latency.

``ratio = predicted / published``. Summary: the share of references within 0.67x-1.5x and the
geometric-mean error ``exp(mean |ln ratio|) - 1``, for all references, for the calibration
subset and for the held-out rest.

Fitted parameters (the ``[calibration.TARGET]`` tables; nothing else is fitted, no per-model
factor): ``edge-tpu`` ``invoke_overhead_ms``, the median of ``published - predicted`` latency
over its calibration references (host/USB invocation cost, added to every Edge TPU latency);
``eyeriss`` ``mac_efficiency`` (:attr:`AcceleratorConfig.mac_efficiency`), the geometric mean
of ``published / predicted`` throughput over its calibration references, capped at 1;
``rpi4`` ``cpu_latency``: the CPU latency model's three parameters
(:data:`edgecnn.analysis.cpu_latency.FITTED`), least squares in log latency over its calibration
references (without the fit: efficiencies 1, no reduction-length loss).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

import tomllib

from edgecnn.errors import ConfigError
from edgecnn.schema import ResultKind

METRICS = ("latency_ms", "throughput_fps", "dram_accesses_per_mac", "utilization")
SCOPES = ("network", "conv")
BAND = (0.67, 1.5)
REQUIRED = ("name", "metric", "published", "model", "input_shape", "precision", "target")
REQUIRED += ("scope", "source")


@dataclass(frozen=True)
class Reference:
    """One published figure (see ``references.toml``)."""

    name: str
    metric: str
    published: float
    model: str
    input_shape: tuple[int, ...]
    precision: str
    target: str
    scope: str
    source: str
    calibration: bool = False
    objective: str = "latency"
    """The tiling search's objective for ``simulate`` (Eyeriss maps for energy)."""
    threads: int | None = None
    """CPU references: threads the runtime ran (None: not stated; predicted with all cores)."""
    runtime: str | None = None
    """CPU references: the runtime (``edgecnn.analysis.cpu_latency.RUNTIMES``), if known."""

    @property
    def batch(self) -> int:
        return self.input_shape[0]


@dataclass
class ValidateRow:
    name: str
    metric: str
    model: str
    batch: int
    precision: str
    target: str
    source: str
    calibration: bool
    published: float
    predicted: float
    ratio: float
    within: bool
    threads: int | None = None
    runtime: str | None = None


@dataclass
class ValidateResult:
    rows: list[ValidateRow]
    fitted: dict[str, dict[str, Any]]
    summary: dict[str, dict[str, Any]]
    band: tuple[float, float] = BAND
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": ResultKind.VALIDATE.value,
            "rows": [asdict(r) for r in self.rows],
            "fitted": self.fitted,
            "summary": self.summary,
            "band": list(self.band),
            "notes": list(self.notes),
        }


def load_references(text: str | None = None) -> tuple[list[Reference], dict[str, dict]]:
    """The references and calibration tables of ``references.toml`` (or ``text``)."""
    if text is None:
        text = resources.files("edgecnn.studies").joinpath("references.toml").read_text()
    raw = tomllib.loads(text)
    refs = []
    for i, r in enumerate(raw.get("reference", [])):
        missing = [k for k in REQUIRED if k not in r]
        if missing:
            raise ConfigError(f"reference {i} ({r.get('name', '?')}) lacks {', '.join(missing)}")
        if r["metric"] not in METRICS or r["scope"] not in SCOPES:
            raise ConfigError(
                f"reference {r['name']}: metric must be one of {', '.join(METRICS)} and scope "
                f"one of {', '.join(SCOPES)}"
            )
        refs.append(
            Reference(
                name=r["name"],
                metric=r["metric"],
                published=float(r["published"]),
                model=r["model"],
                input_shape=tuple(int(x) for x in r["input_shape"]),
                precision=r["precision"],
                target=r["target"],
                scope=r["scope"],
                source=r["source"],
                calibration=bool(r.get("calibration", False)),
                objective=str(r.get("objective", "latency")),
                threads=int(r["threads"]) if "threads" in r else None,
                runtime=str(r["runtime"]) if "runtime" in r else None,
            )
        )
    return refs, dict(raw.get("calibration", {}))


# --- predictions --------------------------------------------------------------------------------


def _graph(ref: Reference):
    from edgecnn.models import load_graph

    return load_graph(ref.model, ref.input_shape)


def _is_accelerator(target: str) -> bool:
    from edgecnn.hardware.config import PRESETS

    return target in PRESETS


def _simulate_metric(ref: Reference, graph, accel) -> float:
    from edgecnn.hardware.simulate import SimOptions, simulate

    res = simulate(graph, accel, SimOptions(precision=ref.precision, objective=ref.objective))
    layers = [r for r in res.layers if ref.scope == "network" or r.op == "conv"]
    cycles = sum(r.cycles for r in layers)
    seconds = cycles / accel.clock_hz
    macs = sum(r.macs for r in layers)
    if ref.metric == "latency_ms":
        return seconds * 1e3
    if ref.metric == "throughput_fps":
        return ref.batch / seconds
    if ref.metric == "dram_accesses_per_mac":
        return sum(r.dram_bytes for r in layers) / accel.word_bytes(ref.precision) / macs
    return sum(r.effective_macs for r in layers) / (cycles * accel.pes)


def _roofline_metric(ref: Reference, graph) -> float:
    from edgecnn.analysis.profile import profile

    seconds = profile(graph, ref.precision, device=ref.target).totals.latency_s
    if ref.metric == "latency_ms":
        return seconds * 1e3
    if ref.metric == "throughput_fps":
        return ref.batch / seconds
    raise ConfigError(f"reference {ref.name}: a CPU roofline predicts latency or throughput only")


def _is_cpu(target: str) -> bool:
    from edgecnn.analysis.devices import load_catalog

    dev = load_catalog().get(target)
    return dev is not None and dev.cores is not None


def _cpu_work(ref: Reference, graph):
    from edgecnn.analysis.cpu_latency import kernel_work
    from edgecnn.analysis.devices import get_device

    return kernel_work(graph, get_device(ref.target), ref.runtime, ref.precision)


def _cpu_threads(ref: Reference) -> int:
    from edgecnn.analysis.devices import get_device

    cores = get_device(ref.target).cores or 1
    return ref.threads if ref.threads is not None else cores


def _cpu_params(target: str, fitted: dict[str, dict[str, Any]]):
    from dataclasses import replace

    from edgecnn.analysis.cpu_latency import FITTED, device_params
    from edgecnn.analysis.devices import get_device

    values = {k: v for k, v in fitted.get(target, {}).items() if k in FITTED}
    return replace(device_params(get_device(target)), **values)


def _cpu_metric(ref: Reference, graph, fitted: dict[str, dict[str, Any]]) -> float:
    from edgecnn.analysis.cpu_latency import latency_s

    seconds = latency_s(_cpu_work(ref, graph), _cpu_params(ref.target, fitted), _cpu_threads(ref))
    if ref.metric == "latency_ms":
        return seconds * 1e3
    if ref.metric == "throughput_fps":
        return ref.batch / seconds
    raise ConfigError(f"reference {ref.name}: the CPU model predicts latency or throughput only")


def _fit_cpu(target: str, cal: list[Reference], graph_of) -> dict:
    """The CPU latency model's parameters fitted on ``cal`` (latency references only)."""
    from edgecnn.analysis.cpu_latency import FITTED, fit

    cal = [r for r in cal if r.metric == "latency_ms"]
    if not cal:
        return {}
    cases = [(_cpu_work(r, graph_of(r)), _cpu_threads(r), r.published / 1e3) for r in cal]
    params = fit(cases, _cpu_params(target, {}))
    return {k: getattr(params, k) for k in FITTED} | {"fitted_on": [r.name for r in cal]}


def _raw_prediction(ref: Reference, graph, fitted: dict[str, dict[str, Any]]) -> float:
    if not _is_accelerator(ref.target):
        if _is_cpu(ref.target):
            return _cpu_metric(ref, graph, fitted)
        return _roofline_metric(ref, graph)
    from edgecnn.hardware.config import load_preset

    accel = load_preset(ref.target)
    eff = fitted.get(ref.target, {}).get("mac_efficiency")
    if eff is not None:
        accel = accel.replace(mac_efficiency=eff)
    value = _simulate_metric(ref, graph, accel)
    overhead = fitted.get(ref.target, {}).get("invoke_overhead_ms")
    if overhead is not None and ref.metric == "latency_ms":
        value += overhead
    return value


def _fit(target: str, spec: dict, refs: list[Reference], preds: dict[str, float]) -> dict:
    cal = [r for r in refs if r.target == target and r.calibration]
    param = spec.get("parameter")
    if not cal:
        return {}
    if param == "invoke_overhead_ms":
        value = max(0.0, statistics.median(r.published - preds[r.name] for r in cal))
    elif param == "mac_efficiency":
        logs = [math.log(r.published / preds[r.name]) for r in cal]
        value = min(1.0, math.exp(sum(logs) / len(logs)))
    else:
        raise ConfigError(f"calibration.{target}: unknown parameter {param!r}")
    return {param: value, "fitted_on": [r.name for r in cal]}


def summarise(rows: list[ValidateRow]) -> dict[str, Any]:
    """Share within the band and geometric-mean error ``exp(mean |ln ratio|) - 1``."""
    if not rows:
        return {"n": 0, "within_share": None, "geomean_error": None}
    logs = [abs(math.log(r.ratio)) for r in rows]
    return {
        "n": len(rows),
        "within_share": sum(r.within for r in rows) / len(rows),
        "geomean_error": math.exp(sum(logs) / len(logs)) - 1,
    }


def _cpu_summaries(rows: list[ValidateRow]) -> dict[str, dict[str, Any]]:
    """Per CPU target: its calibration and held-out subsets, and the held-out rows per runtime."""
    out: dict[str, dict[str, Any]] = {}
    for target in dict.fromkeys(r.target for r in rows if r.runtime is not None):
        mine = [r for r in rows if r.target == target]
        out[f"{target} calibration"] = summarise([r for r in mine if r.calibration])
        out[f"{target} held_out"] = summarise([r for r in mine if not r.calibration])
        for runtime in dict.fromkeys(r.runtime for r in mine if r.runtime is not None):
            held = [r for r in mine if r.runtime == runtime and not r.calibration]
            out[f"{target} {runtime} held_out"] = summarise(held)
    return out


def run_validate(only: list[str] | None = None, fit: bool = True) -> ValidateResult:
    """Predict every reference (or those named in ``only``); see the module docstring."""
    refs, calibration = load_references()
    names = [r.name for r in refs]
    if only:
        unknown = [n for n in only if n not in names]
        if unknown:
            raise ConfigError(
                f"unknown reference {', '.join(unknown)}: choose from {', '.join(names)}"
            )
    graphs: dict[tuple, Any] = {}

    def graph_of(ref: Reference):
        key = (ref.model, ref.input_shape)
        if key not in graphs:
            graphs[key] = _graph(ref)
        return graphs[key]

    fitted: dict[str, dict[str, Any]] = {}
    if fit:
        for target, spec in calibration.items():
            cal = [r for r in refs if r.target == target and r.calibration]
            if spec.get("parameter") == "cpu_latency":
                fitted[target] = _fit_cpu(target, cal, graph_of)
                continue
            preds = {r.name: _raw_prediction(r, graph_of(r), {}) for r in cal}
            fitted[target] = _fit(target, spec, refs, preds)
    selected = [r for r in refs if not only or r.name in only]
    rows = []
    for ref in selected:
        pred = _raw_prediction(ref, graph_of(ref), fitted)
        ratio = pred / ref.published
        rows.append(
            ValidateRow(
                name=ref.name,
                metric=ref.metric,
                model=ref.model,
                batch=ref.batch,
                precision=ref.precision,
                target=ref.target,
                source=ref.source,
                calibration=ref.calibration,
                published=ref.published,
                predicted=pred,
                ratio=ratio,
                within=BAND[0] <= ratio <= BAND[1],
                threads=ref.threads,
                runtime=ref.runtime,
            )
        )
    summary = {
        "all": summarise(rows),
        "calibration": summarise([r for r in rows if r.calibration]),
        "held_out": summarise([r for r in rows if not r.calibration]),
    }
    summary.update(_cpu_summaries(rows))
    notes = [
        f"{t}: {k} = {v:.4g} fitted on {', '.join(f['fitted_on'])}"
        for t, f in fitted.items()
        for k, v in f.items()
        if k != "fitted_on"
    ]
    return ValidateResult(rows, fitted, summary, BAND, notes)
