"""Runtime backends: one small module per inference runtime, and the registry :data:`BACKENDS`.

Each :class:`Backend` converts a PyTorch module (through its ONNX export where the runtime reads
ONNX) with the runtime's own tools into an artifact file, and loads that artifact into a
*runner*: a callable taking one ``float32`` NCHW ``np.ndarray`` and returning the model's first
output as an ``np.ndarray``. Runtime libraries are imported lazily inside the functions, so this
package imports without any of them; :meth:`Backend.available` says whether one is installed and
:func:`require_backend` raises :class:`RuntimeNotInstalledError` (one line) when it is not.

Conventions: ``threads`` is the runtime's intra-op thread count (>= 1); precisions are
``"fp32"`` and ``"int8"``; an INT8 conversion receives the QDQ INT8 ONNX model that
:func:`edgecnn.compress.quantize.quantize_int8` wrote (runtime/ never imports compress/: the
caller in ``edgecnn.studies`` makes it). Output agreement (:func:`compare_outputs`) is measured
as ``max|runtime - reference|`` relative to the reference output's range ``max - min``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgecnn.errors import ConfigError
from edgecnn.runtime.backends._common import (
    INSTALL_HINT,
    PRECISIONS,
    RELATIVE_TOLERANCE,
    ConversionError,
    OutputCheck,
    Runner,
    RuntimeNotInstalledError,
    _first_line,
    compare_outputs,
    conversion_step,
)


@dataclass(frozen=True)
class Backend:
    """One inference runtime: how to convert a model for it and how to run the result.

    ``convert(module, example_input, onnx_path, out_dir, precision, int8_onnx_path)`` writes the
    artifact(s) into ``out_dir`` and returns the main artifact's path; ``load(artifact,
    threads)`` returns a :data:`Runner`. ``packages`` are the import names that must load.
    ``batch1_only``: the runtime's artifact takes exactly one image (ncnn has no batch axis).
    """

    name: str
    label: str
    packages: tuple[str, ...]
    precisions: tuple[str, ...]
    convert: Callable[..., Path]
    load: Callable[[Path, int], Runner]
    batch1_only: bool = False
    distributions: tuple[str, ...] = ()  #: pip distributions whose versions are recorded

    def versions(self) -> dict[str, str]:
        """Installed versions of :attr:`distributions` (missing ones omitted)."""
        from importlib.metadata import PackageNotFoundError, version

        out = {}
        for d in self.distributions:
            try:
                out[d] = version(d)
            except PackageNotFoundError:
                pass
        return out

    def available(self) -> str | None:
        """None when the runtime imports, else the reason (one line)."""
        from edgecnn.runtime.export import captured_output

        for pkg in self.packages:
            try:
                with captured_output():  # some runtimes log on import
                    importlib.import_module(pkg)
            except ImportError as e:
                return f"{pkg} cannot be imported ({type(e).__name__}: {_first_line(e)})"
        return None

    def check_precision(self, precision: str) -> None:
        """Raise ``ConfigError`` (one line) when this runtime has no ``precision`` path here."""
        if precision not in PRECISIONS:
            raise ConfigError(
                f"unknown precision '{precision}': choose one of {', '.join(PRECISIONS)}"
            )
        if precision not in self.precisions:
            raise ConfigError(
                f"runtime '{self.name}' does not support --precision {precision} here: "
                f"it supports {', '.join(self.precisions)}"
                + (
                    f"; INT8 is supported by {', '.join(int8_runtimes())}"
                    if precision == "int8"
                    else ""
                )
            )


def _build_registry() -> dict[str, Backend]:
    from edgecnn.runtime.backends import ncnn, openvino, ort, tflite, tvm

    backends = [
        Backend(
            "ort",
            "ONNX Runtime",
            ("onnxruntime",),
            ("fp32", "int8"),
            ort.convert,
            ort.load,
            distributions=("onnxruntime",),
        ),
        Backend(
            "openvino",
            "OpenVINO",
            ("openvino",),
            ("fp32", "int8"),
            openvino.convert,
            openvino.load,
            distributions=("openvino",),
        ),
        Backend(
            "tflite",
            "LiteRT (TFLite)",
            ("litert_torch", "ai_edge_litert.interpreter"),
            ("fp32",),
            tflite.convert,
            tflite.load,
            distributions=("litert-torch", "ai-edge-litert"),
        ),
        Backend(
            "ncnn",
            "ncnn (via pnnx)",
            ("ncnn", "pnnx"),
            ("fp32",),
            ncnn.convert,
            ncnn.load,
            batch1_only=True,
            distributions=("pnnx", "ncnn"),
        ),
        Backend(
            "tvm",
            "TVM (relax, llvm)",
            ("tvm",),
            ("fp32",),
            tvm.convert,
            tvm.load,
            distributions=("apache-tvm",),
        ),
    ]
    return {b.name: b for b in backends}


BACKENDS: dict[str, Backend] = _build_registry()


def int8_runtimes() -> list[str]:
    return [n for n, b in BACKENDS.items() if "int8" in b.precisions]


def get_backend(name: str) -> Backend:
    """The registered backend ``name`` (installed or not); ``ConfigError`` for an unknown name."""
    b = BACKENDS.get(name)
    if b is None:
        raise ConfigError(f"unknown runtime '{name}': choose one of {', '.join(BACKENDS)} or all")
    return b


def require_backend(name: str) -> Backend:
    """The backend ``name``, or :class:`RuntimeNotInstalledError` when it is not installed."""
    b = get_backend(name)
    reason = b.available()
    if reason is not None:
        raise RuntimeNotInstalledError(f"runtime '{name}' is not installed: {INSTALL_HINT}")
    return b


__all__ = [
    "BACKENDS",
    "Backend",
    "INSTALL_HINT",
    "ConversionError",
    "OutputCheck",
    "PRECISIONS",
    "RELATIVE_TOLERANCE",
    "Runner",
    "RuntimeNotInstalledError",
    "compare_outputs",
    "conversion_step",
    "get_backend",
    "require_backend",
]
