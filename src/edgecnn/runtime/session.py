"""ONNX Runtime session factory and input feeds.

:func:`make_session` builds a CPU ``InferenceSession`` with an explicit thread count (intra-op
``threads``, inter-op 1, sequential execution) so that benchmarks are reproducible, and turns a
missing, empty, truncated or non-ONNX file into a :class:`~edgecnn.errors.ModelLoadError`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edgecnn.errors import ConfigError, ModelLoadError, ShapeError

OPTIMIZATION_LEVELS: dict[str, ort.GraphOptimizationLevel] = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}

_ORT_DTYPES: dict[str, type] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


def make_session(
    path_or_bytes: str | os.PathLike[str] | bytes,
    threads: int = 1,
    optimization: str = "all",
    optimized_model_path: str | os.PathLike[str] | None = None,
) -> ort.InferenceSession:
    """Create a CPU ONNX Runtime session.

    ``threads`` is the intra-op thread count (>= 1); ``optimization`` one of
    ``disable|basic|extended|all``; ``optimized_model_path`` makes ORT write the optimised graph
    there (useful to inspect which kernels run).
    """
    if threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")
    if optimization not in OPTIMIZATION_LEVELS:
        raise ConfigError(
            f"unknown optimization level '{optimization}': choose one of {', '.join(OPTIMIZATION_LEVELS)}"
        )
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = OPTIMIZATION_LEVELS[optimization]
    so.log_severity_level = 3
    if optimized_model_path is not None:
        so.optimized_model_filepath = str(optimized_model_path)
    if isinstance(path_or_bytes, (bytes, bytearray)):
        source: str | bytes = bytes(path_or_bytes)
        what = "in-memory ONNX model"
        if not source:
            raise ModelLoadError("the ONNX model is empty (0 bytes): export it again")
    else:
        p = Path(path_or_bytes)
        what = f"'{p}'"
        if not p.exists():
            raise ModelLoadError(f"ONNX file {what} does not exist: check the path")
        if p.is_dir():
            raise ModelLoadError(
                f"{what} is a directory, not an ONNX file: give the path of an .onnx model"
            )
        if not p.is_file():
            raise ModelLoadError(f"{what} is not a file: give the path of an .onnx model")
        if p.stat().st_size == 0:
            raise ModelLoadError(f"ONNX file {what} is empty (0 bytes): export it again")
        source = str(p)
        _check_external_data(p)
    try:
        return ort.InferenceSession(source, sess_options=so, providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT raises InvalidProtobuf, Fail, InvalidGraph, NotImplemented, ...
        msg = " ".join(str(e).split())[:240]
        raise ModelLoadError(
            f"ONNX Runtime cannot load {what} ({type(e).__name__}: {msg}); the file is truncated, "
            "corrupt or not an ONNX model: export it again with 'edgecnn export'"
        ) from None


def _check_external_data(path: Path) -> None:
    """Refuse external data outside the model's folder before ORT reads it (one clear line)."""
    import onnx

    from edgecnn.graph.from_onnx import check_external_data

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - not parseable: ORT's own load reports it below
        return
    check_external_data(model, path)


def input_feeds(
    session: ort.InferenceSession,
    batch: int | None = None,
    input_shape: Sequence[int] | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Random inputs for every model input (standard normal floats, zeros for integer inputs).

    ``batch`` overrides dimension 0; ``input_shape`` gives the full shape of the first input and
    is required when the model has symbolic dimensions other than the batch.
    """
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for i, inp in enumerate(session.get_inputs()):
        shape = list(inp.shape)
        if i == 0 and input_shape is not None:
            from edgecnn.graph.from_onnx import check_declared_shape

            declared = [d if isinstance(d, int) else None for d in inp.shape]
            if batch is not None and declared:
                declared[0] = None  # --batch is checked against a fixed batch by the caller
            check_declared_shape(inp.name, declared, list(input_shape))
            shape = [int(d) for d in input_shape]
        if batch is not None and shape:
            shape[0] = batch
        elif shape and not isinstance(shape[0], int):
            shape[0] = 1
        if any(not isinstance(d, int) or d is None for d in shape):
            raise ShapeError(
                f"model input '{inp.name}' has symbolic dimensions {inp.shape}: give --input-shape, "
                "e.g. 1x3x224x224"
            )
        dtype = _ORT_DTYPES.get(inp.type)
        if dtype is None:
            raise ShapeError(f"model input '{inp.name}' has unsupported type {inp.type}")
        if np.issubdtype(dtype, np.floating):
            feeds[inp.name] = rng.standard_normal(shape).astype(dtype)
        else:
            feeds[inp.name] = np.zeros(shape, dtype=dtype)
    return feeds
