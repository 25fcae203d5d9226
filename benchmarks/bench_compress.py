"""Compression acceptance figures on MNIST-5k with the built-in models (fixed seeds).

Prints: training time and test accuracy of edge-resnet / edge-mobilenet (12 epochs, 2 threads);
INT8 PTQ of edge-resnet (accuracy drop, size ratio, int8_conv_fraction); structured pruning to
half the MACs with fine-tuning (accuracy drop, ORT latency before/after, interleaved); the
distilled student against the same student trained alone; PTQ vs QAT on the constructed low-bit
case (3-bit per-tensor weights, 8-bit activations, simulated).

Run under the shared lock:  flock /tmp/edgecnn-heavy.lock python benchmarks/bench_compress.py
"""

from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from edgecnn.compress._state import export_compact
from edgecnn.compress.distill import compare_with_baseline
from edgecnn.compress.fakequant import FakeQuantConfig, calibrate, prepare, simulated_accuracy
from edgecnn.compress.fold import fold_batchnorm
from edgecnn.compress.prune import count_macs, structured_prune
from edgecnn.compress.quantize import onnx_accuracy, quantize_int8
from edgecnn.data import load_mnist5k_splits
from edgecnn.models.edge import build_edge_model, evaluate, train_model
from edgecnn.runtime.bench import interleaved
from edgecnn.runtime.session import make_session

SHAPE = (1, 1, 28, 28)


def runner(path: Path):
    s = make_session(path, threads=1)
    feed = {s.get_inputs()[0].name: np.zeros(SHAPE, np.float32)}
    return lambda: s.run(None, feed)


def main() -> None:
    d = load_mnist5k_splits()
    models = {}
    for name in ("edge-resnet", "edge-mobilenet"):
        torch.manual_seed(0)
        m = build_edge_model(name)
        r = train_model(m, d.x_train, d.y_train, d.x_test, d.y_test, epochs=12, seed=0, threads=2)
        models[name] = m
        print(
            f"train {name:15s} 12 epochs: test accuracy {r.test_accuracy * 100:.1f}%  time {r.train_time_s:.1f} s",
            flush=True,
        )
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        res = models["edge-resnet"]
        fp = export_compact(fold_batchnorm(res)[0], tmp / "fp32.onnx", SHAPE)
        q = quantize_int8(fp, tmp / "int8.onnx", d.x_calib)
        a32, a8 = (
            onnx_accuracy(fp, d.x_test, d.y_test),
            onnx_accuracy(tmp / "int8.onnx", d.x_test, d.y_test),
        )
        print(
            f"PTQ edge-resnet U8S8: fp32 {a32 * 100:.1f}%  int8 {a8 * 100:.1f}%  drop {(a32 - a8) * 100:.2f} pt  "
            f"size {fp.stat().st_size / q.size_bytes:.2f}x smaller  int8_conv_fraction {q.int8_conv_fraction:.2f}",
            flush=True,
        )

        for name, m in models.items():

            def ft(model, r):
                train_model(model, d.x_train, d.y_train, epochs=2, lr=5e-3, seed=r, threads=1)
                return evaluate(model, d.x_test, d.y_test)

            base = evaluate(m, d.x_test, d.y_test)
            p, pr = structured_prune(m, SHAPE, 0.5, "l1", rounds=2, finetune=ft, round_to=8)
            after = evaluate(p, d.x_test, d.y_test)
            f0 = export_compact(fold_batchnorm(m)[0], tmp / f"{name}-dense.onnx", SHAPE)
            f1 = export_compact(fold_batchnorm(p)[0], tmp / f"{name}-pruned.onnx", SHAPE)
            lat = interleaved({"dense": runner(f0), "pruned": runner(f1)}, runs=2000, warmup=100)
            print(
                f"prune {name:15s}: MACs {count_macs(m, SHAPE):,} -> {count_macs(p, SHAPE):,} "
                f"({pr.macs_reduction * 100:.0f}% less)  accuracy {base * 100:.1f}% -> {after * 100:.1f}%  "
                f"ORT latency {lat['dense'].median_ms * 1e3:.1f} us -> {lat['pruned'].median_ms * 1e3:.1f} us",
                flush=True,
            )

        for seed in (0, 1):
            for hint in (0.0, 1.0):
                _, kd = compare_with_baseline(
                    copy.deepcopy(res),
                    lambda: build_edge_model("edge-mobilenet", width=0.5),
                    d,
                    epochs=50,
                    temperature=4.0,
                    alpha=0.9,
                    hint_weight=hint,
                    seed=seed,
                    n_train=300,
                    threads=1,
                )
                print(
                    f"distill seed {seed} hint {hint}: teacher {kd.teacher_accuracy * 100:.1f}%  "
                    f"student with teacher {kd.student_accuracy * 100:.1f}%  alone {kd.baseline_accuracy * 100:.1f}%",
                    flush=True,
                )

        cfg = FakeQuantConfig(weight_bits=3, act_bits=8, per_channel=False)
        qm = calibrate(prepare(res, cfg), d.x_calib)
        ptq = simulated_accuracy(qm, d.x_test, d.y_test)
        t0 = time.perf_counter()
        train_model(qm, d.x_train, d.y_train, epochs=1, lr=1e-3, seed=0, threads=1)
        qat = simulated_accuracy(qm.eval(), d.x_test, d.y_test)
        fpa = evaluate(res, d.x_test, d.y_test)
        print(
            f"W3(per-tensor)A8 simulated: float {fpa * 100:.1f}%  PTQ {ptq * 100:.1f}%  QAT(1 epoch, "
            f"{time.perf_counter() - t0:.1f} s) {qat * 100:.1f}%  recovered {(qat - ptq) / max(fpa - ptq, 1e-9) * 100:.0f}% of the loss",
            flush=True,
        )


if __name__ == "__main__":
    main()
