"""PyTorch frontend: record a module's forward pass as a :class:`~edgecnn.graph.ir.Graph`.

The module runs on meta tensors (shapes only, no data, no arithmetic) under a
``TorchDispatchMode`` that sees every ATen operator after autograd and decomposition of
composite ops, so functional calls (``F.conv2d``, ``x @ w``), fused kernels (scaled-dot-product
attention, the native multi-head attention fast path) and in-place ops are all recorded.

Conventions
-----------
* Views (``view``, ``permute``, ``t``, slicing...) are aliases, not layers: their output carries the
  name of the tensor they view. A ``clone``/``contiguous`` that materialises a permuted view is a
  ``TRANSPOSE`` layer (it moves data).
* *Static* tensors are parameters, buffers, constants created inside forward, and anything computed
  from static tensors only (weight transposes, relative-position-bias gathers, attention masks).
  They are never layer inputs; a layer that reads one records its shape in ``Layer.params``.
* A module's own parameters are attributed to the first layer recorded while that module is the
  innermost running module; ``Graph.param_count`` is always ``sum(p.numel())`` over the model.
* Each recorded op's kind and attributes come from :data:`CLASSIFIERS`, keyed by ATen overload
  packet name, one handler per op family (``@classifies``); an op without one is ``UNKNOWN``
  and listed in ``Graph.meta["unknown_ops"]``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from edgecnn.errors import ModelLoadError, ShapeError
from edgecnn.graph.ir import STATIC_MIN_ATTR, Graph, Layer, OpKind, TensorInfo, check_input_shape

DEFAULT_INPUT_SHAPE: tuple[int, ...] = (1, 3, 224, 224)

_ACTIVATIONS = {
    "relu": "relu",
    "relu_": "relu",
    "hardtanh": "relu6",
    "hardtanh_": "relu6",
    "hardswish": "hardswish",
    "hardswish_": "hardswish",
    "hardsigmoid": "hardsigmoid",
    "hardsigmoid_": "hardsigmoid",
    "silu": "silu",
    "silu_": "silu",
    "sigmoid": "sigmoid",
    "sigmoid_": "sigmoid",
    "gelu": "gelu",
    "gelu_": "gelu",
    "tanh": "tanh",
    "tanh_": "tanh",
    "elu": "elu",
    "elu_": "elu",
    "leaky_relu": "leaky_relu",
    "leaky_relu_": "leaky_relu",
    "prelu": "prelu",
    "_prelu_kernel": "prelu",
    "mish": "mish",
    "mish_": "mish",
    "softplus": "softplus",
    "clamp": "clip",
    "clamp_": "clip",
    "clamp_min": "clip",
    "clamp_min_": "clip",
    "clamp_max": "clip",
    "clamp_max_": "clip",
    "log_sigmoid_forward": "log_sigmoid",
}

_ELEMENTWISE = {
    name: name.rstrip("_")
    for name in (
        "add add_ sub sub_ rsub mul mul_ div div_ pow pow_ sqrt rsqrt neg exp exp_ log abs "
        "where masked_fill masked_fill_ ne eq lt gt le ge logical_not bitwise_not copy_ fill_ "
        "erf erf_ reciprocal maximum minimum addcmul addcdiv lerp"
    ).split()
}

_SIMPLE: dict[str, OpKind] = {
    "native_batch_norm": OpKind.BATCHNORM,
    "_native_batch_norm_legit_no_training": OpKind.BATCHNORM,
    "_native_batch_norm_legit": OpKind.BATCHNORM,
    "_native_batch_norm_legit_functional": OpKind.BATCHNORM,
    "batch_norm": OpKind.BATCHNORM,
    "native_layer_norm": OpKind.LAYERNORM,
    "native_group_norm": OpKind.GROUPNORM,
    "instance_norm": OpKind.INSTANCENORM,
    "_softmax": OpKind.SOFTMAX,
    "_safe_softmax": OpKind.SOFTMAX,
    "_log_softmax": OpKind.SOFTMAX,
    "cat": OpKind.CONCAT,
    "stack": OpKind.CONCAT,
    "clone": OpKind.TRANSPOSE,
    "roll": OpKind.TRANSPOSE,
    "constant_pad_nd": OpKind.PAD,
    "reflection_pad2d": OpKind.PAD,
    "replication_pad2d": OpKind.PAD,
    "index": OpKind.SLICE,
    "index_select": OpKind.SLICE,
    "gather": OpKind.SLICE,
    "_to_copy": OpKind.CAST,
    "upsample_nearest2d": OpKind.RESIZE,
    "upsample_bilinear2d": OpKind.RESIZE,
    "upsample_bicubic2d": OpKind.RESIZE,
    "_upsample_nearest_exact2d": OpKind.RESIZE,
    "_upsample_bilinear2d_aa": OpKind.RESIZE,
    "native_dropout": OpKind.DROPOUT,
    "dropout": OpKind.DROPOUT,
}

_POOLS: dict[str, tuple[OpKind, str]] = {
    "max_pool2d_with_indices": (OpKind.MAXPOOL, "max"),
    "max_pool2d": (OpKind.MAXPOOL, "max"),
    "max_pool1d": (OpKind.MAXPOOL, "max"),
    "max_pool3d_with_indices": (OpKind.MAXPOOL, "max"),
    "avg_pool2d": (OpKind.AVGPOOL, "avg"),
    "avg_pool1d": (OpKind.AVGPOOL, "avg"),
    "avg_pool3d": (OpKind.AVGPOOL, "avg"),
    "_adaptive_avg_pool2d": (OpKind.AVGPOOL, "adaptive"),
    "adaptive_avg_pool2d": (OpKind.AVGPOOL, "adaptive"),
    "adaptive_max_pool2d": (OpKind.MAXPOOL, "adaptive"),
}

_REDUCE = {
    "mean": "mean",
    "sum": "sum",
    "amax": "max",
    "max": "max",
    "amin": "min",
    "min": "min",
    "var": "var",
    "var_mean": "var",
    "std": "std",
    "prod": "prod",
    "linalg_vector_norm": "norm",
    "norm": "norm",
    "logsumexp": "logsumexp",
    "cumsum": "cumsum",
}

_ATTENTION = {
    "_scaled_dot_product_flash_attention_for_cpu",
    "_scaled_dot_product_flash_attention",
    "_scaled_dot_product_efficient_attention",
    "_scaled_dot_product_cudnn_attention",
    "_scaled_dot_product_attention_math",
    "_scaled_dot_product_fused_attention_overrideable",
    "scaled_dot_product_attention",
}

_CREATION = {
    "empty",
    "empty_like",
    "empty_strided",
    "zeros",
    "zeros_like",
    "ones",
    "ones_like",
    "full",
    "full_like",
    "arange",
    "scalar_tensor",
    "new_zeros",
    "new_ones",
    "new_empty",
    "new_full",
    "lift_fresh",
    "lift_fresh_copy",
    "rand",
    "randn",
    "linspace",
    "eye",
    "tensor",
}

_IDENTITY_VIEWS = {
    "view",
    "_unsafe_view",
    "reshape",
    "_reshape_alias",
    "t",
    "transpose",
    "permute",
    "expand",
    "unsqueeze",
    "squeeze",
    "select",
    "slice",
    "split",
    "split_with_sizes",
    "chunk",
    "unbind",
    "alias",
    "as_strided",
    "as_strided_",
    "detach",
    "flatten",
    "narrow",
    "view_as",
    "expand_as",
    "diagonal",
    "unflatten",
    "contiguous",
    "unsqueeze_",
    "squeeze_",
    "t_",
    "transpose_",
}


def _tensors(obj: Any) -> list[torch.Tensor]:
    """Tensors inside ``obj`` (nested tuples/lists/dicts), in order; cheaper than tree_flatten."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (tuple, list)):
        out: list[torch.Tensor] = []
        for item in obj:
            if isinstance(item, torch.Tensor):
                out.append(item)
            elif isinstance(item, (tuple, list, dict)):
                out.extend(_tensors(item))
        return out
    if isinstance(obj, dict):
        return _tensors(list(obj.values()))
    return []


