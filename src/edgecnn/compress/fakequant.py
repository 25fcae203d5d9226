"""PyTorch fake-quantization: an INT-n simulator for analysis (SQNR, error accumulation) and QAT.

The simulator mirrors the ONNX Runtime QDQ models :mod:`edgecnn.compress.quantize` builds: the
input activation of every conv/linear is quantized per tensor, asymmetric, unsigned
(``act_bits``, range = observed min/max including 0), and its weight symmetric signed
(``weight_bits``, per output channel or per tensor, scale = max|w| / (2^(b-1) - 1)). BN must be
folded first (:func:`prepare` folds it), as in the deployed model.

SQNR of a layer output ``y`` against its float reference ``r``: ``10 log10(sum r^2 / sum (r-y)^2)``
in dB. *Isolated* SQNR quantizes only that layer (float inputs); *accumulated* SQNR quantizes every
layer up to and including it, showing how error builds up with depth.

QAT trains through the fake quantizers with the straight-through estimator (PyTorch's
``fake_quantize_*`` ops pass gradients through inside the range), activation ranges tracked by an
exponential moving average of batch min/max, BN folded before training. The trained float weights
are exported to ONNX and quantized by ORT with the same scheme (symmetric min/max weights, min/max
activation calibration), so the deployed QDQ model is the one QAT trained for.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from edgecnn.compress.fold import fold_batchnorm
from edgecnn.errors import ConfigError


@dataclass(frozen=True)
class FakeQuantConfig:
    """Bit widths and granularity of the simulated quantization."""

    weight_bits: int = 8
    act_bits: int = 8
    per_channel: bool = True

    def __post_init__(self) -> None:
        for n in ("weight_bits", "act_bits"):
            if not 2 <= getattr(self, n) <= 16:
                raise ConfigError(f"{n} must be between 2 and 16, got {getattr(self, n)}")


def fake_quant_weight(w: Tensor, bits: int, per_channel: bool) -> Tensor:
    """Symmetric signed fake-quantization of a weight tensor (STE gradient)."""
    qmax = 2 ** (bits - 1) - 1
    if per_channel:
        amax = w.detach().abs().flatten(1).amax(1).clamp_min(1e-12)
        scale = (amax / qmax).float()
        zp = torch.zeros_like(scale, dtype=torch.int32)
        return torch.fake_quantize_per_channel_affine(w, scale, zp, 0, -qmax - 1, qmax)
    amax = float(w.detach().abs().max().clamp_min(1e-12))
    return torch.fake_quantize_per_tensor_affine(w, amax / qmax, 0, -qmax - 1, qmax)


def fake_quant_act(x: Tensor, lo: float, hi: float, bits: int) -> Tensor:
    """Asymmetric unsigned fake-quantization of an activation with range [lo, hi] (0 included)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    qmax = 2**bits - 1
    scale = max((hi - lo) / qmax, 1e-12)
    zp = int(min(max(round(-lo / scale), 0), qmax))
    return torch.fake_quantize_per_tensor_affine(x, scale, zp, 0, qmax)


class QuantWrap(nn.Module):
    """A conv/linear with fake-quantized input activation and weight (toggle with ``enabled``)."""

    def __init__(self, layer: nn.Module, cfg: FakeQuantConfig, momentum: float = 0.1) -> None:
        super().__init__()
        self.layer = layer
        self.cfg = cfg
        self.momentum = momentum
        self.register_buffer("lo", torch.tensor(0.0))
        self.register_buffer("hi", torch.tensor(0.0))
        self.register_buffer("seen", torch.tensor(False))
        self.enabled = True
        self.observe = False

    def forward(self, x: Tensor) -> Tensor:
        if self.observe or (self.training and self.enabled):
            lo, hi = x.detach().min(), x.detach().max()
            if not bool(self.seen) or self.observe:
                new_lo = torch.minimum(self.lo, lo) if bool(self.seen) else lo
                new_hi = torch.maximum(self.hi, hi) if bool(self.seen) else hi
            else:
                new_lo = (1 - self.momentum) * self.lo + self.momentum * lo
                new_hi = (1 - self.momentum) * self.hi + self.momentum * hi
            self.lo.copy_(new_lo)
            self.hi.copy_(new_hi)
            self.seen.fill_(True)
        if not self.enabled or self.observe:
            return self.layer(x)
        xq = fake_quant_act(x, float(self.lo), float(self.hi), self.cfg.act_bits)
        wq = fake_quant_weight(self.layer.weight, self.cfg.weight_bits, self.cfg.per_channel)
        if isinstance(self.layer, nn.Conv2d):
            return self.layer._conv_forward(xq, wq, self.layer.bias)
        return F.linear(xq, wq, self.layer.bias)


def prepare(model: nn.Module, cfg: FakeQuantConfig | None = None) -> nn.Module:
    """A BN-folded copy of ``model`` with every Conv2d/Linear wrapped in :class:`QuantWrap`."""
    cfg = cfg or FakeQuantConfig()
    m, _ = fold_batchnorm(model)
    for name, mod in list(m.named_modules()):
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            parent = m.get_submodule(name.rpartition(".")[0]) if "." in name else m
            setattr(parent, name.rpartition(".")[2], QuantWrap(mod, cfg))
    return m


