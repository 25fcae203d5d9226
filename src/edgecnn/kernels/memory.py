"""How much memory comparing or timing the algorithms on one layer takes, before allocating.

:func:`working_set_bytes` is an upper estimate in bytes: the float32 input, weight and output
(plus one more output, the algorithm's), their float64 copies for the reference convolution
(``kernels compare`` only), and the largest extra buffer of any algorithm that runs on the
layer (:func:`edgecnn.kernels.counts.algorithm_cost`: padded input, im2col matrix, Winograd
tiles, FFT spectra; in float32 elements, complex values counted as two).
"""

from __future__ import annotations

from collections.abc import Iterable

from edgecnn.hardware.tiling import ConvShape
from edgecnn.kernels.conv import Algorithm
from edgecnn.kernels.counts import algorithm_cost

FLOAT32_BYTES = 4
FLOAT64_BYTES = 8


def working_set_bytes(
    s: ConvShape, algorithms: Iterable[Algorithm] | None = None, reference: bool = True
) -> int:
    """Upper estimate of the bytes one comparison (``reference=True``) or benchmark of ``s``
    holds at once, over ``algorithms`` (default: all but ``auto``)."""
    algos = [a for a in (algorithms or Algorithm) if a is not Algorithm.AUTO]
    operands = s.input_elems + s.weight_elems + s.output_elems
    extra = 0
    for a in algos:
        cost = algorithm_cost(s, a)
        if cost.supported:
            extra = max(extra, cost.extra_total_elems)
    per_operand = FLOAT32_BYTES + (FLOAT64_BYTES if reference else 0)
    return per_operand * operands + FLOAT32_BYTES * (s.output_elems + extra)
