"""How much the Raspberry Pi 4 CPU latency model's held-out error depends on which references
it is fitted on.

Draws random calibration subsets of the ncnn references (N models, each at both thread counts,
as the stated `[calibration.rpi4]` subset is), fits the CPU model's parameters on each, and
reports the held-out ncnn geomean error and share within 0.67x-1.5x: their median and
10th-90th percentiles, beside the stated subset's figures.

    python benchmarks/bench_cpu_fit.py [--draws 100] [--models 3] [--seed 0] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys

from edgecnn.analysis.cpu_latency import fit, latency_s
from edgecnn.studies import validate as v


def _model_key(name: str) -> str:
    """ncnn-rpi4-resnet18-4t -> resnet18 (one model at both thread counts)."""
    return name.removeprefix("ncnn-rpi4-").rsplit("-", 1)[0]


def _scores(refs, works, cal_names: set[str]) -> tuple[float, float, dict]:
    base = v._cpu_params("rpi4", {})
    cases = [
        (works[r.name], v._cpu_threads(r), r.published / 1e3) for r in refs if r.name in cal_names
    ]
    params = fit(cases, base)
    logs = []
    for r in refs:
        if r.name in cal_names:
            continue
        pred = latency_s(works[r.name], params, v._cpu_threads(r)) * 1e3
        logs.append(abs(math.log(pred / r.published)))
    geo = math.exp(sum(logs) / len(logs)) - 1
    within = sum(x <= math.log(1.5) + 1e-12 for x in logs) / len(logs)
    return geo, within, params


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=100)
    ap.add_argument("--models", type=int, default=3, help="models per calibration subset")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    refs, _ = v.load_references()
    refs = [r for r in refs if r.target == "rpi4" and r.runtime == "ncnn"]
    works = {r.name: v._cpu_work(r, v._graph(r)) for r in refs}
    models = sorted({_model_key(r.name) for r in refs})
    stated = {r.name for r in refs if r.calibration}
    geo0, within0, params0 = _scores(refs, works, stated)

    rng = random.Random(args.seed)
    geos, withins = [], []
    for _ in range(args.draws):
        pick = set(rng.sample(models, args.models))
        cal = {r.name for r in refs if _model_key(r.name) in pick}
        geo, within, _ = _scores(refs, works, cal)
        geos.append(geo)
        withins.append(within)

    def pct(xs: list[float], q: float) -> float:
        return statistics.quantiles(xs, n=10, method="inclusive")[q] if len(xs) > 1 else xs[0]

    out = {
        "kind": "cpu_fit_sensitivity",
        "references": len(refs),
        "models_per_subset": args.models,
        "draws": args.draws,
        "seed": args.seed,
        "stated_subset": sorted(stated),
        "stated_held_out_geomean_error": geo0,
        "stated_held_out_within": within0,
        "random_held_out_geomean_error": {
            "median": statistics.median(geos),
            "p10": pct(geos, 0),
            "p90": pct(geos, 8),
        },
        "random_held_out_within": {
            "median": statistics.median(withins),
            "p10": pct(withins, 0),
            "p90": pct(withins, 8),
        },
    }
    if args.json:
        json.dump(out, sys.stdout, indent=2)
        print()
        return 0
    print(f"{len(refs)} ncnn references, {len(models)} models; subsets of {args.models} models")
    print(f"stated subset: held-out geomean error {geo0:.1%}, within band {within0:.0%}")
    g, w = out["random_held_out_geomean_error"], out["random_held_out_within"]
    print(
        f"{args.draws} random subsets: held-out geomean error median {g['median']:.1%} "
        f"(p10-p90 {g['p10']:.1%}-{g['p90']:.1%}); within band median {w['median']:.0%} "
        f"(p10-p90 {w['p10']:.0%}-{w['p90']:.0%})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