def wraps(model: nn.Module) -> list[tuple[str, QuantWrap]]:
    return [(n, w) for n, w in model.named_modules() if isinstance(w, QuantWrap)]


@torch.no_grad()
def calibrate(qmodel: nn.Module, x: Tensor, batch_size: int = 250) -> nn.Module:
    """Set every wrapper's activation range to the min/max seen on ``x`` (eval mode)."""
    qmodel.eval()
    for _, w in wraps(qmodel):
        w.observe, w.seen = True, torch.tensor(False)
    for i in range(0, len(x), batch_size):
        qmodel(x[i : i + batch_size])
    for _, w in wraps(qmodel):
        w.observe = False
    return qmodel


def strip(qmodel: nn.Module) -> nn.Module:
    """The float model inside a prepared model (wrappers replaced by their layers)."""
    m = copy.deepcopy(qmodel)
    for name, w in wraps(m):
        parent = m.get_submodule(name.rpartition(".")[0]) if "." in name else m
        setattr(parent, name.rpartition(".")[2], w.layer)
    return m.eval()


# ----------------------------------------------------------------------------- analysis


@dataclass(frozen=True)
class LayerSQNR:
    """SQNR (dB) of one conv/linear output: isolated and accumulated through depth."""

    name: str
    depth: int
    isolated_db: float
    accumulated_db: float

    def to_dict(self) -> dict:
        return asdict(self)


def _sqnr(ref: Tensor, got: Tensor) -> float:
    noise = float(((ref - got) ** 2).sum())
    sig = float((ref**2).sum())
    return float("inf") if noise == 0 else 10 * math.log10(max(sig, 1e-30) / noise)


@torch.no_grad()
def sqnr_by_layer(
    model: nn.Module, x: Tensor, cfg: FakeQuantConfig | None = None
) -> list[LayerSQNR]:
    """Per-layer SQNR of the simulated quantized model on images ``x`` (calibrated on ``x``)."""
    q = calibrate(prepare(model, cfg), x)
    ws = wraps(q)
    outs: dict[str, Tensor] = {}

    def grab(name):
        def hook(_m, _i, o):
            outs[name] = o

        return hook

    hooks = [w.register_forward_hook(grab(n)) for n, w in ws]

    def run(enabled: set[str]) -> dict[str, Tensor]:
        for n, w in ws:
            w.enabled = n in enabled
        outs.clear()
        q(x)
        return dict(outs)

    ref = run(set())
    acc = run({n for n, _ in ws})
    rows = []
    for depth, (n, _) in enumerate(ws):
        iso = run({n})
        rows.append(LayerSQNR(n, depth, _sqnr(ref[n], iso[n]), _sqnr(ref[n], acc[n])))
    for h in hooks:
        h.remove()
    return rows


def plot_error_accumulation(rows: list[LayerSQNR], path) -> None:
    """Plot isolated and accumulated SQNR (dB) against layer depth to ``path`` (PNG, atomic)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgecnn.io import atomic_path

    fig, ax = plt.subplots(figsize=(6, 3.5))
    d = [r.depth for r in rows]
    ax.plot(d, [r.isolated_db for r in rows], marker="o", label="layer alone quantized")
    ax.plot(d, [r.accumulated_db for r in rows], marker="s", label="all layers up to here")
    ax.set_xticks(d, [r.name for r in rows], rotation=60, ha="right", fontsize=6)
    ax.set_ylabel("SQNR (dB)")
    ax.set_title("quantization error through depth")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


# ----------------------------------------------------------------------------- QAT


def qat_train(
    model: nn.Module,
    data,
    cfg: FakeQuantConfig | None = None,
    epochs: int = 2,
    lr: float = 1e-3,
    seed: int = 0,
    threads: int | None = 2,
) -> nn.Module:
    """Quantization-aware fine-tuning: returns the prepared (wrapped, BN-folded) trained model."""
    from edgecnn.models.edge import train_model

    q = calibrate(prepare(model, cfg), data.x_calib)
    train_model(q, data.x_train, data.y_train, epochs=epochs, lr=lr, seed=seed, threads=threads)
    return q.eval()


@torch.no_grad()
def simulated_accuracy(qmodel: nn.Module, x: Tensor, y: Tensor) -> float:
    """Accuracy (fraction 0-1) of a prepared model with fake quantization enabled."""
    from edgecnn.models.edge import evaluate

    for _, w in wraps(qmodel):
        w.enabled = True
    return evaluate(qmodel, x, y)


def qat_to_onnx(
    model: nn.Module,
    data,
    dst,
    input_shape,
    epochs: int = 2,
    lr: float = 1e-3,
    per_channel: bool = True,
    seed: int = 0,
    threads: int | None = 2,
):
    """QAT at INT8 then export: float ONNX of the trained weights, quantized by ORT (QDQ U8S8)."""
    import tempfile
    from pathlib import Path

    from edgecnn.compress._state import export_compact
    from edgecnn.compress.quantize import QuantConfig, quantize_int8

    q = qat_train(model, data, FakeQuantConfig(8, 8, per_channel), epochs, lr, seed, threads)
    float_model = strip(q)
    with tempfile.TemporaryDirectory() as tmp:
        src = export_compact(float_model, Path(tmp) / "qat_fp32.onnx", tuple(input_shape))
        return quantize_int8(src, dst, data.x_calib, QuantConfig(per_channel=per_channel))
