"""Built-in small edge CNNs for 1x28x28 input (MNIST-shaped) and their training loop.

Models (registry :data:`EDGE_MODELS` of :class:`EdgeModelSpec`: factory and input size; built
with :func:`build_edge_model`, default input shape from :func:`edge_input_shape`):

* ``edge-resnet`` — ResNet-style: 3x3 stem at 28x28, three stride-2 basic blocks (14x14, 7x7,
  4x4; two 3x3 conv + BN, residual add, 1x1 conv + BN projection shortcut), global average pool,
  linear classifier. Default widths (16, 32, 64): about 80k parameters and 2.8 M MACs per image
  (wide enough that INT8 weights dominate the file size over per-channel scales and graph).
* ``edge-mobilenet`` — MobileNetV2-style: 3x3 stem, inverted residual blocks (1x1 expand,
  3x3 depthwise, 1x1 linear projection, residual add when shapes match), BN everywhere,
  ReLU6 (default) or HardSwish, 1x1 head, global average pool, linear classifier. ``width``
  scales every channel count (``width=0.5`` is the distillation student).

MACs count one multiply-accumulate per weight use (bias and BN ignored).
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from edgecnn.errors import ConfigError
from edgecnn.models._arch import tag_arch

EdgeFactory = Callable[..., nn.Module]


@dataclass(frozen=True)
class EdgeModelSpec:
    """A registered edge model: its factory and the spatial size (H, W) it is built for."""

    name: str
    factory: EdgeFactory
    input_hw: tuple[int, int]

    def input_shape(self, arch_kwargs: dict[str, Any] | None = None) -> tuple[int, ...]:
        """Batch-1 input shape: ``(1, in_channels, H, W)``, channels from ``arch_kwargs`` or the
        factory's ``in_channels`` default."""
        kwargs = arch_kwargs or {}
        default = inspect.signature(self.factory).parameters["in_channels"].default
        return (1, int(kwargs.get("in_channels", default)), *self.input_hw)


EDGE_MODELS: dict[str, EdgeModelSpec] = {}


def register_edge_model(
    name: str, input_hw: tuple[int, int]
) -> Callable[[EdgeFactory], EdgeFactory]:
    """Register a factory (which takes ``in_channels``) under ``name``; a name twice raises."""

    def register(fn: EdgeFactory) -> EdgeFactory:
        if name in EDGE_MODELS:
            raise ConfigError(f"duplicate edge model '{name}'")
        if "in_channels" not in inspect.signature(fn).parameters:
            raise ConfigError(f"edge model '{name}' factory must take an in_channels argument")
        EDGE_MODELS[name] = EdgeModelSpec(name, fn, tuple(input_hw))
        return fn

    return register


def build_edge_model(name: str, **kwargs) -> nn.Module:
    """Build a registered edge model (random init; seed torch first for reproducibility).

    The module carries its architecture as ``_edgecnn_arch`` / ``_edgecnn_arch_kwargs``, which
    :func:`edgecnn.models.resolve.resolve_model` reads for its default input shape.
    """
    if name not in EDGE_MODELS:
        raise ConfigError(f"unknown edge model '{name}': choose one of {sorted(EDGE_MODELS)}")
    try:
        model = EDGE_MODELS[name].factory(**kwargs)
    except TypeError as e:
        raise ConfigError(f"bad arguments for edge model '{name}': {e}") from None
    return tag_arch(model, name, kwargs)


def edge_input_shape(name: str, arch_kwargs: dict[str, Any] | None = None) -> tuple[int, ...]:
    """Default batch-1 input shape of edge model ``name`` built with ``arch_kwargs``."""
    if name not in EDGE_MODELS:
        raise ConfigError(f"unknown edge model '{name}': choose one of {sorted(EDGE_MODELS)}")
    return EDGE_MODELS[name].input_shape(arch_kwargs)


def _act(kind: str) -> nn.Module:
    if kind == "relu6":
        return nn.ReLU6(inplace=False)
    if kind == "hardswish":
        return nn.Hardswish()
    if kind == "relu":
        return nn.ReLU()
    raise ConfigError(f"unknown activation '{kind}': choose relu, relu6 or hardswish")


