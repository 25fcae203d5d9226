"""Shared pieces of the runtime backends: errors, the output check and converter error wrapping.

Output agreement is ``max|runtime - reference|`` relative to the reference output's range
(``max - min``); :data:`RELATIVE_TOLERANCE` gives the allowed value per precision.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import numpy as np

from edgecnn.errors import EdgecnnError

Runner = Callable[[np.ndarray], np.ndarray]
"""A loaded model: ``runner(x)`` -> first output, both ``np.ndarray`` (``float32``)."""

PRECISIONS = ("fp32", "int8")

#: Largest allowed ``max|runtime - PyTorch| / (max - min of the PyTorch output)`` per precision.
#: fp32 runtimes differ from PyTorch only by summation order (measured ~1e-7 to 1e-4); int8 is
#: checked against the fp32 PyTorch output, so quantization error counts against it.
RELATIVE_TOLERANCE = {"fp32": 1e-3, "int8": 0.15}

INSTALL_HINT = "pip install -e '.[runtimes]'"


class RuntimeNotInstalledError(EdgecnnError):
    """The requested runtime's Python package cannot be imported."""


class ConversionError(EdgecnnError):
    """A runtime's converter (or loader) failed on the model."""


@dataclass(frozen=True)
class OutputCheck:
    """How a runtime's output compares with the reference (PyTorch) on one input."""

    input: str  # what was fed: "random normal (seed 1)" or a data description
    max_abs_error: float
    output_range: float  # max - min of the reference output
    relative_error: float  # max_abs_error / output_range
    relative_tolerance: float
    passed: bool

    def to_dict(self) -> dict:
        return asdict(self)


def compare_outputs(
    got: np.ndarray, ref: np.ndarray, precision: str, what: str = "random normal (seed 1)"
) -> OutputCheck:
    """Compare ``got`` with ``ref`` (shapes must match up to size-1 axes) at ``precision``'s tolerance."""
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if got.size != ref.size:
        raise EdgecnnError(
            f"runtime output has {got.size} values but PyTorch gives {ref.size} "
            f"(shapes {tuple(got.shape)} vs {tuple(ref.shape)})"
        )
    got = got.reshape(ref.shape)
    err = float(np.max(np.abs(got - ref))) if ref.size else 0.0
    rng = float(ref.max() - ref.min()) if ref.size else 0.0
    rel = err / rng if rng > 0 else err
    tol = RELATIVE_TOLERANCE[precision]
    ok = bool(np.isfinite(err) and rel <= tol)
    if not np.isfinite(err):
        err = rel = float(np.finfo(np.float64).max)
    return OutputCheck(what, err, rng, rel, tol, ok)


@contextlib.contextmanager
def conversion_step(runtime: str, step: str) -> Iterator[None]:
    """Turn any exception of a runtime's converter into one :class:`ConversionError` line naming
    the runtime and the step (the converter's own first message line says which op)."""
    try:
        yield
    except EdgecnnError:
        raise
    except Exception as e:  # converters raise many unrelated types for unsupported ops
        raise ConversionError(
            f"runtime '{runtime}': {step} failed ({type(e).__name__}: {_first_line(e)}); "
            "the model uses an op or shape this runtime's converter does not support: "
            "try another --runtime"
        ) from e


def _first_line(e: BaseException) -> str:
    for line in str(e).strip().splitlines():
        if line.strip():
            return " ".join(line.split())[:240]
    return ""
