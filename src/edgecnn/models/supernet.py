"""An elastic supernet of the built-in edge models (Once-for-All style, weight sharing).

The supernet is ``edge-mobilenet`` made elastic: a 3x3 stride-2 stem, then :data:`STAGES`
stages of inverted residual blocks (1x1 expand, kxk depthwise, 1x1 project; the first block of
stage s has stride ``STAGE_STRIDES[s]``; a block adds its input when the shapes match), global
average pool, linear classifier. Every stage is elastic in

* depth: the first ``d`` of its blocks run (``1 <= d <= max_depth``);
* width: its output channels are the first ``round(w * max_channels)`` (``w`` in
  :data:`WIDTHS`);
* kernel: depthwise kernels are 3 or 5; a 3x3 kernel is the centre of the shared 5x5 weights;
* expansion: hidden channels are the first ``e * in_channels`` of the block's shared expand
  weights (``e`` in :data:`EXPANDS`);

and the input resolution is elastic (:data:`RESOLUTIONS`, the images resized before the stem).
Weights are shared: a subnet takes the *first* channels of every weight tensor, so the supernet
trains all subnets at once (the "sandwich rule": the largest, the smallest and random subnets
every step, :func:`train_supernet`).

:func:`extract_subnet` copies a subnet's slices into a plain :class:`SubNet` of ordinary
``Conv2d``/``BatchNorm2d`` layers (what the frontends, the accelerator model and the runtimes
read); ``SubNet(config)`` built fresh is the same architecture with random weights (the
from-scratch retraining check). Pruning of hidden channels has two forms: :func:`drop_hidden`
keeps the first ``(1 - r)`` of them (elastic, trained by the supernet when its choices include
pruning ratios; what ``codesign`` uses) and :func:`prune_hidden` keeps the ``(1 - r)`` most
important by L1 norm (one-shot pruning of a trained network); ``hidden_keep`` in a config holds
the kept indices.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgecnn.errors import ConfigError

WeightQuantizer = Callable[[Tensor, int], Tensor]
"""``quantizer(weight, bits) -> fake-quantized weight`` (gradient straight through)."""

STAGES = 3
MAX_DEPTH = 3
BLOCK_SLOTS = STAGES * MAX_DEPTH
"""Block slots of the supernet (``stage * MAX_DEPTH + index``): per-block bits and pruning
ratios are tuples of this length; slots past a stage's depth do not run and are ignored."""


BLOCK_CONVS = ("expand", "dw", "project")
"""A block's convolutions, in order: per-layer weight bits have one slot each."""
LAYER_SLOTS = BLOCK_SLOTS * len(BLOCK_CONVS)
"""Conv-layer slots of the blocks (:func:`layer_slot`): per-layer weight bits are tuples of
this length."""


def block_slot(stage: int, index: int) -> int:
    """The slot of block ``index`` of ``stage`` in per-block tuples."""
    return stage * MAX_DEPTH + index


def layer_slot(stage: int, index: int, conv: str) -> int:
    """The slot of conv ``conv`` (one of :data:`BLOCK_CONVS`) of a block in per-layer tuples."""
    return block_slot(stage, index) * len(BLOCK_CONVS) + BLOCK_CONVS.index(conv)


MAX_CHANNELS = (16, 32, 48)
STAGE_STRIDES = (1, 2, 2)
STEM_CHANNELS = 16
KERNELS = (3, 5)
EXPANDS = (2, 3, 4)
WIDTHS = (0.5, 0.75, 1.0)
RESOLUTIONS = (20, 24, 28)
NUM_CLASSES = 10