def _packet(func: Any) -> str:
    return func.overloadpacket.__name__ if hasattr(func, "overloadpacket") else str(func)


def _pair(v: Any, n: int = 2) -> tuple[int, ...]:
    if isinstance(v, (list, tuple)):
        vals = [int(x) for x in v]
        if len(vals) == 1:
            vals = vals * n
        return tuple(vals)
    return (int(v),) * n


#: Ops that write a scalar into a tensor: on static tensors, their scalars are remembered.
_FILLS = frozenset(
    {"full", "full_like", "new_full", "fill", "fill_", "masked_fill", "masked_fill_", "where"}
    | {"scalar_tensor"}
)


def _scalars(args: tuple, kwargs: dict) -> list[float]:
    """The top-level numeric (not bool) arguments of an op call, as floats."""
    vals = [*args, *kwargs.values()]
    return [float(v) for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]


class _Recorder(TorchDispatchMode):
    """Records ATen ops on meta tensors into :class:`Layer` s."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.layers: list[Layer] = []
        self.names: dict[int, str] = {}
        self.static: set[int] = set()
        self.keep: list[Any] = []  # keeps tensors alive so ids are never reused
        self.module_stack: list[str] = []
        self.origin: dict[
            int, frozenset[int]
        ] = {}  # static tensor -> ids of the parameters it derives from
        self.param_numel: dict[int, int] = {}
        #: static tensor -> the smallest scalar written into it on the way (STATIC_MIN_ATTR)
        self.fill_min: dict[int, float] = {}
        self.attributed: set[int] = set()
        self.name_counts: dict[str, int] = {}
        self.unknown: list[str] = []
        self.modules = list(model.named_modules())
        self.leaf_scopes = {n for n, m in self.modules if n and not m._modules}
        for _, m in self.modules:
            for p in m.parameters(recurse=False):
                self.add_static(p, counts_as_param=True)
            for b in m.buffers(recurse=False):
                self.add_static(b)

    def add_static(self, t: torch.Tensor, counts_as_param: bool = False) -> None:
        """Register a parameter or buffer (``counts_as_param`` for trainable parameters)."""
        self.static.add(id(t))
        self.keep.append(t)
        if counts_as_param:
            self.origin[id(t)] = frozenset({id(t)})
            self.param_numel[id(t)] = t.numel()

    # -- naming ---------------------------------------------------------------------------
    def _name(self, t: torch.Tensor) -> str:
        return self.names.get(id(t), "input")

    def _set_name(self, t: Any, name: str) -> None:
        if isinstance(t, torch.Tensor):
            self.names[id(t)] = name
            self.keep.append(t)

    def _layer_name(self, op: str) -> str:
        scope = self.module_stack[-1] if self.module_stack else ""
        base = scope if scope in self.leaf_scopes else (f"{scope}.{op}" if scope else op)
        k = self.name_counts.get(base, 0) + 1
        self.name_counts[base] = k
        return base if k == 1 else f"{base}#{k}"

    # -- dispatch -------------------------------------------------------------------------
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        fast = _FAST_META.get(_packet(func))
        out = fast(func, args, kwargs) if fast is not None else None
        if out is None:
            out = func(*args, **kwargs)
        self._record(func, args, kwargs, out)
        return out

    def _record(self, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
        packet = _packet(func)
        tensor_args = _tensors(args) + _tensors(list(kwargs.values()))
        out_tensors = _tensors(out)
        dynamic = [a for a in tensor_args if id(a) not in self.static]

        if packet in _CREATION or not dynamic:
            derived = frozenset().union(*(self.origin.get(id(a), frozenset()) for a in tensor_args))
            lows = [self.fill_min[id(a)] for a in tensor_args if id(a) in self.fill_min]
            if packet in _FILLS:
                lows += _scalars(args, kwargs)
            for o in out_tensors:
                self.static.add(id(o))
                self.keep.append(o)
                if derived:
                    self.origin[id(o)] = derived
                if lows:
                    self.fill_min[id(o)] = min(lows)
            return
        if packet in _IDENTITY_VIEWS or getattr(func, "is_view", False):
            src = self._name(dynamic[0])
            for o in out_tensors:
                self._set_name(o, src)
            return

        kind, attrs = classify(packet, args, self.static)
        if kind is OpKind.ELEMENTWISE:
            lows = [self.fill_min[id(a)] for a in tensor_args if id(a) in self.fill_min]
            if lows:
                attrs[STATIC_MIN_ATTR] = min(lows)
        if kind is OpKind.DROPOUT:
            for o in out_tensors:
                self._set_name(o, self._name(dynamic[0]))
            return
        name = self._layer_name(attrs.pop("_label", packet))
        params = self._static_params(func, args, kwargs)
        if kind is OpKind.LINEAR and "mat2" in params:
            params["weight"] = tuple(reversed(params.pop("mat2")))
            if "self" in params:
                params["bias"] = params.pop("self")
        inputs = [TensorInfo(self._name(a), tuple(a.shape), _dtype(a)) for a in dynamic]
        primary = out_tensors[:1]
        outputs = [TensorInfo(f"{name}:out", tuple(o.shape), _dtype(o)) for o in primary]
        for o in primary:
            self._set_name(o, f"{name}:out")
        read = frozenset().union(*(self.origin.get(id(a), frozenset()) for a in tensor_args))
        fresh = read - self.attributed
        self.attributed |= fresh
        pcount = sum(self.param_numel[p] for p in fresh)
        if kind is OpKind.UNKNOWN:
            self.unknown.append(str(func))
        self.layers.append(
            Layer(
                name=name,
                op=kind,
                inputs=inputs,
                outputs=outputs,
                params=params,
                attrs=attrs,
                source_op=str(func),
                param_count=pcount,
            )
        )

    def _static_params(self, func: Any, args: tuple, kwargs: dict) -> dict[str, tuple[int, ...]]:
        params: dict[str, tuple[int, ...]] = {}
        schema_args = getattr(getattr(func, "_schema", None), "arguments", [])
        values = list(args) + [kwargs.get(a.name) for a in schema_args[len(args) :]]
        for i, v in enumerate(values):
            argname = schema_args[i].name if i < len(schema_args) else f"arg{i}"
            items = v if isinstance(v, (list, tuple)) else [v]
            for j, t in enumerate(items):
                if isinstance(t, torch.Tensor) and id(t) in self.static and t.numel() > 1:
                    key = argname if len(items) == 1 else f"{argname}{j}"
                    params[key] = tuple(t.shape)
        return params

    # -- module scope tracking ------------------------------------------------------------
    @contextmanager
    def tracking(self, model: nn.Module) -> Iterator[None]:
        qualnames = {id(m): n for n, m in self.modules}

        def pre(mod: nn.Module, _inputs: Any) -> None:
            self.module_stack.append(qualnames.get(id(mod), type(mod).__name__))

        def post(mod: nn.Module, _inputs: Any, _output: Any) -> None:
            if self.module_stack:
                self.module_stack.pop()

        h1 = nn.modules.module.register_module_forward_pre_hook(pre)
        h2 = nn.modules.module.register_module_forward_hook(post)
        try:
            yield
        finally:
            h1.remove()
            h2.remove()


# ----------------------------------------------------------------------------- op classification
#: What :func:`classify` returns: the layer's kind and its attributes (``_label`` names the layer).
Classified = tuple[OpKind, dict[str, Any]]
#: ``handler(packet, args, static)``; ``static`` holds the ids of parameters, buffers and tensors
#: derived from them only.
Classifier = Callable[[str, tuple, set[int]], Classified]

#: ATen overload packet name -> its classifier (one handler per op family); built at import time.
CLASSIFIERS: dict[str, Classifier] = {}


def classifies(*packets: str) -> Callable[[Classifier], Classifier]:
    """Register a classifier for ATen ``packets``; a packet registered twice raises."""

    def register(fn: Classifier) -> Classifier:
        for packet in packets:
            if packet in CLASSIFIERS:
                raise ValueError(f"duplicate ATen classifier for '{packet}'")
            CLASSIFIERS[packet] = fn
        return fn

    return register


def classify(packet: str, args: tuple, static: set[int]) -> Classified:
    """Kind and attributes of ATen op ``packet``; ``UNKNOWN`` for an op with no classifier."""
    handler = CLASSIFIERS.get(packet)
    if handler is None:
        return OpKind.UNKNOWN, {"_label": packet}
    return handler(packet, args, static)


@classifies("convolution", "_convolution", "conv2d", "conv1d", "conv3d")
def _conv(packet: str, args: tuple, static: set[int]) -> Classified:
    w = args[1]
    nsp = w.dim() - 2
    transposed = bool(args[6]) if len(args) > 6 else False
    padding = _pair(args[4], nsp)
    attrs: dict[str, Any] = {
        "kernel": tuple(w.shape[2:]),
        "stride": _pair(args[3], nsp),
        "padding": padding + padding,
        "dilation": _pair(args[5], nsp),
        "groups": int(args[8]) if len(args) > 8 else 1,
        "transposed": transposed,
        "_label": "conv_transpose" if transposed else "conv",
    }
    return (OpKind.CONV_TRANSPOSE if transposed else OpKind.CONV), attrs


_ADD_MATMUL = ("addmm", "baddbmm", "addbmm")  # (bias, a, b): the matrices are args 1 and 2


@classifies(*_ADD_MATMUL, "mm", "bmm", "matmul", "linear")
def _matmul(packet: str, args: tuple, static: set[int]) -> Classified:
    """A product with a static operand (a weight) is LINEAR, two activations MATMUL."""
    mats = (args[1], args[2]) if packet in _ADD_MATMUL else (args[0], args[1])
    if any(id(m) in static for m in mats):
        return OpKind.LINEAR, {"_label": "linear"}
    return OpKind.MATMUL, {"_label": "matmul"}


@classifies(*_ATTENTION)
def _attention(packet: str, args: tuple, static: set[int]) -> Classified:
    return OpKind.ATTENTION, {"_label": "attention"}


@classifies("_native_multi_head_attention")
def _fused_mha(packet: str, args: tuple, static: set[int]) -> Classified:
    """The native MHA fast path: input projections, attention and output projection in one op."""
    attrs = {"num_heads": int(args[4]), "embed_dim": int(args[3]), "fused_projections": True}
    return OpKind.ATTENTION, {"_label": "attention", **attrs}


@classifies(*_POOLS)
def _pool(packet: str, args: tuple, static: set[int]) -> Classified:
    kind, mode = _POOLS[packet]
    attrs: dict[str, Any] = {
        "_label": "maxpool" if kind is OpKind.MAXPOOL else "avgpool",
        "mode": mode,
    }
    if mode != "adaptive":
        k = _pair(args[1])
        attrs["kernel"] = k
        stride = args[2] if len(args) > 2 and args[2] else k
        attrs["stride"] = _pair(stride)
        pad = _pair(args[3]) if len(args) > 3 else (0, 0)
        attrs["padding"] = pad + pad
    return kind, attrs


@classifies(*_ACTIVATIONS)
def _activation(packet: str, args: tuple, static: set[int]) -> Classified:
    fn = _ACTIVATIONS[packet]
    return OpKind.ACTIVATION, {"_label": fn, "fn": fn}


@classifies(*_ELEMENTWISE)
def _elementwise(packet: str, args: tuple, static: set[int]) -> Classified:
    fn = _ELEMENTWISE[packet]
    return OpKind.ELEMENTWISE, {"_label": fn, "fn": fn}


@classifies("mean")
def _mean(packet: str, args: tuple, static: set[int]) -> Classified:
    """A spatial mean of an NCHW tensor is global average pooling (how adaptive 1x1 pooling
    decomposes); any other mean is a reduction."""
    if args[0].dim() == 4 and len(args) > 1 and args[1] is not None:
        if sorted(int(d) % 4 for d in args[1]) == [2, 3]:
            return OpKind.AVGPOOL, {"_label": "avgpool", "mode": "global"}
    return _reduce(packet, args, static)


@classifies(*(p for p in _REDUCE if p != "mean"))
def _reduce(packet: str, args: tuple, static: set[int]) -> Classified:
    fn = _REDUCE[packet]
    return OpKind.REDUCE, {"_label": f"reduce_{fn}", "fn": fn}


@classifies(*_SIMPLE)
def _simple(packet: str, args: tuple, static: set[int]) -> Classified:
    """Ops whose kind is fixed by the name alone (norms, softmax, concat, pad, resize...)."""
    return _SIMPLE[packet], {"_label": packet.strip("_").replace("native_", "")}


def _like_first(func: Any, args: tuple, kwargs: dict) -> Any:
    """Shape-preserving ops: output like the input (in-place ops return the input itself)."""
    x = args[0]
    if not isinstance(x, torch.Tensor) or not x.is_meta:
        return None
    if func._schema.name.endswith("_") or str(func).split(".")[1].endswith("_"):
        return x
    return torch.empty_like(x)


def _batch_norm_meta(func: Any, args: tuple, kwargs: dict) -> Any:
    x = args[0]
    if not isinstance(x, torch.Tensor) or not x.is_meta:
        return None
    stat = torch.empty((0,), device="meta", dtype=x.dtype)
    return torch.empty_like(x), stat, stat


def _layer_norm_meta(func: Any, args: tuple, kwargs: dict) -> Any:
    x, normalized = args[0], args[1]
    if not isinstance(x, torch.Tensor) or not x.is_meta:
        return None
    stat_shape = tuple(x.shape[: x.dim() - len(normalized)]) + (1,) * len(normalized)
    stat = torch.empty(stat_shape, device="meta", dtype=x.dtype)
    return torch.empty_like(x), stat, stat


def _binary_meta(func: Any, args: tuple, kwargs: dict) -> Any:
    if len(args) < 2 or kwargs:
        return None
    a, b = args[0], args[1]
    if not isinstance(a, torch.Tensor) or not a.is_meta:
        return None
    if str(func).split(".")[1].endswith("_"):
        return a
    if isinstance(b, torch.Tensor):
        shape = torch.broadcast_shapes(a.shape, b.shape)
    else:
        shape = a.shape
    return torch.empty(shape, device="meta", dtype=torch.result_type(a, b))


def _meta_out(shape: Any, like: torch.Tensor) -> torch.Tensor:
    return torch.empty(tuple(shape), device="meta", dtype=like.dtype)


def _all_meta(*ts: Any) -> bool:
    return all(isinstance(t, torch.Tensor) and t.is_meta for t in ts)


def _conv_meta(func: Any, args: tuple, kwargs: dict) -> Any:
    if kwargs or len(args) < 9 or not _all_meta(args[0], args[1]):
        return None
    x, w = args[0], args[1]
    stride, padding, dilation, transposed, out_pad, groups = args[3:9]
    nsp = w.dim() - 2
    if x.dim() != nsp + 2:
        return None
    stride, padding, dilation = _pair(stride, nsp), _pair(padding, nsp), _pair(dilation, nsp)
    if transposed:
        out_pad = _pair(out_pad, nsp)
        spatial = [
            (x.shape[2 + i] - 1) * stride[i]
            - 2 * padding[i]
            + dilation[i] * (w.shape[2 + i] - 1)
            + out_pad[i]
            + 1
            for i in range(nsp)
        ]
        channels = w.shape[1] * int(groups)
    else:
        spatial = [
            (x.shape[2 + i] + 2 * padding[i] - dilation[i] * (w.shape[2 + i] - 1) - 1) // stride[i]
            + 1
            for i in range(nsp)
        ]
        channels = w.shape[0]
    if min(spatial) < 1:
        return None  # let ATen raise its own error
    return _meta_out((x.shape[0], channels, *spatial), x)


def _addmm_meta(func: Any, args: tuple, kwargs: dict) -> Any:
    a, b = (args[1], args[2]) if _packet(func) in ("addmm", "baddbmm") else (args[0], args[1])
    if not _all_meta(a, b) or a.shape[-1] != b.shape[-2] or a.dim() != b.dim():
        return None
    return _meta_out((*a.shape[:-1], b.shape[-1]), a)


def _mean_meta(func: Any, args: tuple, kwargs: dict) -> Any:
    x = args[0]
    if kwargs or len(args) < 2 or not _all_meta(x) or args[1] is None:
        return None
    keep = bool(args[2]) if len(args) > 2 else False
    dims = {int(d) % x.dim() for d in args[1]}
    shape = [1 if i in dims else n for i, n in enumerate(x.shape) if keep or i not in dims]
    return _meta_out(shape, x)


def _cat_meta(func: Any, args: tuple, kwargs: dict) -> Any:
    tensors = [t for t in args[0] if t.dim() > 1 or t.numel() > 0]
    if kwargs or not tensors or not _all_meta(*tensors):
        return None
    dim = (int(args[1]) if len(args) > 1 else 0) % tensors[0].dim()
    shape = list(tensors[0].shape)
    if any(t.dim() != len(shape) for t in tensors):
        return None
    shape[dim] = sum(t.shape[dim] for t in tensors)
    return _meta_out(shape, tensors[0])


#: Ops whose meta output we build directly: their stock meta kernels are Python decompositions
#: that cost ~0.5 ms a call, which dominated profiling time. Anything not listed runs as usual.
_FAST_META: dict[str, Any] = {
    **{k: _batch_norm_meta for k in ("native_batch_norm", "_native_batch_norm_legit_no_training")},
    "native_layer_norm": _layer_norm_meta,
    "convolution": _conv_meta,
    "addmm": _addmm_meta,
    "mm": _addmm_meta,
    "bmm": _addmm_meta,
    "mean": _mean_meta,
    "cat": _cat_meta,
    **{k: _binary_meta for k in ("add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_")},
    **{
        k: _like_first
        for k in (
            "relu relu_ hardtanh hardtanh_ hardswish hardswish_ hardsigmoid hardsigmoid_ silu "
            "silu_ sigmoid sigmoid_ gelu gelu_ tanh tanh_ _softmax _safe_softmax roll clamp "
            "clamp_ clamp_min clamp_min_ clamp_max clamp_max_"
        ).split()
    },
}


def _dtype(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def graph_from_module(
    module: nn.Module,
    input_shape: tuple[int, ...] | list[int] | None = None,
    name: str | None = None,
) -> Graph:
    """Record ``module`` (in eval mode) on a meta input of ``input_shape`` as a Graph.

    A module with real weights runs through ``torch.func.functional_call`` with meta stand-ins
    for its parameters and buffers, so its weights are neither read nor modified and no
    convolution is computed. The module's train/eval mode is restored afterwards.
    """
    shape = check_input_shape(tuple(int(d) for d in (input_shape or DEFAULT_INPUT_SHAPE)))
    if not isinstance(module, nn.Module):
        raise ModelLoadError(f"expected a torch.nn.Module, got {type(module).__name__}")
    named = list(
        itertools.chain(
            module.named_parameters(remove_duplicate=False),
            module.named_buffers(remove_duplicate=False),
        )
    )
    stand_ins: dict[str, torch.Tensor] = {}
    if not all(t.is_meta for _, t in named):
        by_id: dict[int, torch.Tensor] = {}
        for n, t in named:
            if id(t) not in by_id:
                stand_in = torch.empty(t.shape, dtype=t.dtype, device="meta")
                if isinstance(t, nn.Parameter):
                    stand_in = nn.Parameter(stand_in, requires_grad=t.requires_grad)
                by_id[id(t)] = stand_in
            stand_ins[n] = by_id[id(t)]
    was_training = module.training
    module.eval()
    recorder = _Recorder(module)
    for t in stand_ins.values():
        recorder.add_static(t, counts_as_param=isinstance(t, nn.Parameter))
    x = torch.empty(shape, device="meta")
    recorder._set_name(x, "input")
    try:
        with torch.no_grad(), recorder.tracking(module), recorder:
            if stand_ins:
                out = torch.func.functional_call(module, stand_ins, (x,), strict=False)
            else:
                out = module(x)
    except Exception as e:  # the model rejects the shape: a user error, not our bug
        first = str(e).splitlines()[0] if str(e) else ""
        raise ShapeError(
            f"the model's forward pass failed for input shape {'x'.join(map(str, shape))}: "
            f"{type(e).__name__}: {first} (pass the input shape it expects with --input-shape)"
        ) from None
    finally:
        module.train(was_training)
    outputs = [TensorInfo(recorder._name(o), tuple(o.shape), _dtype(o)) for o in _tensors(out)]
    total = sum(
        p.numel() for p in {id(p): p for _, p in named if isinstance(p, nn.Parameter)}.values()
    )
    attributed = sum(layer.param_count for layer in recorder.layers)
    return Graph(
        name=name or type(module).__name__,
        layers=recorder.layers,
        inputs=[TensorInfo("input", shape, "float32")],
        outputs=outputs,
        param_count=total,
        meta={
            "frontend": "torch",
            "unattributed_params": total - attributed,
            "unknown_ops": sorted(set(recorder.unknown)),
        },
    )
