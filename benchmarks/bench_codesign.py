"""Time and outcome of a co-design run with the example space (issue 13).

Target: the whole run (supernet training, joint NSGA-II search, both sequential baselines and
the from-scratch retraining of the chosen designs) finishes on MNIST-5k in under 10 minutes on
2 CPU cores; the joint front's hypervolume is at least each baseline's; the retrained accuracy
of each chosen design is within 1 point of the supernet's estimate.

Run: ``python benchmarks/bench_codesign.py [--out DIR] [--workers 2] [--json FILE]``
(a fresh DIR: a resumed run reuses the supernet and the evaluations and is not a timing).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from edgecnn.studies.codesign import run_codesign
from edgecnn.studies.codesign_space import load_codesign_space


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--space", default=None, help="space YAML (default: the example space)")
    ap.add_argument("--out", default=None, help="output folder (default: a temporary one)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--budget-latency-ms", type=float, default=None)
    ap.add_argument("--json", default=None, help="also write the summary here")
    args = ap.parse_args()
    space = load_codesign_space(args.space)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="edgecnn-codesign-"))
    t0 = time.perf_counter()
    res = run_codesign(
        space, out, data="mnist", budget_latency_ms=args.budget_latency_ms, workers=args.workers
    )
    wall = time.perf_counter() - t0
    summary = {
        "wall_s": wall,
        "seconds": res.seconds,
        "evaluations": res.evaluations,
        "supernet_reused": res.supernet_reused,
        "hypervolume": res.hypervolume,
        "joint_dominates": res.joint_dominates,
        "coverage_of_baselines": res.coverage_of_baselines,
        "verification": [
            {
                "label": v.label,
                "supernet_pct": round(v.supernet_accuracy * 100, 2),
                "retrained_pct": round(v.retrained_accuracy * 100, 2),
                "difference_pt": round(v.difference_points, 2),
            }
            for v in res.verification
        ],
        "joint_front_size": len(res.joint_front),
        "best_accuracy_pct": max(r["accuracy"] for r in res.joint_front) * 100,
    }
    print(json.dumps(summary, indent=1))
    print(
        f"codesign example space: {wall:.0f} s wall on {args.workers} worker(s) "
        f"(target < 600 s): {'PASS' if wall < 600 else 'FAIL'}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