@dataclass(frozen=True)
class SubnetConfig:
    """One subnet: per stage depth, width, kernel and expansion, plus the input resolution.

    ``hidden_keep`` (optional) lists, per block that runs, the indices of the hidden channels
    kept after pruning (otherwise the first ``expand * in_channels``).
    """

    depths: tuple[int, ...] = (MAX_DEPTH,) * STAGES
    widths: tuple[float, ...] = (1.0,) * STAGES
    kernels: tuple[int, ...] = (5,) * STAGES
    expands: tuple[int, ...] = (max(EXPANDS),) * STAGES
    resolution: int = max(RESOLUTIONS)
    in_channels: int = 1
    hidden_keep: tuple[tuple[int, ...], ...] | None = field(default=None, compare=True)

    def __post_init__(self) -> None:
        for name in ("depths", "widths", "kernels", "expands"):
            v = tuple(getattr(self, name))
            object.__setattr__(self, name, v)
            if len(v) != STAGES:
                raise ConfigError(f"subnet {name} needs {STAGES} values, got {len(v)}")
        if any(not 1 <= d <= MAX_DEPTH for d in self.depths):
            raise ConfigError(f"subnet depths must be 1..{MAX_DEPTH}, got {self.depths}")
        if any(w not in WIDTHS for w in self.widths):
            raise ConfigError(f"subnet widths must be among {WIDTHS}, got {self.widths}")
        if any(k not in KERNELS for k in self.kernels):
            raise ConfigError(f"subnet kernels must be among {KERNELS}, got {self.kernels}")
        if any(e not in EXPANDS for e in self.expands):
            raise ConfigError(f"subnet expands must be among {EXPANDS}, got {self.expands}")
        if self.resolution not in RESOLUTIONS:
            raise ConfigError(f"subnet resolution must be among {RESOLUTIONS}")
        if self.hidden_keep is not None:
            object.__setattr__(
                self, "hidden_keep", tuple(tuple(int(i) for i in k) for k in self.hidden_keep)
            )
            if len(self.hidden_keep) != sum(self.depths):
                raise ConfigError("hidden_keep needs one channel list per block that runs")

    def stage_channels(self) -> tuple[int, ...]:
        return tuple(max(1, round(w * c)) for w, c in zip(self.widths, MAX_CHANNELS, strict=True))

    def blocks(self) -> list[tuple[int, int, int, int, int, int]]:
        """``(stage, index, in_ch, out_ch, stride, kernel)`` of every block that runs."""
        out = []
        cin = STEM_CHANNELS
        for s, (d, cout, k) in enumerate(
            zip(self.depths, self.stage_channels(), self.kernels, strict=True)
        ):
            for i in range(d):
                out.append((s, i, cin, cout, STAGE_STRIDES[s] if i == 0 else 1, k))
                cin = cout
        return out

    def hidden(self) -> list[list[int]]:
        """Kept hidden-channel indices of every block that runs."""
        if self.hidden_keep is not None:
            return [list(k) for k in self.hidden_keep]
        return [list(range(self.expands[s] * cin)) for s, _, cin, _, _, _ in self.blocks()]

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("depths", "widths", "kernels", "expands"):
            d[k] = list(d[k])
        if d["hidden_keep"] is not None:
            d["hidden_keep"] = [list(x) for x in d["hidden_keep"]]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SubnetConfig:
        keep = d.get("hidden_keep")
        return cls(
            depths=tuple(d["depths"]),
            widths=tuple(float(w) for w in d["widths"]),
            kernels=tuple(d["kernels"]),
            expands=tuple(d["expands"]),
            resolution=int(d["resolution"]),
            in_channels=int(d.get("in_channels", 1)),
            hidden_keep=tuple(tuple(x) for x in keep) if keep is not None else None,
        )


def largest_config(in_channels: int = 1) -> SubnetConfig:
    return SubnetConfig(in_channels=in_channels)


def smallest_config(in_channels: int = 1) -> SubnetConfig:
    return SubnetConfig(
        depths=(1,) * STAGES,
        widths=(min(WIDTHS),) * STAGES,
        kernels=(min(KERNELS),) * STAGES,
        expands=(min(EXPANDS),) * STAGES,
        resolution=min(RESOLUTIONS),
        in_channels=in_channels,
    )


