"""Train a built-in model on a dataset spec and save it as a checkpoint (the ``train`` command)."""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from edgecnn.data.loaders import load_data
from edgecnn.errors import ConfigError
from edgecnn.io import check_output_path
from edgecnn.models.checkpoint import save_checkpoint
from edgecnn.models.edge import EDGE_MODELS, build_edge_model, train_model

MAX_WIDTH = 8.0  #: largest width multiplier accepted (the models are sized for MNIST-scale data)


@dataclass
class TrainReport:
    """Result of :func:`train_checkpoint` (accuracy is a fraction 0-1 on the test split)."""

    arch: str
    data: str
    epochs: int
    seed: int
    test_accuracy: float
    train_time_s: float
    params: int
    out: str

    def to_dict(self) -> dict:
        return asdict(self)


def train_checkpoint(
    arch: str,
    out: str | os.PathLike[str],
    epochs: int = 12,
    seed: int = 0,
    data: str = "mnist",
    width: float = 1.0,
    threads: int | None = 2,
    progress: Callable[[int, int], None] | None = None,
) -> TrainReport:
    """Build ``arch`` (seeded), train it on ``data`` and write the checkpoint to ``out``."""
    if arch not in EDGE_MODELS:
        raise ConfigError(f"unknown model '{arch}' for train: choose one of {sorted(EDGE_MODELS)}")
    takes_width = "width" in inspect.signature(EDGE_MODELS[arch].factory).parameters
    if not (math.isfinite(width) and 0 < width <= MAX_WIDTH):
        raise ConfigError(f"--width must be in (0, {MAX_WIDTH}], got {width}")
    if width != 1.0 and not takes_width:
        with_width = sorted(
            n for n, f in EDGE_MODELS.items() if "width" in inspect.signature(f.factory).parameters
        )
        raise ConfigError(
            f"'{arch}' has no width multiplier: drop --width or use {', '.join(with_width)}"
        )
    check_output_path(out)
    splits = load_data(data)
    kwargs: dict = {"num_classes": splits.num_classes, "in_channels": splits.input_shape[1]}
    if width != 1.0:
        kwargs["width"] = width
    torch.manual_seed(seed)
    model = build_edge_model(arch, **kwargs)
    res = train_model(
        model,
        splits.x_train,
        splits.y_train,
        splits.x_test,
        splits.y_test,
        epochs=epochs,
        seed=seed,
        threads=threads,
        progress=progress,
    )
    builtin = str(data).lower() in ("mnist", "mnist5k", "digits")
    extra = {
        "data": splits.name,
        # what `compress`/`demo` pass as --data when none is given
        "data_spec": str(data).lower() if builtin else str(Path(data).resolve()),
        "test_accuracy": res.test_accuracy,
        "epochs": epochs,
        "seed": seed,
    }
    save_checkpoint(model, out, arch, kwargs, extra)
    params = sum(p.numel() for p in model.parameters())
    return TrainReport(
        arch, splits.name, epochs, seed, res.test_accuracy, res.train_time_s, params, str(Path(out))
    )
