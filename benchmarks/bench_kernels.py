"""Conv algorithms vs torch.nn.functional.conv2d (oneDNN), single-threaded, interleaved.

    flock /tmp/edgecnn-heavy.lock python benchmarks/bench_kernels.py [--repeats 7] [--threads 1]
        [--layers r50-conv3-3x3 ...] [--batches 1 8] [--json out.json]

Prints, per layer and batch, each algorithm's median time, effective GFLOP/s (2*MACs of the
direct convolution / time) and its time ratio to oneDNN, then the acceptance check of issue 5:
on ResNet-50's stride-1 3x3 layers with >= 128 channels at batch 8, Winograd F(4x4,3x3) within
1.5x of oneDNN's time and im2col + GEMM within 1.3x.
"""

from __future__ import annotations

import argparse
import json
import platform

import torch

from edgecnn.kernels.bench import BENCH_ALGORITHMS, BENCH_LAYERS, bench_layers

TARGET_LAYERS = ("r50-conv3-3x3", "r50-conv4-3x3", "r50-conv5-3x3")
TARGETS = {"winograd_f4": 1.5, "im2col": 1.3}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--layers", nargs="*", default=list(BENCH_LAYERS))
    ap.add_argument("--batches", nargs="*", type=int, default=[1, 8])
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = ap.parse_args()
    layers = {name: BENCH_LAYERS.get(name, name) for name in args.layers}
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"threads={args.threads}, repeats={args.repeats} (median)"
    )
    result = bench_layers(
        layers,
        tuple(args.batches),
        BENCH_ALGORITHMS,
        args.repeats,
        args.threads,
        progress=lambda msg: print(f"  ... {msg}", flush=True),
    )
    print(f"{'layer':16} {'b':>2} {'algorithm':12} {'ms':>9} {'GFLOP/s':>8} {'x oneDNN':>8}")
    for r in result.rows:
        if r.time_s is None:
            print(
                f"{r.layer:16} {r.batch:>2} {r.algorithm:12} {'n/a':>9}  ({r.note.split(';')[0]})"
            )
        else:
            print(
                f"{r.layer:16} {r.batch:>2} {r.algorithm:12} {r.time_s * 1e3:9.2f} "
                f"{r.gflops:8.1f} {r.ratio_to_onednn:8.2f}"
            )
    checked = [
        r
        for r in result.rows
        if r.layer in TARGET_LAYERS
        and r.batch == 8
        and r.algorithm in TARGETS
        and r.ratio_to_onednn is not None
    ]
    if checked:
        print("\nacceptance (ResNet-50 3x3, >= 128 channels, batch 8):")
        for r in checked:
            ok = r.ratio_to_onednn <= TARGETS[r.algorithm]
            print(
                f"  {r.layer:16} {r.algorithm:12} {r.ratio_to_onednn:5.2f}x oneDNN "
                f"(target <= {TARGETS[r.algorithm]}x): {'PASS' if ok else 'FAIL'}"
            )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result.to_dict(), fh, indent=2)


if __name__ == "__main__":
    main()
