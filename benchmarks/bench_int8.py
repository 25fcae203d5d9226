"""FP32 vs INT8 (the pipeline's U8S8 QDQ) latency in ONNX Runtime: 1 thread, batch 1, interleaved.

Models: torchvision resnet18 and mobilenet_v2 at 224x224 (random weights: latency does not depend
on the values; calibration uses random normal images) and the built-in MNIST models (trained
briefly so calibration ranges are realistic). For each model the FP32 ONNX export and its INT8
version are timed round-robin in one run (``edgecnn.runtime.bench.interleaved``) and the median
latencies and the FP32/INT8 ratio are printed, with the share of convs ORT runs as integer kernels.

Run under the shared lock:  flock /tmp/edgecnn-heavy.lock python benchmarks/bench_int8.py
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from edgecnn.compress._state import export_compact
from edgecnn.compress.fold import fold_batchnorm
from edgecnn.compress.quantize import QuantConfig, quantize_int8
from edgecnn.runtime.bench import interleaved
from edgecnn.runtime.session import make_session


def _runner(path: Path, shape: tuple[int, ...]):
    sess = make_session(path, threads=1)
    feed = {
        sess.get_inputs()[0].name: np.random.default_rng(0)
        .standard_normal(shape)
        .astype(np.float32)
    }
    return lambda: sess.run(None, feed)


def bench_one(
    name: str, module: torch.nn.Module, shape, calib: np.ndarray, runs: int, tmp: Path, cfg=None
):
    folded, _ = fold_batchnorm(module)
    fp32 = export_compact(folded, tmp / f"{name}.onnx", shape)
    q = quantize_int8(fp32, tmp / f"{name}.int8.onnx", calib, cfg or QuantConfig())
    stats = interleaved(
        {"fp32": _runner(fp32, shape), "int8": _runner(Path(q.path), shape)}, runs=runs, warmup=5
    )
    f, i = stats["fp32"].median_ms, stats["int8"].median_ms
    print(
        f"{name:24s} fp32 {f:9.3f} ms  int8 {i:9.3f} ms  speed-up {f / i:5.2f}x  "
        f"int8 convs {q.int8_convs}/{q.total_convs}  size {fp32.stat().st_size / q.size_bytes:4.2f}x smaller",
        flush=True,
    )
    return f / i


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30, help="timed rounds for the 224x224 models")
    ap.add_argument("--skip-large", action="store_true")
    ap.add_argument("--s8s8", action="store_true", help="also time ORT's documented default S8S8")
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    import torchvision

    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        if not args.skip_large:
            calib = np.random.default_rng(0).standard_normal((8, 3, 224, 224)).astype(np.float32)
            for name in ("resnet18", "mobilenet_v2"):
                m = getattr(torchvision.models, name)(weights=None).eval()
                bench_one(name, m, (1, 3, 224, 224), calib, args.runs, tmp)
                if args.s8s8:
                    bench_one(
                        f"{name} (S8S8)",
                        m,
                        (1, 3, 224, 224),
                        calib,
                        args.runs,
                        tmp,
                        QuantConfig(activation_type="int8"),
                    )
        from edgecnn.data import load_mnist5k_splits
        from edgecnn.models.edge import build_edge_model, train_model

        d = load_mnist5k_splits()
        for name in ("edge-resnet", "edge-mobilenet"):
            torch.manual_seed(0)
            m = build_edge_model(name)
            train_model(m, d.x_train, d.y_train, epochs=2, seed=0)
            bench_one(name, m.eval(), (1, 1, 28, 28), d.x_calib.numpy(), 500, tmp)


if __name__ == "__main__":
    main()
