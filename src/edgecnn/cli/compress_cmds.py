"""Commands ``train`` and ``compress``, registered on :data:`edgecnn.cli.app.app`."""

from __future__ import annotations

from pathlib import Path

import typer

from edgecnn.cli.app import app
from edgecnn.cli.common import console, print_json


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
