"""Convolution algorithms (direct, im2col + GEMM, Winograd, FFT), their closed-form costs, and
tiled loop nests that count DRAM traffic exactly as :mod:`edgecnn.hardware.tiling` models it.

Entry point: :func:`conv2d` (``algorithm=`` one of :class:`Algorithm`).
"""

from edgecnn.kernels.conv import CONV_ALGOS, Algorithm, choose_algorithm, conv2d
from edgecnn.kernels.winograd import WinogradConv, winograd_transforms

__all__ = [
    "CONV_ALGOS",
    "Algorithm",
    "WinogradConv",
    "choose_algorithm",
    "conv2d",
    "winograd_transforms",
]
