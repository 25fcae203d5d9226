"""Deployment runtime: ONNX export with an output check, ONNX Runtime sessions, benchmarking.

Modules: :mod:`~edgecnn.runtime.export` (``export_onnx``), :mod:`~edgecnn.runtime.session`
(``make_session``, ``input_feeds``), :mod:`~edgecnn.runtime.bench` (``measure_latency``,
``interleaved``, RSS), :mod:`~edgecnn.runtime.benchmark` (the ``bench`` command's API) and
:mod:`~edgecnn.runtime.environment`. Model sources are resolved by
:func:`edgecnn.models.resolve_model`.
Imports are kept lazy here so that ``import edgecnn.runtime`` stays cheap.
"""
