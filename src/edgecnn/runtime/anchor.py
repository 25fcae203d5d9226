"""The speed anchor: a fixed reference workload timed at calibration and again at prediction.

A shared or thermally managed host does not run at one speed: on the development VM the same
kernels timed two hours apart differed by 5-15%, nearly uniformly across kernel types (conv,
linear, memory, elementwise), and kernels timed at the start of a calibration and at its end
by 5-10%. A predictor fitted at one speed and scored at another is off by that much whatever
its per-kernel models. The anchor is two small fixed networks (a CNN chain of convolutions,
depthwise and grouped convolutions, pooling and elementwise kernels; a transformer MLP block
on 197 tokens) run in ORT on one thread exactly as the calibration runs its samples. The
calibration times it between its samples and keeps the median (``meta["anchor_ms"]``);
:func:`speed_factor` is the ratio of a fresh timing to that, by which
:func:`~edgecnn.analysis.latency_predictor.predict_graph` scales a whole-model prediction
(``speed``): the prediction is then for the host as fast as it is now.

Units: ms of wall time, the fastest of ``runs`` runs of each network, summed over the two.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

#: The anchor's CNN chain (:func:`~edgecnn.runtime.calibrate.build_chain` configs).
ANCHOR_CNN: tuple[dict[str, Any], ...] = (
    dict(type="conv", cin=3, cout=32, hw=112, k=3, stride=2, groups=1, act="relu", residual=False),
    dict(type="conv", cin=32, cout=64, hw=56, k=3, stride=1, groups=1, act="relu", residual=False),
    dict(type="conv", cin=64, cout=64, hw=56, k=3, stride=1, groups=1, act="none", residual=True),
    dict(type="maxpool", c=64, hw=56, k=2, stride=2),
    dict(type="conv", cin=64, cout=256, hw=28, k=1, stride=1, groups=1, act="relu6", residual=False),
    dict(type="dwconv", cin=256, cout=256, hw=28, k=3, stride=1, groups=256, act="hardswish",
         residual=False),
    dict(type="mul", c=256, hw=28, broadcast=True),
    dict(type="conv", cin=256, cout=128, hw=28, k=1, stride=1, groups=1, act="none", residual=False),
    dict(type="bn", c=128, hw=28, act="relu"),
    dict(type="add", c=128, hw=28, fn="add"),
    dict(type="gconv", cin=128, cout=128, hw=28, k=3, stride=2, groups=8, act="relu",
         residual=False),
    dict(type="concat", c=128, hw=14, n=2),
    dict(type="gpool", c=256, hw=14),
    dict(type="linear", rows=1, k=256, n=1000),
)  # fmt: skip
_T, _D = 197, 384
#: The anchor's transformer MLP block on ``[1, 197, 384]`` tokens.
ANCHOR_TOKENS: tuple[dict[str, Any], ...] = (
    dict(type="norm", c=_D, hw=1, shape=[1, _T, _D]),
    dict(type="linear", rows=_T, k=_D, n=4 * _D, lead=[1, _T]),
    dict(type="activation", c=4 * _D, hw=1, fn="gelu", shape=[1, _T, 4 * _D]),
    dict(type="linear", rows=_T, k=4 * _D, n=_D, lead=[1, _T]),
    dict(type="add", c=_D, hw=1, fn="add", shape=[1, _T, _D]),
)
#: Runs per network in one anchor timing (the fastest counts).
ANCHOR_RUNS = 20
#: Anchor timings per :func:`anchor_ms` call (their median counts).
ANCHOR_TIMINGS = 3


class AnchorClock:
    """The anchor's two ORT sessions (1 thread, built once); :meth:`time_ms` times them.

    ``precision`` ``"int8"`` quantizes the networks as the calibration quantizes its samples.
    """

    def __init__(self, precision: str = "fp32") -> None:
        import onnxruntime as ort

        from edgecnn.runtime.calibrate import _feeds, _options, build_chain, quantize_model

        self._sessions = []
        with tempfile.TemporaryDirectory(prefix="edgecnn-anchor-") as d:
            for i, cfgs in enumerate((ANCHOR_CNN, ANCHOR_TOKENS)):
                model = build_chain([dict(c) for c in cfgs], seed=i)
                if precision == "int8":
                    model = quantize_model(model, Path(d))
                sess = ort.InferenceSession(
                    model.SerializeToString(),
                    sess_options=_options(ort),
                    providers=["CPUExecutionProvider"],
                )
                self._sessions.append((sess, _feeds(model, np.random.default_rng(i))))

    def time_ms(self, runs: int = ANCHOR_RUNS) -> float:
        """One anchor timing (ms): the sum over the two networks of their fastest of ``runs``."""
        from edgecnn.runtime.bench import measure_latency

        return sum(
            measure_latency(lambda s=s, f=f: s.run(None, f), runs=runs, warmup=2).min_ms
            for s, f in self._sessions
        )


def anchor_ms(precision: str = "fp32", timings: int = ANCHOR_TIMINGS) -> float:
    """The anchor's time now (ms): the median of ``timings`` :meth:`AnchorClock.time_ms`."""
    clock = AnchorClock(precision)
    return statistics.median(clock.time_ms() for _ in range(max(timings, 1)))


def speed_factor(calibrated_anchor_ms: float | None, now_anchor_ms: float) -> float:
    """How much slower the host is now than at calibration: ``now / calibrated`` (1.0 when the
    predictor has no anchor, from before the anchor existed)."""
    if not calibrated_anchor_ms or calibrated_anchor_ms <= 0 or now_anchor_ms <= 0:
        return 1.0
    return now_anchor_ms / calibrated_anchor_ms
