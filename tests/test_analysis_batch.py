"""Largest batch that fits a device's memory (``profile --max-batch``)."""

from __future__ import annotations

import math

import pytest
import torch.nn as nn

from edgecnn.analysis.batch import max_batch, needed_bytes
from edgecnn.analysis.devices import get_device, load_catalog
from edgecnn.analysis.memory import peak_activation_bytes
from edgecnn.errors import ConfigError
from edgecnn.models.resolve import load_graph


class _Chain(nn.Module):
    """conv(3->8, 3x3, pad 1) -> relu -> conv(8->4, 1x1): known live tensors at every step."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.r = nn.ReLU()
        self.b = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        return self.b(self.r(self.a(x)))


def _chain_at(b: int):
    return load_graph(_Chain(), (b, 3, 16, 16))


def test_needed_bytes_closed_form_for_a_chain():
    w, a = needed_bytes(_chain_at(2), 4)
    assert w == (8 * 3 * 9 + 8 + 4 * 8 + 4) * 4
    # the largest pair of live neighbours: conv a's input + output, or relu's in + out (8+8 ch)
    assert a == 2 * 16 * 16 * max(3 + 8, 8 + 8, 8 + 4) * 4


@pytest.mark.parametrize("memory", [200_000, 1_000_000, 3_333_333])
def test_max_batch_fits_and_the_next_does_not(memory):
    res = max_batch(_chain_at, memory)
    w, a = needed_bytes(_chain_at(res.batch), 4)
    assert w + a <= memory and res.needed_bytes == w + a
    w1, a1 = needed_bytes(_chain_at(res.batch + 1), 4)
    assert w1 + a1 > memory and res.next_needed_bytes == w1 + a1
    # activations are linear in the batch here, so the answer has a closed form
    per = needed_bytes(_chain_at(1), 4)[1]
    assert res.batch == math.floor((memory - w) / per)


def test_max_batch_on_a_real_model_matches_an_independent_count():
    dev = get_device("rpi4")
    at = lambda b: load_graph("edge-mobilenet", (b, 1, 28, 28))  # noqa: E731
    res = max_batch(at, 2**24, "int8", dev.name)
    g = at(res.batch)
    assert res.peak_activation_bytes == peak_activation_bytes(g, 1)
    assert res.needed_bytes <= 2**24 < res.next_needed_bytes


def test_exact_memory_is_inclusive():
    need3 = sum(needed_bytes(_chain_at(3), 4))
    assert max_batch(_chain_at, need3).batch == 3
    assert max_batch(_chain_at, need3 - 1).batch == 2


def test_too_small_memory_is_one_clear_error():
    with pytest.raises(ConfigError, match="at batch 1"):
        max_batch(_chain_at, 1000, device="tiny")
    with pytest.raises(ConfigError, match="positive"):
        max_batch(_chain_at, 0)


def test_catalog_memory_has_sources_and_host_reads_its_memory():
    for dev in load_catalog().values():
        if dev.memory_bytes is not None:
            assert dev.memory_bytes > 0 and "memory_bytes" in dev.sources
    assert get_device("host").memory_bytes > 2**28


def test_bench_max_batch_uses_the_largest_fitting_batch(capsys):
    import json

    from cli_helpers import run_cli

    dev = get_device("k210")
    at = lambda b: load_graph("edge-resnet", (b, 1, 28, 28))  # noqa: E731
    want = max_batch(at, dev.memory_bytes, "fp32", "k210").batch
    argv = ["bench", "edge-resnet", "--max-batch", "--device", "k210", "--runs", "2"]
    code, out, err = run_cli([*argv, "--warmup", "0", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["batch"] == want > 1
    code, _, err = run_cli(["bench", "edge-resnet", "--max-batch", "--batch", "4"], capsys)
    assert code == 2 and "not both" in err
    code, _, err = run_cli(["bench", "edge-resnet", "--max-batch", "--device", "hailo-8"], capsys)
    assert code == 2 and "memory" in err
