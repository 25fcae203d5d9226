"""The GEMM used by im2col: oneDNN's matmul when torch exposes it, else ``torch.mm``.

On this project's AMD CPU, MKL's single-threaded sgemm (``torch.mm``) runs about 20-30% slower
than oneDNN's JIT matmul; torch reaches oneDNN's matmul through the (internal, but long-standing)
``torch.ops.mkldnn._linear_pointwise`` op that Inductor uses. The fallback keeps results
identical in value semantics if that op is missing or refuses the arguments.
"""

from __future__ import annotations

import torch


def _onednn_linear_available() -> bool:
    try:
        op = torch.ops.mkldnn._linear_pointwise
    except (AttributeError, RuntimeError):
        return False
    try:
        probe = op(torch.ones(2, 3), torch.ones(4, 3), None, "none", [], "")
    except RuntimeError:
        return False
    return bool(torch.all(probe == 3))


_HAS_ONEDNN_LINEAR = torch.backends.mkldnn.is_available() and _onednn_linear_available()


def gemm_nt(a: torch.Tensor, b_t: torch.Tensor) -> torch.Tensor:
    """``a @ b_t.T`` for 2-D ``a`` (M, K) and ``b_t`` (N, K): (M, N).

    Uses oneDNN's matmul for contiguous float32 CPU operands, ``torch.mm`` otherwise.
    """
    if (
        _HAS_ONEDNN_LINEAR
        and a.dtype == torch.float32
        and b_t.dtype == torch.float32
        and a.device.type == "cpu"
        and a.is_contiguous()
        and b_t.is_contiguous()
    ):
        return torch.ops.mkldnn._linear_pointwise(a, b_t, None, "none", [], "")
    return torch.mm(a, b_t.t())
