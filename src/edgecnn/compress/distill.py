"""Knowledge distillation: Hinton soft labels with temperature, and hint-layer feature distillation.

Soft-label loss (Hinton et al., 2015), with teacher logits ``t``, student logits ``s``,
temperature ``T`` and weight ``alpha``::

    L = alpha * T^2 * KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) * CE(s, y)

(the ``T^2`` keeps gradient magnitudes comparable across temperatures). Hint loss (FitNets): the
student's hint feature map passes through a learned 1x1 conv adapter to the teacher's channel
count (bilinear resize when spatial sizes differ) and is pulled to the teacher's hint map by MSE,
weighted by ``hint_weight``. A model's hint layer is its ``hint(x)`` method (the built-in edge
models have one: the last feature map before pooling).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from edgecnn.errors import ConfigError
from edgecnn.models.edge import evaluate, train_model


def kd_loss(
    student_logits: Tensor, teacher_logits: Tensor, y: Tensor, temperature: float, alpha: float
) -> Tensor:
    """Hinton distillation loss (see the module docstring)."""
    t = temperature
    soft = F.kl_div(
        F.log_softmax(student_logits / t, dim=1),
        F.softmax(teacher_logits / t, dim=1),
        reduction="batchmean",
    )
    return alpha * t * t * soft + (1.0 - alpha) * F.cross_entropy(student_logits, y)


@dataclass
class DistillResult:
    """Student test accuracy (fraction 0-1) with and without the teacher (same budget and seed)."""

    teacher_accuracy: float
    student_accuracy: float
    baseline_accuracy: float | None
    epochs: int
    temperature: float
    alpha: float
    hint_weight: float

    def to_dict(self) -> dict:
        return asdict(self)


def _hint(model: nn.Module, x: Tensor) -> Tensor:
    if not hasattr(model, "hint"):
        raise ConfigError(
            f"hint distillation needs a hint(x) method on {type(model).__name__}: "
            "set hint_weight 0 or use a built-in edge model"
        )
    return model.hint(x)


def distill(
    teacher: nn.Module,
    student: nn.Module,
    x_train: Tensor,
    y_train: Tensor,
    epochs: int = 5,
    temperature: float = 4.0,
    alpha: float = 0.7,
    hint_weight: float = 0.0,
    seed: int = 0,
    lr: float = 1e-2,
    **train_kwargs,
) -> nn.Module:
    """Train ``student`` in place against the frozen ``teacher`` (eval mode); return the student.

    ``hint_weight > 0`` adds feature distillation through a learned 1x1 adapter (created with a
    fixed seed and trained jointly, then discarded).
    """
    if temperature <= 0:
        raise ConfigError(f"temperature must be > 0, got {temperature}")
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha must be in [0, 1], got {alpha}")
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    adapter: nn.Module | None = None
    if hint_weight > 0:
        with torch.no_grad():
            probe = x_train[:2]
            ct = _hint(teacher, probe).shape[1]
            cs = _hint(student, probe).shape[1]
        g = torch.Generator().manual_seed(seed)
        adapter = nn.Conv2d(cs, ct, 1)
        with torch.no_grad():
            adapter.weight.copy_(torch.randn(adapter.weight.shape, generator=g) * (1.0 / cs) ** 0.5)
            adapter.bias.zero_()

    def loss_fn(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        with torch.no_grad():
            t_logits = teacher(x)
        if adapter is None:
            return kd_loss(model(x), t_logits, y, temperature, alpha)
        s_feat = _hint(model, x)
        # the classifier tail is re-run from the hint map only through the normal forward
        s_logits = model(x)
        with torch.no_grad():
            t_feat = _hint(teacher, x)
        a = adapter(s_feat)
        if a.shape[-2:] != t_feat.shape[-2:]:
            a = F.interpolate(a, size=t_feat.shape[-2:], mode="bilinear", align_corners=False)
        return kd_loss(s_logits, t_logits, y, temperature, alpha) + hint_weight * F.mse_loss(
            a, t_feat
        )

    train_model(
        student,
        x_train,
        y_train,
        epochs=epochs,
        seed=seed,
        lr=lr,
        loss_fn=loss_fn,
        extra_params=list(adapter.parameters()) if adapter is not None else None,
        **train_kwargs,
    )
    for p in teacher.parameters():
        p.requires_grad_(True)
    return student.eval()


def compare_with_baseline(
    teacher: nn.Module,
    make_student,
    data,
    epochs: int = 5,
    temperature: float = 4.0,
    alpha: float = 0.7,
    hint_weight: float = 0.0,
    seed: int = 0,
    n_train: int | None = None,
    threads: int | None = 2,
) -> tuple[nn.Module, DistillResult]:
    """Train ``make_student()`` twice from the same seed and budget: alone and with the teacher.

    ``make_student`` builds a fresh student (called after ``torch.manual_seed(seed)`` both times,
    so the initial weights are identical). ``n_train`` limits the training images (a smaller set
    makes the teacher's soft labels matter more). Returns the distilled student and both accuracies.
    """
    xs, ys = data.x_train[:n_train], data.y_train[:n_train]
    torch.manual_seed(seed)
    base = make_student()
    train_model(base, xs, ys, epochs=epochs, seed=seed, threads=threads)
    base_acc = evaluate(base, data.x_test, data.y_test)
    torch.manual_seed(seed)
    student = make_student()
    distill(
        teacher, student, xs, ys, epochs, temperature, alpha, hint_weight, seed, threads=threads
    )
    res = DistillResult(
        evaluate(teacher, data.x_test, data.y_test),
        evaluate(student, data.x_test, data.y_test),
        base_acc,
        epochs,
        temperature,
        alpha,
        hint_weight,
    )
    return student, res
