"""Speed of the accelerator model.

Targets (issue 3): ResNet-50 in ``tiled`` mode with the per-layer tiling search < 1 s, and
ResNet-18 in ``scalesim`` mode < 20 ms. SCALE-Sim itself builds and walks its demand matrices
(the issue quotes about 4 minutes of CPU for ResNet-18; not re-measured here); our closed forms
give the same counts (tests/test_hardware_scalesim.py).

Run: ``flock /tmp/edgecnn-heavy.lock python benchmarks/bench_simulate.py``
"""

from __future__ import annotations

import statistics
import time

import torch

from edgecnn.graph.from_torch import graph_from_module
from edgecnn.hardware.config import PRESETS, AcceleratorConfig, load_preset
from edgecnn.hardware.search import _search_cached, build_grid
from edgecnn.hardware.simulate import SimOptions, simulate
from edgecnn.hardware.workload import build_workload
from edgecnn.models.zoo import build_zoo_model


def timed(fn, repeats: int = 7) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def cold(fn, *args):
    """Run with the search's memo caches empty (what a fresh process pays)."""
    _search_cached.cache_clear()
    build_grid.cache_clear()
    return fn(*args)


def main() -> None:
    torch.set_num_threads(1)
    r50 = graph_from_module(build_zoo_model("resnet50"), (1, 3, 224, 224), name="resnet50")
    r18 = graph_from_module(build_zoo_model("resnet18"), (1, 3, 224, 224), name="resnet18")
    print(
        "tiled mode, ResNet-50 (per-layer tiling search, memo cache cleared each run), median of 7:"
    )
    for preset in PRESETS:
        accel = load_preset(preset)
        t = timed(lambda accel=accel: cold(simulate, r50, accel))
        print(f"  {preset:12s} {t * 1e3:8.1f} ms   target < 1000 ms   {'OK' if t < 1 else 'MISS'}")
    accel = AcceleratorConfig(rows=32, cols=32, dataflow="os")
    opts = SimOptions(model_cycles="scalesim")
    wl = build_workload(r18)
    t_ss = timed(lambda: simulate(wl, accel, opts), repeats=21)
    print("scalesim mode, ResNet-18 on 32x32 OS, median:")
    print(
        f"  edgecnn closed form {t_ss * 1e3:8.2f} ms   target < 20 ms   {'OK' if t_ss < 0.02 else 'MISS'}"
    )


if __name__ == "__main__":
    main()