@dataclass(frozen=True)
class ElasticChoices:
    """The values a search may pick per stage (a subset of the supernet's), for training."""

    depths: tuple[int, ...] = tuple(range(1, MAX_DEPTH + 1))
    widths: tuple[float, ...] = WIDTHS
    kernels: tuple[int, ...] = KERNELS
    expands: tuple[int, ...] = EXPANDS
    resolutions: tuple[int, ...] = RESOLUTIONS
    prunes: tuple[float, ...] = (0.0,)
    bits: tuple[int, ...] = (32,)  # weight bits a block may get; >= 16: not quantized

    def smallest_bits(self) -> tuple[int, ...]:
        return (min(self.bits),) * LAYER_SLOTS

    def sample_bits(self, rng: random.Random) -> tuple[int, ...]:
        """Random weight bits per conv-layer slot."""
        return tuple(rng.choice(self.bits) for _ in range(LAYER_SLOTS))

    def largest(self, in_channels: int = 1) -> SubnetConfig:
        cfg = SubnetConfig(
            depths=(max(self.depths),) * STAGES,
            widths=(max(self.widths),) * STAGES,
            kernels=(max(self.kernels),) * STAGES,
            expands=(max(self.expands),) * STAGES,
            resolution=max(self.resolutions),
            in_channels=in_channels,
        )
        return drop_hidden(cfg, (min(self.prunes),) * BLOCK_SLOTS)

    def smallest(self, in_channels: int = 1) -> SubnetConfig:
        cfg = SubnetConfig(
            depths=(min(self.depths),) * STAGES,
            widths=(min(self.widths),) * STAGES,
            kernels=(min(self.kernels),) * STAGES,
            expands=(min(self.expands),) * STAGES,
            resolution=min(self.resolutions),
            in_channels=in_channels,
        )
        return drop_hidden(cfg, (max(self.prunes),) * BLOCK_SLOTS)

    def sample(self, rng: random.Random, in_channels: int = 1) -> SubnetConfig:
        cfg = SubnetConfig(
            depths=tuple(rng.choice(self.depths) for _ in range(STAGES)),
            widths=tuple(rng.choice(self.widths) for _ in range(STAGES)),
            kernels=tuple(rng.choice(self.kernels) for _ in range(STAGES)),
            expands=tuple(rng.choice(self.expands) for _ in range(STAGES)),
            resolution=rng.choice(self.resolutions),
            in_channels=in_channels,
        )
        return drop_hidden(cfg, tuple(rng.choice(self.prunes) for _ in range(BLOCK_SLOTS)))


def pruned_hidden_count(hidden: int, ratio: float) -> int:
    """Hidden channels kept when a fraction ``ratio`` is pruned: ``round((1 - r) * n)``, >= 1."""
    return max(1, round((1 - ratio) * hidden))


def drop_hidden(config: SubnetConfig, ratios: tuple[float, ...]) -> SubnetConfig:
    """``config`` with each block's trailing hidden channels dropped by its own ratio
    (``ratios`` per block slot, :func:`block_slot`; slots of blocks that do not run are ignored).

    The elastic-width form of structured pruning (as OFA's elastic expansion): the supernet
    trains its subnets with these counts, so the first channels are the ones it keeps. Ratio 0
    everywhere returns ``config`` unchanged."""
    if len(ratios) != BLOCK_SLOTS or any(not 0 <= r < 1 for r in ratios):
        raise ConfigError(
            f"pruning ratios need {BLOCK_SLOTS} values (one per block slot) in [0, 1), got {ratios}"
        )
    blocks = config.blocks()
    if all(ratios[block_slot(b[0], b[1])] == 0 for b in blocks):
        return config
    keep = [
        tuple(k[: pruned_hidden_count(len(k), ratios[block_slot(b[0], b[1])])])
        for b, k in zip(blocks, config.hidden(), strict=True)
    ]
    return replace(config, hidden_keep=tuple(keep))


def random_config(rng: random.Random, in_channels: int = 1) -> SubnetConfig:
    return SubnetConfig(
        depths=tuple(rng.randint(1, MAX_DEPTH) for _ in range(STAGES)),
        widths=tuple(rng.choice(WIDTHS) for _ in range(STAGES)),
        kernels=tuple(rng.choice(KERNELS) for _ in range(STAGES)),
        expands=tuple(rng.choice(EXPANDS) for _ in range(STAGES)),
        resolution=rng.choice(RESOLUTIONS),
        in_channels=in_channels,
    )


# ---------------------------------------------------------------------------------------------
# the plain subnet


