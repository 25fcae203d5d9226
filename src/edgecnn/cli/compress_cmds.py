"""Commands ``train`` and ``compress``, registered on :data:`edgecnn.cli.app.app`."""

from __future__ import annotations

from pathlib import Path

import typer

from edgecnn.cli.app import app
from edgecnn.cli.common import console, err_console, print_json


@app.command()
def train(
    arch: str = typer.Argument(..., help="Built-in model: edge-resnet or edge-mobilenet."),
    out: Path = typer.Option(..., "--out", help="Checkpoint file to write (.pt)."),
    epochs: int = typer.Option(12, "--epochs", min=1, help="Training epochs."),
    seed: int = typer.Option(0, "--seed", help="Seed for init, shuffling and augmentation."),
    data: str = typer.Option("mnist", "--data", help="mnist, digits or an ImageFolder directory."),
    width: float = typer.Option(1.0, "--width", help="Width multiplier (edge-mobilenet only)."),
    threads: int = typer.Option(2, "--threads", min=1, help="torch threads."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Train a built-in edge model on real data and write an edgecnn checkpoint.

    Example: edgecnn train edge-resnet --out model.pt --epochs 12 --seed 0
    """
    from edgecnn.cli.common import track
    from edgecnn.compress.train import train_checkpoint

    ticks = iter(track(range(epochs), f"training {arch}", total=epochs, quiet=json_out))
    result = train_checkpoint(
        arch,
        out,
        epochs=epochs,
        seed=seed,
        data=data,
        width=width,
        threads=threads,
        progress=lambda e, n: next(ticks, None),
    )
    for _ in ticks:
        pass
    if json_out:
        print_json(result.to_dict())
        return
    console.print(
        f"{arch}: test accuracy {result.test_accuracy * 100:.2f}% on {result.data} "
        f"({result.epochs} epochs, {result.train_time_s:.1f} s, {result.params} params) -> {out}"
    )


@app.command()
def compress(
    model: str = typer.Argument(..., help="Checkpoint (.pt), ONNX file or torchvision name."),
    recipe: Path = typer.Option(..., "--recipe", help="Recipe YAML (see recipes/)."),
    out: Path = typer.Option(..., "--out", help="Output directory (replaced atomically)."),
    data: str = typer.Option(
        None, "--data", help="mnist, digits or an ImageFolder directory (needed for accuracy)."
    ),
    calib_subset: int = typer.Option(
        None, "--calib-subset", min=1, help="Calibration images (first N of the calibration split)."
    ),
    max_drop: float = typer.Option(
        None,
        "--max-drop",
        help="Mixed precision: max INT8 accuracy loss in points (quantize steps).",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Run a compression recipe (fold, prune, distil, quantize) and report every step.

    Example: edgecnn compress model.pt --recipe recipes/int8.yaml --data mnist --out int8-out
    """
    from rich.table import Table

    from edgecnn.cli.common import announcer, track
    from edgecnn.compress.recipe import load_recipe, run_recipe, with_max_drop
    from edgecnn.data.loaders import load_data
    from edgecnn.io import check_output_path

    check_output_path(out, inputs=[model, recipe, data], directory=True)
    if data is None:
        data = _checkpoint_data(model)
    rec = load_recipe(recipe)
    if max_drop is not None:
        rec = with_max_drop(rec, max_drop)
    splits = load_data(data, calib_subset=calib_subset) if data is not None else None
    report = run_recipe(
        model,
        rec,
        splits,
        out,
        progress=lambda it: track(it, "compressing", total=len(rec.steps), quiet=json_out),
        on_step=announcer("compress", quiet=json_out),
    )
    if json_out:
        print_json(report.to_dict())
        return
    table = Table(title=f"compress {model} -> {out}")
    for col in ("step", "accuracy", "MACs", "params", "size (bytes)", "latency (ms)", "int8 convs"):
        table.add_column(col, justify="right" if col != "step" else "left")
    for s in report.steps:
        acc = "-" if s.accuracy is None else f"{s.accuracy * 100:.2f}%"
        frac = "" if s.int8_conv_fraction is None else f"{s.int8_conv_fraction:.0%}"
        table.add_row(
            s.step,
            acc,
            f"{s.macs:,}",
            f"{s.params:,}",
            f"{s.size_bytes:,}",
            f"{s.latency_ms:.3f}",
            frac,
        )
    console.print(table)
    for s in report.steps:
        for w in getattr(s.details, "warnings", None) or []:
            console.print(f"[yellow]warning[/]: {s.step}: {w}")


def _checkpoint_data(model: str) -> str | None:
    """The dataset an edgecnn checkpoint was trained on (its ``data_spec``), if it records one."""
    if not model.lower().endswith((".pt", ".pth", ".ckpt")) or not Path(model).is_file():
        return None
    from edgecnn.models.checkpoint import load_checkpoint

    spec = load_checkpoint(model)[1]["extra"].get("data_spec")
    if spec:
        err_console.print(f"using the checkpoint's training data: --data {spec}")
    return spec
