"""Profile speed: edgecnn vs fvcore vs ptflops on torchvision's classification models.

Each tool's whole cost per model is measured in the same run: building the model plus counting.
edgecnn builds on the meta device and records shapes only; fvcore and ptflops need a real model
(weights allocated and initialised) and run a real forward pass (fvcore traces it with the JIT).

    python benchmarks/bench_profile.py                  # all models, all tools
    python benchmarks/bench_profile.py --models resnet50,vit_b_16 --threads 2

Prints per-model times, per-tool medians and the ratio (peer median / edgecnn median, and
per-model ratios' median), and the total CPU seconds edgecnn needed for every model.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch
import torchvision


def _edgecnn(name: str) -> float:
    from edgecnn.analysis import profile
    from edgecnn.graph.from_torch import graph_from_module
    from edgecnn.models.zoo import build_zoo_model, zoo_entry

    entry = zoo_entry(name)
    t0 = time.perf_counter()
    result = profile(graph_from_module(build_zoo_model(name), entry.input_shape, name))
    dt = time.perf_counter() - t0
    assert result.totals.macs > 0
    return dt


def _real_model(name: str) -> tuple[torch.nn.Module, int]:
    from edgecnn.models.zoo import zoo_entry

    entry = zoo_entry(name)
    kwargs = dict(entry.builder_kwargs)
    kwargs["num_classes"] = entry.num_classes
    kwargs.pop("init_weights", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torchvision.models.get_model(name, weights=None, **kwargs).eval(), entry.crop_size


def _fvcore(name: str) -> float:
    from fvcore.nn import FlopCountAnalysis

    t0 = time.perf_counter()
    model, size = _real_model(name)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analysis = FlopCountAnalysis(model, torch.randn(1, 3, size, size))
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        analysis.total()
    return time.perf_counter() - t0


def _ptflops(name: str) -> float:
    from ptflops import get_model_complexity_info

    t0 = time.perf_counter()
    model, size = _real_model(name)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        get_model_complexity_info(
            model, (3, size, size), as_strings=False, print_per_layer_stat=False, verbose=False
        )
    return time.perf_counter() - t0


TOOLS = {"edgecnn": _edgecnn, "fvcore": _fvcore, "ptflops": _ptflops}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="", help="comma-separated names (default: all 80)")
    ap.add_argument("--tools", default="edgecnn,fvcore,ptflops")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from edgecnn.models.zoo import zoo_names

    names = [n for n in args.models.split(",") if n] or zoo_names()
    tools = [t for t in args.tools.split(",") if t]
    _edgecnn("resnet18")  # warm imports so the first model does not pay for them
    times: dict[str, dict[str, float]] = {t: {} for t in tools}
    cpu0 = time.process_time()
    edge_cpu = 0.0
    for name in names:
        row = []
        for tool in tools:
            c0 = time.process_time()
            try:
                times[tool][name] = TOOLS[tool](name)
            except Exception as e:  # a peer that cannot handle a model is reported, not fatal
                row.append(f"{tool}=failed({type(e).__name__})")
                continue
            if tool == "edgecnn":
                edge_cpu += time.process_time() - c0
            row.append(f"{tool}={times[tool][name] * 1e3:8.1f} ms")
        print(f"{name:24s} " + "  ".join(row), flush=True)
    print()
    med = {t: statistics.median(v.values()) for t, v in times.items() if v}
    for t in tools:
        if t in med:
            print(f"median per model  {t:8s} {med[t] * 1e3:9.1f} ms  ({len(times[t])} models)")
    if "edgecnn" in med:
        for peer in (t for t in tools if t != "edgecnn" and t in med):
            common = [n for n in times[peer] if n in times["edgecnn"]]
            ratios = [times[peer][n] / times["edgecnn"][n] for n in common]
            print(
                f"{peer} / edgecnn: ratio of medians {med[peer] / med['edgecnn']:.1f}x, "
                f"median of per-model ratios {statistics.median(ratios):.1f}x"
            )
        peers = [t for t in tools if t != "edgecnn" and t in med]
        both = [n for n in times["edgecnn"] if all(n in times[p] for p in peers)]
        if peers and both:
            faster = [min(times[p][n] for p in peers) / times["edgecnn"][n] for n in both]
            print(f"faster peer per model / edgecnn: median {statistics.median(faster):.1f}x")
        print(f"edgecnn CPU time for {len(times['edgecnn'])} models: {edge_cpu:.2f} s")
    print(f"total wall CPU of this run: {time.process_time() - cpu0:.1f} s")


if __name__ == "__main__":
    main()
