"""Design-space exploration: space parsing, Pareto front, JSON-lines resume, worker death, Ray."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from edgecnn.errors import ConfigError
from edgecnn.graph.ir import Graph, Layer, OpKind, TensorInfo
from edgecnn.hardware.explore import (
    area_mm2,
    evaluate_point,
    explore,
    pareto_front,
    point_id,
    read_results,
    space_from_dict,
    sweep_context,
)
from edgecnn.hardware.workload import build_workload

SPACE = {
    "base": "tpu-32x32",
    "sweep": {"array": ["8x8", "16x16"], "sram_kb": [64, 256], "dataflow": ["os", "ws"]},
}


def small_workload(out_channels: int = 32):
    k = out_channels
    x = TensorInfo("x", (1, 16, 28, 28))
    y = TensorInfo("y", (1, k, 28, 28))
    z = TensorInfo("z", (1, k, 14, 14))
    conv = Layer(
        "conv",
        OpKind.CONV,
        [x],
        [y],
        params={"weight": (k, 16, 3, 3)},
        attrs={"kernel": (3, 3), "stride": (1, 1), "padding": (1, 1, 1, 1), "groups": 1},
    )
    pool = Layer("pool", OpKind.MAXPOOL, [y], [z], attrs={"kernel": (2, 2), "stride": (2, 2)})
    return build_workload(Graph(f"small-{k}", [conv, pool], [x], [z]))


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_space_validation():
    with pytest.raises(ConfigError, match="valid keys"):
        space_from_dict({"sweeep": {}})
    with pytest.raises(ConfigError, match="no 'sweep' to explore"):
        space_from_dict({"base": "seed-chip"})
    with pytest.raises(ConfigError, match="no 'sweep' to explore"):
        space_from_dict({})
    with pytest.raises(ConfigError, match="valid: array"):
        space_from_dict({"sweep": {"rows": [1]}})
    with pytest.raises(ConfigError, match="ROWSxCOLS"):
        space_from_dict({"sweep": {"array": ["big"]}})
    with pytest.raises(ConfigError, match="rows"):
        space_from_dict({"sweep": {"array": ["0x4"]}})
    assert len(space_from_dict(SPACE).points()) == 8


def test_pareto_front_against_brute_force():
    import random

    rng = random.Random(1)
    rows = [
        {
            "id": str(i),
            "latency_s": rng.random(),
            "energy_j": rng.random(),
            "area_mm2": rng.choice([1.0, 2.0, 3.0]),
        }
        for i in range(60)
    ]
    front = pareto_front(rows)
    keys = ("latency_s", "energy_j", "area_mm2")

    def dominates(a, b):
        return all(a[k] <= b[k] for k in keys) and any(a[k] < b[k] for k in keys)

    ids = {r["id"] for r in front}
    for r in rows:
        assert (r["id"] in ids) == (not any(dominates(o, r) for o in rows))


def test_area_model_is_monotone():
    space = space_from_dict(SPACE)
    small = area_mm2(space.base.replace(rows=8, cols=8), "int8")
    assert area_mm2(space.base.replace(rows=16, cols=16), "int8") > small
    assert area_mm2(space.base.replace(rows=8, cols=8), "fp32") > small
    assert area_mm2(space.base.replace(rows=8, cols=8, shared_sram_bytes=1 << 22), "int8") > small


def test_local_sweep_appends_and_resumes(tmp_path):
    wl = small_workload()
    out = tmp_path / "r.jsonl"
    partial = space_from_dict({**SPACE, "sweep": {**SPACE["sweep"], "dataflow": ["os"]}})
    first = explore(wl, partial, out, workers=2)
    assert (first.computed, first.skipped) == (4, 0)
    with out.open("a") as f:  # an interrupted write leaves a torn line behind
        f.write('{"id": "torn", "par')
    full = space_from_dict(SPACE)
    second = explore(wl, full, out, workers=2)
    assert (second.computed, second.skipped) == (4, 4)
    rows = [r for r in lines_ok(out)]
    ids = [r["id"] for r in rows]
    ctx = sweep_context(wl, full)
    assert sorted(ids) == sorted(point_id(p, ctx) for p in full.points())
    assert len(ids) == len(set(ids))
    # the results equal a direct evaluation
    p = full.points()[5]
    direct = evaluate_point(wl, full.base, "latency", p)
    stored = read_results(out)[point_id(p, ctx)]
    assert {k: stored[k] for k in direct} == json.loads(json.dumps(direct, sort_keys=True))
    assert explore(wl, full, out).computed == 0


def test_results_of_another_sweep_are_never_resumed(tmp_path):
    """Same swept values, but another model, base accelerator or objective: all recomputed."""
    out = tmp_path / "r.jsonl"
    space = space_from_dict(SPACE)
    first = explore(small_workload(), space, out, workers=1)
    assert first.computed == 8
    other_model = explore(small_workload(out_channels=64), space, out, workers=1)
    assert (other_model.computed, other_model.skipped) == (8, 0)
    other_base = space_from_dict({**SPACE, "base": "seed-chip"})
    assert explore(small_workload(), other_base, out, workers=1).computed == 8
    other_objective = space_from_dict({**SPACE, "objective": "energy"})
    assert explore(small_workload(), other_objective, out, workers=1).computed == 8
    # each result is the one of its own sweep
    again = explore(small_workload(out_channels=64), space, out, workers=1)
    assert again.computed == 0
    assert {r["model"] for r in again.points} == {"small-64"}
    assert [r["latency_s"] for r in again.points] == [r["latency_s"] for r in other_model.points]


def lines_ok(path: Path):
    for line in path.read_text().splitlines():
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            continue


def dying_evaluator(workload, base, objective, point):
    """Kills its own worker process the first time it sees the 16x16/256 KB/ws point."""
    marker = Path(os.environ["EDGECNN_TEST_KILL_DIR"]) / "killed"
    if point == {"array": "16x16", "sram_kb": 256, "dataflow": "ws"} and not marker.exists():
        marker.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return evaluate_point(workload, base, objective, point)


def test_killed_worker_loses_and_duplicates_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGECNN_TEST_KILL_DIR", str(tmp_path))
    out = tmp_path / "r.jsonl"
    space = space_from_dict(SPACE)
    res = explore(small_workload(), space, out, workers=2, evaluator=dying_evaluator)
    assert (tmp_path / "killed").exists()  # a worker really died mid-sweep
    ids = [r["id"] for r in lines(out)]
    ctx = sweep_context(small_workload(), space)
    assert sorted(ids) == sorted(point_id(p, ctx) for p in space.points())
    assert not any("error" in r for r in lines(out))
    assert res.computed == 8


def test_ray_results_equal_local_and_survive_a_killed_worker(tmp_path, monkeypatch):
    import sys

    import ray  # optional extra `edgecnn[ray]`; installed in the dev venv

    wl = small_workload()
    space = space_from_dict(SPACE)
    local = explore(wl, space, tmp_path / "local.jsonl", workers=2)
    monkeypatch.setenv("EDGECNN_TEST_KILL_DIR", str(tmp_path))  # inherited by Ray's workers
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = explore(wl, space, tmp_path / "ray.jsonl", ray_address="local")
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
        killed = explore(
            wl, space, tmp_path / "ray_killed.jsonl", ray_address="local", evaluator=dying_evaluator
        )
    finally:
        ray.shutdown()
    assert (tmp_path / "killed").exists()  # one Ray worker died mid-sweep and was retried
    ids = [r["id"] for r in lines(tmp_path / "ray_killed.jsonl")]
    assert sorted(ids) == sorted(r["id"] for r in local.points)
    assert not any("error" in r for r in killed.points)
    by_id = {r["id"]: r for r in local.points}
    assert len(remote.points) == len(local.points) == 8
    for r in remote.points:
        assert r == by_id[r["id"]]
    assert [r["id"] for r in remote.front] == [r["id"] for r in local.front]


def test_shipped_example_space_parses():
    from importlib import resources

    from edgecnn.hardware.explore import load_space

    path = resources.files("edgecnn.hardware").joinpath("presets/space-example.yaml")
    space = load_space(Path(str(path)))
    assert len(space.points()) == 4 * 3 * 2 * 2 * 2


@pytest.mark.parametrize("workers", [0, -1])
def test_bad_worker_count_is_refused(tmp_path, workers):
    with pytest.raises(ConfigError, match="--workers must be >= 1"):
        explore(small_workload(), space_from_dict(SPACE), tmp_path / "r.jsonl", workers=workers)
    assert not (tmp_path / "r.jsonl").exists()
