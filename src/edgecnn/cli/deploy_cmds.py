"""Command ``deploy``: convert a model for one runtime, check it, time it, write DIR atomically."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from edgecnn.cli.app import app
from edgecnn.cli.common import announcer, console, parse_shape, print_json

RESULT_FILE = "deploy.json"


@app.command()
def deploy(
    model: str = typer.Argument(
        ..., help="torchvision/edge model name, .pt checkpoint or module:factory."
    ),
    runtime: str = typer.Option(
        ..., "--runtime", help="ort, openvino, tflite, ncnn or tvm (pip install -e '.[runtimes]')."
    ),
    out: Path = typer.Option(..., "--out", help="Directory to write (replaced atomically)."),
    precision: str = typer.Option("fp32", "--precision", help="fp32, or int8 (ort, openvino)."),
    threads: int = typer.Option(1, "--threads", min=1, help="Runtime threads for the timing."),
    runs: int = typer.Option(50, "--runs", min=1, help="Timed runs."),
    warmup: int = typer.Option(5, "--warmup", min=0, help="Untimed warm-up runs."),
    input_shape: str = typer.Option(
        None, "--input-shape", help="Input shape, e.g. 1x3x224x224 (default: the model's own)."
    ),
    data: str = typer.Option(
        "mnist", "--data", help="INT8 calibration/evaluation data: mnist, digits or a folder."
    ),
    calib_samples: int = typer.Option(
        200, "--calib-samples", min=1, help="INT8 calibration images."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Convert a model with a runtime's own tools, check it against PyTorch and time it.

    DIR receives the runtime's artifacts and deploy.json (written only when every step
    succeeded). INT8 is calibrated on --data's calibration split.

    Example: edgecnn deploy edge-resnet --runtime openvino --precision int8 --out ov-int8
    """
    from edgecnn.io import atomic_dir, check_output_path
    from edgecnn.runtime.backends import get_backend
    from edgecnn.studies.deploy import run_deploy

    backend = get_backend(runtime)
    backend.check_precision(precision)  # refuse before any slow work
    check_output_path(out, inputs=[model], directory=True)
    say = announcer("deploy", quiet=json_out)
    with atomic_dir(out) as tmp:
        res = run_deploy(
            model,
            runtime,
            tmp,
            precision=precision,
            threads=threads,
            runs=runs,
            warmup=warmup,
            input_shape=parse_shape(input_shape),
            data=data,
            calib_samples=calib_samples,
            on_step=say,
        )
        d = res.to_dict()
        (tmp / RESULT_FILE).write_text(json.dumps(d, indent=2, allow_nan=False))
    if json_out:
        print_json(d)
        return
    c = res.check
    console.print(
        f"{res.model} -> {res.runtime_label} ({res.precision}): wrote {out}/{res.artifact} "
        f"({sum(res.artifacts.values()) / 1e6:.2f} MB in {len(res.artifacts)} file(s)) and {out}/{RESULT_FILE}"
    )
    console.print(
        f"output vs PyTorch on {c.input}: max |error| {c.max_abs_error:.3g} = "
        f"{c.relative_error:.2g} of the output range (allowed {c.relative_tolerance:g})"
    )
    if res.int8_eval:
        e = res.int8_eval
        console.print(
            f"top-1 on {e['samples']} {e['data']} test images: {res.runtime} int8 "
            f"{e['runtime_top1'] * 100:.1f}%, PyTorch fp32 {e['torch_fp32_top1'] * 100:.1f}%, "
            f"agreement {e['top1_agreement'] * 100:.1f}%"
        )
    s = res.latency
    console.print(
        f"latency at {res.threads} thread(s): median {s.median_ms:.3f} ms, p90 {s.p90_ms:.3f} ms, "
        f"min {s.min_ms:.3f} ms ({s.runs} runs)"
    )
    for w in res.warnings:
        console.print(f"warning: {w}")
