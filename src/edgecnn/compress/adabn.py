"""Adaptive BatchNorm: re-estimate BatchNorm statistics on training images.

After pruning (channels removed, weights changed) or quantization-aware changes, the running
mean/variance a BatchNorm layer stored during training no longer match the activations it sees,
which costs accuracy that no weight update is needed to recover (Li et al., "Revisiting Batch
Normalization For Practical Domain Adaptation", 2016; used by EagleEye, ECCV 2020, to rank pruned
candidates). :func:`reestimate_batchnorm` resets every BatchNorm's running statistics and
recomputes them from ``samples`` images in forward passes only (no gradients, every other layer in
eval mode, so dropout stays off).

Convention: with ``momentum=None`` PyTorch keeps the cumulative average of the per-batch mean and
the per-batch unbiased variance, so with one batch (``batch_size >= len(x)``) the statistics are
exactly the mean and unbiased variance of the layer's input over all the images; with smaller
batches the variance is the average of the batch variances.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The BatchNorm layers of ``model`` that track running statistics."""
    return [m for m in model.modules() if isinstance(m, BATCHNORMS) and m.track_running_stats]


def reestimate_batchnorm(model: nn.Module, x: Tensor, batch_size: int = 100) -> int:
    """Recompute the running statistics of every BatchNorm of ``model`` from images ``x``.

    Returns the number of BatchNorm layers updated (0 leaves the model untouched). The model's
    train/eval mode and each layer's momentum are restored.
    """
    bns = batchnorm_layers(model)
    if not bns or len(x) == 0:
        return 0
    was_training = model.training
    momenta = [m.momentum for m in bns]
    model.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
        m.train()
    try:
        with torch.no_grad():
            for i in range(0, len(x), max(1, batch_size)):
                model(x[i : i + batch_size])
    finally:
        for m, mom in zip(bns, momenta, strict=True):
            m.momentum = mom
        model.train(was_training)
    return len(bns)