class SubBlock(nn.Module):
    """Inverted residual: 1x1 expand + BN + ReLU6, kxk depthwise + BN + ReLU6, 1x1 project + BN."""

    def __init__(self, cin: int, hidden: int, cout: int, stride: int, kernel: int) -> None:
        super().__init__()
        self.expand = nn.Conv2d(cin, hidden, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.dw = nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden, bias=False)
        self.bn2 = nn.BatchNorm2d(hidden)
        self.project = nn.Conv2d(hidden, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.act = nn.ReLU6()
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = self.act(self.bn1(self.expand(x)))
        y = self.act(self.bn2(self.dw(y)))
        y = self.bn3(self.project(y))
        return x + y if self.residual else y


class SubNet(nn.Module):
    """A static subnet of the supernet (random weights until :func:`extract_subnet` fills them).

    Layer names: ``stem.*``, ``stages.S.I.*`` (stage S, block I), ``classifier``.
    """

    def __init__(self, config: SubnetConfig, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.config = config
        self.stem = nn.Sequential(
            nn.Conv2d(config.in_channels, STEM_CHANNELS, 3, 2, 1, bias=False),
            nn.BatchNorm2d(STEM_CHANNELS),
            nn.ReLU6(),
        )
        stages: list[list[nn.Module]] = [[] for _ in range(STAGES)]
        for (s, _, cin, cout, stride, k), keep in zip(
            config.blocks(), config.hidden(), strict=True
        ):
            stages[s].append(SubBlock(cin, len(keep), cout, stride, k))
        self.stages = nn.ModuleList(nn.Sequential(*b) for b in stages)
        self.classifier = nn.Linear(config.stage_channels()[-1], num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.classifier(x.mean((2, 3)))


# ---------------------------------------------------------------------------------------------
# the supernet


class _ElasticBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        hidden = cin * max(EXPANDS)
        k = max(KERNELS)
        self.expand = nn.Parameter(torch.empty(hidden, cin, 1, 1))
        self.dw = nn.Parameter(torch.empty(hidden, 1, k, k))
        self.project = nn.Parameter(torch.empty(cout, hidden, 1, 1))
        for w in (self.expand, self.dw, self.project):
            nn.init.kaiming_normal_(w, mode="fan_out")
        self.bn1 = nn.BatchNorm2d(hidden)
        self.bn2 = nn.BatchNorm2d(hidden)
        self.bn3 = nn.BatchNorm2d(cout)


def _index(keep: list[int]) -> Tensor | slice:
    """A slice for the first ``n`` channels (views, no copies), else an index tensor."""
    if keep == list(range(len(keep))):
        return slice(0, len(keep))
    return torch.as_tensor(keep, dtype=torch.long)


def _bn(x: Tensor, bn: nn.BatchNorm2d, idx: Tensor | slice, training: bool) -> Tensor:
    """BatchNorm on the first/selected channels of a shared BN (running stats updated in place)."""
    if isinstance(idx, slice):  # index with a tensor: the statistics must be copies, not views
        idx = torch.arange(bn.num_features)[idx]
    rm, rv = bn.running_mean[idx], bn.running_var[idx]
    y = F.batch_norm(x, rm, rv, bn.weight[idx], bn.bias[idx], training, bn.momentum, bn.eps)
    if training:  # indexing copied the buffers: write the updated statistics back
        with torch.no_grad():
            bn.running_mean[idx] = rm
            bn.running_var[idx] = rv
    return y


class ElasticSuperNet(nn.Module):
    """The supernet: the largest subnet's weights, sliced per :class:`SubnetConfig`."""

    def __init__(self, in_channels: int = 1, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.stem = nn.Parameter(torch.empty(STEM_CHANNELS, in_channels, 3, 3))
        nn.init.kaiming_normal_(self.stem, mode="fan_out")
        self.stem_bn = nn.BatchNorm2d(STEM_CHANNELS)
        blocks = []
        cin = STEM_CHANNELS
        for cout in MAX_CHANNELS:
            stage = []
            for i in range(MAX_DEPTH):
                stage.append(_ElasticBlock(cin if i == 0 else cout, cout))
            blocks.append(nn.ModuleList(stage))
            cin = cout
        self.stages = nn.ModuleList(blocks)
        self.classifier = nn.Linear(MAX_CHANNELS[-1], num_classes)

    def forward(
        self,
        x: Tensor,
        config: SubnetConfig | None = None,
        bits: Sequence[int] | None = None,
        quantizer: WeightQuantizer | None = None,
    ) -> Tensor:
        """Run the subnet ``config`` (default: the largest) on ``x`` already at its resolution.

        ``bits`` (per conv-layer slot, :func:`layer_slot`) with ``quantizer(weight, bits)``: each
        conv's weights are
        fake-quantized (``bits < 16``) as the forward reads them, for quantization-aware
        training of the shared weights; the stem and classifier stay in floating point."""
        cfg = config or largest_config(self.in_channels)
        t = self.training

        def q(w: Tensor, slot: int) -> Tensor:
            if bits is None or quantizer is None or bits[slot] >= 16:
                return w
            return quantizer(w, bits[slot])

        x = F.relu6(_bn(F.conv2d(x, self.stem, stride=2, padding=1), self.stem_bn, slice(None), t))
        for (s, i, cin, cout, stride, k), keep in zip(cfg.blocks(), cfg.hidden(), strict=True):
            b = self.stages[s][i]
            h = _index(keep)
            off = (max(KERNELS) - k) // 2
            y = F.conv2d(x, q(b.expand[h][:, :cin], layer_slot(s, i, "expand")))
            y = F.relu6(_bn(y, b.bn1, h, t))
            dw = b.dw[h][:, :, off : off + k, off : off + k]
            y = F.conv2d(
                y, q(dw, layer_slot(s, i, "dw")), stride=stride, padding=k // 2, groups=len(keep)
            )
            y = F.relu6(_bn(y, b.bn2, h, t))
            y = F.conv2d(y, q(b.project[:cout][:, h], layer_slot(s, i, "project")))
            y = _bn(y, b.bn3, slice(0, cout), t)
            x = x + y if stride == 1 and cin == cout else y
        w = self.classifier.weight[:, : x.shape[1]]
        return F.linear(x.mean((2, 3)), w, self.classifier.bias)


def extract_subnet(supernet: ElasticSuperNet, config: SubnetConfig) -> SubNet:
    """A plain :class:`SubNet` holding ``config``'s slices of the supernet's weights and BN."""
    net = SubNet(config)
    with torch.no_grad():
        net.stem[0].weight.copy_(supernet.stem)
        net.stem[1].load_state_dict(supernet.stem_bn.state_dict())
        blocks = [blk for stage in net.stages for blk in stage]
        for blk, (s, i, cin, cout, _, k), keep in zip(
            blocks, config.blocks(), config.hidden(), strict=True
        ):
            src = supernet.stages[s][i]
            h = torch.as_tensor(keep, dtype=torch.long)
            off = (max(KERNELS) - k) // 2
            blk.expand.weight.copy_(src.expand[h][:, :cin])
            blk.dw.weight.copy_(src.dw[h][:, :, off : off + k, off : off + k])
            blk.project.weight.copy_(src.project[:cout][:, h])
            for dst, bn, idx in ((blk.bn1, src.bn1, h), (blk.bn2, src.bn2, h)):
                _copy_bn(dst, bn, idx)
            _copy_bn(blk.bn3, src.bn3, torch.arange(cout))
        c = config.stage_channels()[-1]
        net.classifier.weight.copy_(supernet.classifier.weight[:, :c])
        net.classifier.bias.copy_(supernet.classifier.bias)
    return net


def _copy_bn(dst: nn.BatchNorm2d, src: nn.BatchNorm2d, idx: Tensor) -> None:
    dst.weight.copy_(src.weight[idx])
    dst.bias.copy_(src.bias[idx])
    dst.running_mean.copy_(src.running_mean[idx])
    dst.running_var.copy_(src.running_var[idx])


def prune_hidden(supernet: ElasticSuperNet, config: SubnetConfig, ratios: tuple[float, ...]):
    """``config`` with each block's hidden channels pruned by its own ratio (0 <= r < 1;
    ``ratios`` per block slot, as :func:`drop_hidden`).

    Structured pruning by importance: a hidden channel's score is the L1 norm of its expand
    row times the L1 norm of its project column (both sliced as the subnet uses them); the
    ``round((1 - r) * hidden)`` best channels are kept (at least one).
    """
    if len(ratios) != BLOCK_SLOTS or any(not 0 <= r < 1 for r in ratios):
        raise ConfigError(
            f"pruning ratios need {BLOCK_SLOTS} values (one per block slot) in [0, 1), got {ratios}"
        )
    keep_all: list[tuple[int, ...]] = []
    for (s, i, cin, cout, _, _), keep in zip(config.blocks(), config.hidden(), strict=True):
        b = supernet.stages[s][i]
        h = torch.as_tensor(keep, dtype=torch.long)
        with torch.no_grad():
            score = b.expand[h][:, :cin].abs().sum((1, 2, 3)) * b.project[:cout][:, h].abs().sum(
                (0, 2, 3)
            )
        n = pruned_hidden_count(len(keep), ratios[block_slot(s, i)])
        best = torch.topk(score, n).indices.sort().values
        keep_all.append(tuple(int(keep[j]) for j in best))
    return replace(config, hidden_keep=tuple(keep_all))


def resize(x: Tensor, resolution: int) -> Tensor:
    """Images ``N x C x H x W`` resized to ``resolution`` (bilinear, antialiased when shrinking)."""
    if x.shape[-1] == resolution and x.shape[-2] == resolution:
        return x
    return F.interpolate(x, size=(resolution, resolution), mode="bilinear", antialias=True)


@dataclass(frozen=True)
class SupernetTraining:
    """What :func:`train_supernet` did: epochs, steps, seconds, and the largest/smallest accuracy."""

    epochs: int
    steps: int
    seconds: float
    subnets_per_step: int
    largest_accuracy: float | None = None
    smallest_accuracy: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def train_supernet(
    supernet: ElasticSuperNet,
    x: Tensor,
    y: Tensor,
    epochs: int = 6,
    lr: float = 3e-3,
    batch_size: int = 64,
    random_subnets: int = 2,
    seed: int = 0,
    on_epoch=None,
    choices: ElasticChoices | None = None,
    label_weight: float = 0.0,
    quantizer: WeightQuantizer | None = None,
) -> SupernetTraining:
    """Sandwich-rule training with in-place distillation (OFA, BigNAS): each step trains the
    largest subnet on the labels and the smallest plus ``random_subnets`` random subnets on the
    largest's soft predictions (each subnet at its own resolution); Adam, cosine schedule.
    ``choices`` restricts the subnets trained to a search space (default: every subnet).
    ``label_weight`` mixes the labels into the smaller subnets' loss:
    ``(1 - w) * CE(soft) + w * CE(labels)`` (0: pure in-place distillation; a short training
    has an immature teacher, and some label signal helps the small subnets). With a
    ``quantizer`` the smaller subnets are trained quantization-aware: the smallest at the
    lowest of ``choices.bits`` in every layer, each random subnet at random bits per layer
    (the largest, the teacher, stays in floating point)."""
    import time

    torch.manual_seed(seed)
    rng = random.Random(seed)
    opt = torch.optim.Adam(supernet.parameters(), lr=lr)
    steps_per_epoch = (len(y) + batch_size - 1) // batch_size
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * steps_per_epoch)
    ch = choices or ElasticChoices()
    big, small = ch.largest(supernet.in_channels), ch.smallest(supernet.in_channels)
    t0 = time.perf_counter()
    steps = 0
    supernet.train()
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        perm = torch.randperm(len(y), generator=gen)
        for j in range(0, len(y), batch_size):
            idx = perm[j : j + batch_size]
            xb, yb = x[idx], y[idx]
            opt.zero_grad()
            cfgs = [(small, ch.smallest_bits())] + [
                (ch.sample(rng, supernet.in_channels), ch.sample_bits(rng))
                for _ in range(random_subnets)
            ]
            logits = supernet(resize(xb, big.resolution), big)
            F.cross_entropy(logits, yb).backward()
            soft = F.softmax(logits.detach(), 1)
            for cfg, bits in cfgs:  # in-place distillation: the largest teaches the others
                out = supernet(resize(xb, cfg.resolution), cfg, bits, quantizer)
                loss = F.cross_entropy(out, soft)
                if label_weight:
                    loss = (1 - label_weight) * loss + label_weight * F.cross_entropy(out, yb)
                loss.backward()
            opt.step()
            sched.step()
            steps += 1
        if on_epoch is not None:
            on_epoch(epoch)
    supernet.eval()
    return SupernetTraining(
        epochs=epochs,
        steps=steps,
        seconds=time.perf_counter() - t0,
        subnets_per_step=2 + random_subnets,
    )
