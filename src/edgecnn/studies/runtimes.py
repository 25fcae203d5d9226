"""Multi-runtime benchmark: one model converted for several runtimes, timed interleaved.

:func:`bench_runtimes` resolves the model, exports it once to ONNX (checked), converts it with
every requested backend (:mod:`edgecnn.runtime.backends`; ``"all"`` means every registered
runtime that is installed, the others listed in ``skipped`` with the reason), checks each
artifact's output against PyTorch on a standard-normal input (seed 1) at the fp32 tolerance,
then for each thread count loads every artifact with that many threads and times them
round-robin in one loop (:func:`edgecnn.runtime.bench.interleaved`), so machine drift affects
them alike. ``fastest[threads]`` is the runtime with the smallest median latency.

With ``"all"``, a runtime whose conversion or check fails is skipped (reason recorded); a runtime
named explicitly raises instead. Units: latencies in milliseconds, times in seconds, sizes in
bytes; ``latency`` and ``fastest`` are keyed by the thread count as a string (JSON keys).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edgecnn.errors import ConfigError, EdgecnnError
from edgecnn.runtime.backends import BACKENDS, OutputCheck, compare_outputs, get_backend
from edgecnn.runtime.bench import LatencyStats, interleaved
from edgecnn.schema import ResultKind
from edgecnn.studies.deploy import (
    RANDOM_CHECK_INPUT,
    artifact_stem,
    random_check_input,
    torch_output,
)


@dataclass
class RuntimeBenchResult:
    """Median latencies of one model in several runtimes, per thread count."""

    model: str
    input_shape: list[int]
    precision: str
    runtimes: list[str]  # the runtimes converted, checked and timed
    skipped: list[dict]  # {"runtime", "reason"} for requested runtimes not timed
    thread_counts: list[int]
    runs: int
    warmup: int
    latency: dict[str, dict[str, LatencyStats]]  # str(threads) -> runtime -> statistics
    fastest: dict[str, str]  # str(threads) -> runtime with the smallest median
    checks: dict[str, OutputCheck]
    convert_time_s: dict[str, float]
    artifact_size_bytes: dict[str, int]
    versions: dict[str, dict[str, str]] = field(default_factory=dict)
    environment: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "kind": ResultKind.RUNTIME_BENCH.value,
            **{k: v for k, v in self.__dict__.items() if k not in ("latency", "checks")},
            "latency": {
                t: {r: s.to_dict() for r, s in per.items()} for t, per in self.latency.items()
            },
            "checks": {r: c.to_dict() for r, c in self.checks.items()},
        }


def default_thread_counts() -> list[int]:
    """One thread and all threads (``os.cpu_count()``)."""
    return sorted({1, os.cpu_count() or 1})


def bench_runtimes(
    source: object,
    runtimes: Sequence[str] | str = "all",
    thread_counts: Sequence[int] | None = None,
    runs: int = 50,
    warmup: int = 5,
    input_shape: Sequence[int] | None = None,
    batch: int | None = None,
    on_step: Callable[[str], None] | None = None,
    on_round: Callable[[int], None] | None = None,
) -> RuntimeBenchResult:
    """Convert ``source`` for ``runtimes`` (names or ``"all"``) and time them interleaved."""
    from edgecnn.models.resolve import resolve_model
    from edgecnn.runtime.environment import environment_info
    from edgecnn.runtime.export import export_onnx
    from edgecnn.runtime.memory import check_model_memory

    step = on_step or (lambda _m: None)
    explicit = runtimes != "all"
    names = list(runtimes) if explicit else list(BACKENDS)
    if not names:
        raise ConfigError("no runtime given: name one or more of " + ", ".join(BACKENDS))
    threads = sorted(set(thread_counts)) if thread_counts else default_thread_counts()
    if threads[0] < 1:
        raise ConfigError(f"thread counts must be >= 1, got {threads[0]}")
    rm = resolve_model(source, input_shape, batch=batch)  # type: ignore[arg-type]
    skipped: list[dict] = []
    chosen = []
    for n in dict.fromkeys(names):
        b = get_backend(n)
        reason = b.available()
        if reason is None and b.batch1_only and rm.input_shape[0] != 1:
            reason = f"takes one image (batch 1), not batch {rm.input_shape[0]}"
        if reason is not None:
            if explicit:
                from edgecnn.runtime.backends import require_backend

                require_backend(n)  # the one-line "not installed" error
                raise ConfigError(f"runtime '{n}' {reason}")
            skipped.append({"runtime": n, "reason": _skip_reason(n, reason)})
            continue
        chosen.append(b)
    if not chosen:
        raise EdgecnnError(
            "no runtime is installed to benchmark: pip install -e '.[runtimes]' "
            f"(skipped: {', '.join(s['runtime'] for s in skipped)})"
        )
    check_model_memory(
        rm.module, rm.input_shape, rm.name, "benchmarking", "use a smaller --batch or --input-shape"
    )
    x = random_check_input(rm.input_shape)
    x_np = x.numpy()
    ref = torch_output(rm.module, x)
    checks: dict[str, OutputCheck] = {}
    convert_s: dict[str, float] = {}
    sizes: dict[str, int] = {}
    artifacts: dict[str, Path] = {}
    latency: dict[str, dict[str, LatencyStats]] = {}
    with tempfile.TemporaryDirectory(prefix="edgecnn-runtimes-") as tmp:
        step("exporting to ONNX (checked in ONNX Runtime)")
        onnx_path = Path(tmp) / f"{artifact_stem(rm.name)}.onnx"
        export_onnx(rm.module, onnx_path, rm.input_shape)
        for b in chosen:
            step(f"converting with {b.label}")
            out = Path(tmp) / b.name
            out.mkdir()
            try:
                t0 = time.perf_counter()
                art = b.convert(rm.module, x, onnx_path, out, "fp32")
                convert_s[b.name] = time.perf_counter() - t0
                chk = compare_outputs(b.load(art, 1)(x_np), ref, "fp32", RANDOM_CHECK_INPUT)
                if not chk.passed:
                    raise EdgecnnError(
                        f"runtime '{b.name}' output differs from PyTorch by "
                        f"{chk.relative_error:.3g} of the output range "
                        f"(allowed {chk.relative_tolerance:g})"
                    )
            except EdgecnnError as e:
                if explicit:
                    raise
                skipped.append({"runtime": b.name, "reason": str(e)})
                continue
            checks[b.name] = chk
            artifacts[b.name] = art
            sizes[b.name] = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
        if not artifacts:
            raise EdgecnnError(
                "every runtime failed: "
                + "; ".join(f"{s['runtime']}: {s['reason']}" for s in skipped)
            )
        for t in threads:
            step(f"timing {len(artifacts)} runtime(s) interleaved at {t} thread(s)")
            runners = {n: artifacts_runner(BACKENDS[n], a, t, x_np) for n, a in artifacts.items()}
            latency[str(t)] = interleaved(
                runners, runs=runs, warmup=warmup, batch=rm.input_shape[0], on_round=on_round
            )
    fastest = {t: min(per, key=lambda n, per=per: per[n].median_ms) for t, per in latency.items()}
    return RuntimeBenchResult(
        model=rm.name,
        input_shape=list(rm.input_shape),
        precision="fp32",
        runtimes=list(artifacts),
        skipped=skipped,
        thread_counts=threads,
        runs=runs,
        warmup=warmup,
        latency=latency,
        fastest=fastest,
        checks=checks,
        convert_time_s=convert_s,
        artifact_size_bytes=sizes,
        versions={n: BACKENDS[n].versions() for n in artifacts},
        environment=environment_info(max(threads)),
    )


def artifacts_runner(backend, artifact: Path, threads: int, x_np) -> Callable[[], object]:
    """A no-argument call of ``artifact`` loaded with ``threads`` threads on the fixed input."""
    run = backend.load(artifact, threads)
    return lambda: run(x_np)


def _skip_reason(name: str, reason: str) -> str:
    if "cannot be imported" in reason:
        from edgecnn.runtime.backends import INSTALL_HINT

        return f"not installed ({reason}): {INSTALL_HINT}"
    return reason
