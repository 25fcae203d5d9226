"""Tests of the built-in edge models, training loop and checkpoints."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from compress_helpers import mnist as _mnist
from edgecnn.errors import ConfigError, ModelLoadError
from edgecnn.models.checkpoint import load_checkpoint, save_checkpoint
from edgecnn.models.edge import EDGE_MODELS, build_edge_model, evaluate, train_model


@pytest.mark.parametrize("name", sorted(EDGE_MODELS))
def test_models_build_and_run(name):
    torch.manual_seed(0)
    m = build_edge_model(name).eval()
    y = m(torch.randn(2, 1, 28, 28))
    assert y.shape == (2, 10)
    assert any(isinstance(x, nn.BatchNorm2d) for x in m.modules())
    assert sum(p.numel() for p in m.parameters()) < 100_000


def test_mobilenet_is_depthwise_and_width_shrinks():
    m = build_edge_model("edge-mobilenet")
    assert any(isinstance(c, nn.Conv2d) and c.groups == c.in_channels > 1 for c in m.modules())
    small = build_edge_model("edge-mobilenet", width=0.5)
    n = lambda mod: sum(p.numel() for p in mod.parameters())  # noqa: E731
    assert n(small) < n(m) / 2


def test_unknown_model_lists_choices():
    with pytest.raises(ConfigError, match="edge-resnet"):
        build_edge_model("nope")


def test_training_improves_on_real_data():
    mnist = _mnist()
    torch.manual_seed(0)
    m = build_edge_model("edge-resnet")
    before = evaluate(m, mnist.x_test, mnist.y_test)
    r = train_model(
        m,
        mnist.x_train,
        mnist.y_train,
        mnist.x_test,
        mnist.y_test,
        epochs=2,
        batch_size=32,
        threads=1,
    )
    assert r.test_accuracy > max(0.8, before + 0.3)


def test_checkpoint_roundtrip_weights_only(tmp_path):
    torch.manual_seed(1)
    m = build_edge_model("edge-mobilenet", width=0.5).eval()
    p = save_checkpoint(m, tmp_path / "m.pt", "edge-mobilenet", {"width": 0.5}, {"note": "x"})
    raw = torch.load(p, weights_only=True)
    assert raw["arch"] == "edge-mobilenet"
    m2, info = load_checkpoint(p)
    x = torch.randn(3, 1, 28, 28)
    assert torch.equal(m(x), m2(x))
    assert info["extra"] == {"note": "x"} and info["arch_kwargs"] == {"width": 0.5}


def test_checkpoint_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ModelLoadError, match="cannot read"):
        load_checkpoint(bad)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(ModelLoadError, match="not an edgecnn checkpoint"):
        load_checkpoint(other)


def test_train_cli_writes_checkpoint(tmp_path, capsys):
    import json

    from edgecnn.cli import main

    out = tmp_path / "d.pt"
    args = [
        "train",
        "edge-mobilenet",
        "--out",
        str(out),
        "--epochs",
        "1",
        "--data",
        "digits",
        "--threads",
        "1",
    ]
    main([*args, "--json"])
    rep = json.loads(capsys.readouterr().out)
    assert rep["data"] == "digits" and 0.0 <= rep["test_accuracy"] <= 1.0
    m, info = load_checkpoint(out)
    assert info["arch"] == "edge-mobilenet"


def test_train_cli_bad_output_dir(tmp_path, capsys):
    from edgecnn.cli import main

    with pytest.raises(SystemExit) as e:
        main(["train", "edge-resnet", "--out", str(tmp_path / "no" / "m.pt"), "--epochs", "1"])
    assert e.value.code == 2
    assert "does not exist" in capsys.readouterr().err


def test_train_model_restores_the_thread_count():
    """train_model sets torch's global thread count; it must put it back on every exit path."""
    before = torch.get_num_threads()
    other = 2 if before == 1 else 1
    torch.manual_seed(0)
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    m = build_edge_model("edge-resnet")
    seen = []

    def spy(_ep, _n):
        seen.append(torch.get_num_threads())

    train_model(m, x, y, epochs=1, batch_size=8, threads=other, augment=False, progress=spy)
    assert seen == [other] and torch.get_num_threads() == before
    with pytest.raises(ConfigError, match="unknown optimizer"):
        train_model(m, x, y, epochs=1, threads=other, optimizer="bogus")
    assert torch.get_num_threads() == before

    def failing_loss(model, xb, yb):
        raise RuntimeError("loss failed")

    with pytest.raises(RuntimeError, match="loss failed"):
        train_model(m, x, y, epochs=1, threads=other, loss_fn=failing_loss)
    assert torch.get_num_threads() == before
    train_model(m, x, y, epochs=1, batch_size=8, threads=None, augment=False, progress=spy)
    assert seen[-1] == before