class BasicBlock(nn.Module):
    """Two 3x3 conv+BN, ReLU, residual add (1x1 conv+BN shortcut when shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )
        else:
            self.shortcut = nn.Identity()
        self.relu2 = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        y = self.relu1(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu2(y + self.shortcut(x))


class EdgeResNet(nn.Module):
    """ResNet-style classifier for ``in_channels x 28 x 28`` input."""

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        widths: tuple[int, ...] | list[int] = (16, 32, 64),
    ) -> None:
        super().__init__()
        widths = list(widths)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(),
        )
        blocks = []
        cin = widths[0]
        for w in widths:
            blocks.append(BasicBlock(cin, w, 2))
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def hint(self, x: Tensor) -> Tensor:
        """Last feature map before pooling (``N x C x 7 x 7``), the hint layer for distillation."""
        return self.blocks(self.stem(x))

    def forward(self, x: Tensor) -> Tensor:
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(self.pool(x), 1))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand + BN + act, 3x3 depthwise + BN + act, 1x1 project + BN."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int, act: str) -> None:
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), _act(act)]
        layers += [
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            _act(act),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)
        self.use_res = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)
        return x + y if self.use_res else y


def _ch(c: float, width: float) -> int:
    return max(4, int(math.ceil(c * width / 4) * 4))


class EdgeMobileNet(nn.Module):
    """MobileNetV2-style classifier for ``in_channels x 28 x 28`` input.

    Block settings ``(expand t, channels c, repeats n, first stride s)``:
    (1, 8, 1, 1), (4, 16, 2, 2), (4, 24, 2, 2), (4, 32, 1, 1); head 1x1 to 64 channels.
    """

    SETTINGS = ((1, 8, 1, 1), (4, 16, 2, 2), (4, 24, 2, 2), (4, 32, 1, 1))

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        width: float = 1.0,
        act: str = "relu6",
        head: int = 64,
    ) -> None:
        super().__init__()
        stem_c = _ch(8, width)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem_c, 3, 1, 1, bias=False), nn.BatchNorm2d(stem_c), _act(act)
        )
        blocks = []
        cin = stem_c
        for t, c, n, s in self.SETTINGS:
            cout = _ch(c, width)
            for i in range(n):
                blocks.append(InvertedResidual(cin, cout, s if i == 0 else 1, t, act))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        head_c = _ch(head, width)
        self.head = nn.Sequential(
            nn.Conv2d(cin, head_c, 1, bias=False), nn.BatchNorm2d(head_c), _act(act)
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(head_c, num_classes)

    def hint(self, x: Tensor) -> Tensor:
        """Last feature map before pooling (``N x C x 7 x 7``), the hint layer for distillation."""
        return self.head(self.blocks(self.stem(x)))

    def forward(self, x: Tensor) -> Tensor:
        x = self.head(self.blocks(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


@register_edge_model("edge-resnet", input_hw=(28, 28))
def edge_resnet(num_classes: int = 10, in_channels: int = 1, widths=(16, 32, 64)) -> nn.Module:
    """ResNet-style edge model (about 80k params, 2.8 M MACs at 28x28 by default)."""
    return EdgeResNet(num_classes, in_channels, tuple(widths))


@register_edge_model("edge-mobilenet", input_hw=(28, 28))
def edge_mobilenet(
    num_classes: int = 10, in_channels: int = 1, width: float = 1.0, act: str = "relu6"
) -> nn.Module:
    """MobileNetV2-style edge model; ``width`` scales channels, ``act`` is relu6 or hardswish."""
    return EdgeMobileNet(num_classes, in_channels, width, act)


# ----------------------------------------------------------------------------- training


LossFn = Callable[[nn.Module, Tensor, Tensor], Tensor]


@dataclass
class TrainResult:
    """Outcome of :func:`train_model`: test accuracy (fraction 0-1), wall time (seconds)."""

    epochs: int
    test_accuracy: float
    train_time_s: float
    history: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "epochs": self.epochs,
            "test_accuracy": self.test_accuracy,
            "train_time_s": self.train_time_s,
            "history": self.history,
        }


def _shift_augment(x: Tensor, gen: torch.Generator, max_shift: int = 2) -> Tensor:
    """Random integer translation by up to ``max_shift`` pixels (zero-padded, per batch)."""
    dx, dy = (int(v) for v in torch.randint(-max_shift, max_shift + 1, (2,), generator=gen))
    if dx == 0 and dy == 0:
        return x
    pad = max_shift
    xp = torch.nn.functional.pad(x, (pad, pad, pad, pad), value=float(x.min()))
    h, w = x.shape[-2:]
    return xp[..., pad + dy : pad + dy + h, pad + dx : pad + dx + w]


@torch.no_grad()
def evaluate(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 500) -> float:
    """Top-1 accuracy (fraction 0-1) of ``model`` in eval mode on ``x``/``y``."""
    was = model.training
    model.eval()
    correct = 0
    for i in range(0, len(y), batch_size):
        correct += int((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
    model.train(was)
    return correct / max(1, len(y))


def train_model(
    model: nn.Module,
    x_train: Tensor,
    y_train: Tensor,
    x_test: Tensor | None = None,
    y_test: Tensor | None = None,
    epochs: int = 12,
    lr: float = 1e-2,
    batch_size: int = 64,
    optimizer: str = "adam",
    seed: int = 0,
    threads: int | None = 2,
    augment: bool = True,
    loss_fn: LossFn | None = None,
    extra_params: list[nn.Parameter] | None = None,
    progress: Callable[[int, int], None] | None = None,
    weight_decay: float = 0.0,
) -> TrainResult:
    """Train ``model`` in place with cross-entropy (or ``loss_fn(model, x, y)``).

    Fixed seeds (``seed`` drives init-independent shuffling and augmentation), cosine learning
    rate decay, optimiser ``adam`` or ``sgd`` (momentum 0.9). ``threads`` sets
    ``torch.set_num_threads`` (``None`` leaves it). ``extra_params`` are optimised too (e.g.
    distillation adapters). ``progress(epoch, epochs)`` is called after every epoch. The previous
    thread count is restored on return, whether training finishes or raises.
    """
    with torch_threads(threads):
        return _train(
            model,
            x_train,
            y_train,
            x_test,
            y_test,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            optimizer=optimizer,
            seed=seed,
            augment=augment,
            loss_fn=loss_fn,
            extra_params=extra_params,
            progress=progress,
            weight_decay=weight_decay,
        )


def _make_optimizer(
    name: str, params: list[nn.Parameter], lr: float, weight_decay: float
) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    raise ConfigError(f"unknown optimizer '{name}': choose adam or sgd")


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(threads)`` (``None``: unchanged), then restore."""
    if threads is None:
        yield
        return
    if threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _train(
    model: nn.Module,
    x_train: Tensor,
    y_train: Tensor,
    x_test: Tensor | None,
    y_test: Tensor | None,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    optimizer: str,
    seed: int,
    augment: bool,
    loss_fn: LossFn | None,
    extra_params: list[nn.Parameter] | None,
    progress: Callable[[int, int], None] | None,
    weight_decay: float,
) -> TrainResult:
    gen = torch.Generator().manual_seed(seed)
    params = list(model.parameters()) + list(extra_params or [])
    opt = _make_optimizer(optimizer, params, lr, weight_decay)
    steps_per_epoch = max(1, math.ceil(len(y_train) / batch_size))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs * steps_per_epoch))
    ce = nn.CrossEntropyLoss()
    t0 = time.perf_counter()
    history = []
    for ep in range(epochs):
        model.train()
        perm = torch.randperm(len(y_train), generator=gen)
        total = 0.0
        for i in range(0, len(perm), batch_size):
            idx = perm[i : i + batch_size]
            xb, yb = x_train[idx], y_train[idx]
            if augment:
                xb = _shift_augment(xb, gen)
            loss = loss_fn(model, xb, yb) if loss_fn is not None else ce(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        entry = {"epoch": ep + 1, "loss": total / len(y_train)}
        history.append(entry)
        if progress is not None:
            progress(ep + 1, epochs)
    model.eval()
    acc = (
        evaluate(model, x_test, y_test)
        if x_test is not None and y_test is not None
        else float("nan")
    )
    return TrainResult(epochs, acc, time.perf_counter() - t0, history)
