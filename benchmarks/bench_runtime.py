"""Runtime benchmarks, printed as ratios (run under the shared heavy-work lock).

    flock /tmp/edgecnn-heavy.lock python benchmarks/bench_runtime.py [--runs 30] [--threads 1]

1. Exporters: wall time of ``torch.onnx.export`` TorchScript (``dynamo=False``, our default)
   vs the dynamo exporter, per model.
2. ONNX Runtime vs PyTorch eager, FP32, batch 1, interleaved in one loop (median ratio).
3. INT8 (the compression package's static U8S8 QDQ quantizer) vs FP32 in ORT, interleaved, with
   the fraction of convs ORT runs as integer kernels.
4. Predicted (roofline on host) vs measured for the same models (Spearman, median ratio).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

MODELS = ("resnet18", "mobilenet_v2")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from edgecnn.models.resolve import resolve_model
    from edgecnn.runtime.bench import interleaved
    from edgecnn.runtime.environment import environment_info
    from edgecnn.runtime.export import export_onnx, export_onnx_bytes
    from edgecnn.runtime.session import input_feeds, make_session
    from edgecnn.studies.predicted import predicted_vs_measured

    env = environment_info(args.threads)
    print(
        f"# {env['cpu']} {env['cpu_flags']} | torch {env['torch']} | ORT {env['onnxruntime']} | {args.threads} thread(s)"
    )
    with tempfile.TemporaryDirectory() as d:
        for name in args.models:
            rm = resolve_model(name)
            times = {}
            for exporter in ("torchscript", "dynamo"):
                t0 = time.perf_counter()
                try:
                    export_onnx_bytes(
                        rm.module,
                        rm.input_shape,
                        exporter=exporter,
                        opset=18 if exporter == "dynamo" else 17,
                    )
                    times[exporter] = time.perf_counter() - t0
                except Exception as e:  # report, keep going
                    print(f"{name}: {exporter} export failed: {e}")
            if len(times) == 2:
                print(
                    f"{name}: export torchscript {times['torchscript']:.2f} s, dynamo {times['dynamo']:.2f} s "
                    f"-> torchscript {times['dynamo'] / times['torchscript']:.1f}x faster"
                )
            fp32 = export_onnx(rm.module, Path(d) / f"{name}.onnx", rm.input_shape)
            sess = make_session(fp32, threads=args.threads)
            feeds = input_feeds(sess)
            x = torch.from_numpy(next(iter(feeds.values())))
            module = rm.module

            def eager(m=module, x=x):
                with torch.inference_mode():
                    return m(x)

            cands = {"ort_fp32": lambda s=sess, f=feeds: s.run(None, f), "torch_fp32": eager}
            frac = None
            try:
                from edgecnn.studies.predicted import default_quantizer

                quantize = default_quantizer()
                if quantize is None:
                    raise ImportError("no quantizer")
                quantize(fp32, Path(d) / f"{name}-int8.onnx", rm.input_shape)
                from edgecnn.compress.quantize import int8_conv_report

                n_int, n_all, _ = int8_conv_report(Path(d) / f"{name}-int8.onnx")
                frac = n_int / n_all if n_all else 1.0
                qs = make_session(Path(d) / f"{name}-int8.onnx", threads=args.threads)
                cands["ort_int8"] = lambda s=qs, f=feeds: s.run(None, f)
            except ImportError:
                pass
            lat = interleaved(cands, runs=args.runs, warmup=3)
            med = {k: v.median_ms for k, v in lat.items()}
            line = f"{name}: ORT fp32 {med['ort_fp32']:.2f} ms, eager {med['torch_fp32']:.2f} ms -> ORT/eager speed {med['torch_fp32'] / med['ort_fp32']:.2f}x"
            if "ort_int8" in med:
                line += f"; ORT int8 {med['ort_int8']:.2f} ms -> int8/fp32 speed {med['ort_fp32'] / med['ort_int8']:.2f}x (int8 conv fraction {frac:.2f})"
            print(line)
    pvm = predicted_vs_measured(args.models, threads=args.threads, runs=args.runs)
    for r in pvm.rows:
        print(
            f"{r.model} {r.precision}: predicted {r.predicted_ms:.2f} ms, measured {r.measured_ms:.2f} ms, ratio {r.ratio:.2f}"
        )
    print(
        f"predicted vs measured: Spearman {pvm.spearman:.3f}, median measured/predicted {pvm.median_ratio:.2f}x"
    )


if __name__ == "__main__":
    main()
