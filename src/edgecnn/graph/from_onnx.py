"""ONNX frontend: an ONNX model (opset 11+) as a :class:`~edgecnn.graph.ir.Graph`.

Shapes come from ONNX shape inference (with data propagation); when it leaves a tensor's shape
unknown (TorchScript exports of ShuffleNet's channel-shuffle Reshape, for instance) ONNX
Runtime's symbolic shape inference runs as a second pass. A model whose inputs have symbolic
dimensions needs an explicit input shape.

Initializers, ``Constant`` outputs and anything computed only from them (``Shape`` -> ``Gather``
chains, weight transposes) are *static*: they are recorded in ``Layer.params``, never as layer
inputs. ``Graph.param_count`` counts floating-point initializers except BatchNorm running
statistics (the model's trainable parameters).
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecnn.errors import ModelLoadError, ShapeError
from edgecnn.graph.ir import STATIC_MIN_ATTR, Graph, Layer, OpKind, TensorInfo, check_input_shape

_KIND: dict[str, tuple[OpKind, str | None]] = {
    "Conv": (OpKind.CONV, None),
    "QLinearConv": (OpKind.CONV, None),
    "ConvInteger": (OpKind.CONV, None),
    "ConvTranspose": (OpKind.CONV_TRANSPOSE, None),
    "Gemm": (OpKind.LINEAR, None),
    "QGemm": (OpKind.LINEAR, None),
    "MatMul": (OpKind.MATMUL, None),
    "MatMulInteger": (OpKind.MATMUL, None),
    "QLinearMatMul": (OpKind.MATMUL, None),
    "MaxPool": (OpKind.MAXPOOL, None),
    "AveragePool": (OpKind.AVGPOOL, None),
    "QLinearAveragePool": (OpKind.AVGPOOL, None),
    "GlobalAveragePool": (OpKind.AVGPOOL, "global"),
    "QLinearGlobalAveragePool": (OpKind.AVGPOOL, "global"),
    "GlobalMaxPool": (OpKind.MAXPOOL, "global"),
    "BatchNormalization": (OpKind.BATCHNORM, None),
    "LayerNormalization": (OpKind.LAYERNORM, None),
    "GroupNormalization": (OpKind.GROUPNORM, None),
    "InstanceNormalization": (OpKind.INSTANCENORM, None),
    "Softmax": (OpKind.SOFTMAX, None),
    "LogSoftmax": (OpKind.SOFTMAX, None),
    "Resize": (OpKind.RESIZE, None),
    "Upsample": (OpKind.RESIZE, None),
    "Concat": (OpKind.CONCAT, None),
    "QLinearConcat": (OpKind.CONCAT, None),
    "Split": (OpKind.SPLIT, None),
    "Reshape": (OpKind.RESHAPE, None),
    "Flatten": (OpKind.RESHAPE, None),
    "Squeeze": (OpKind.RESHAPE, None),
    "Unsqueeze": (OpKind.RESHAPE, None),
    "Identity": (OpKind.RESHAPE, None),
    "Expand": (OpKind.RESHAPE, None),
    "Dropout": (OpKind.DROPOUT, None),
    "Transpose": (OpKind.TRANSPOSE, None),
    "Tile": (OpKind.TRANSPOSE, None),
    "Slice": (OpKind.RESHAPE, None),  # a strided view, as torch slicing is: no data moved
    "Gather": (OpKind.SLICE, None),
    "GatherElements": (OpKind.SLICE, None),
    "Pad": (OpKind.PAD, None),
    "Cast": (OpKind.CAST, None),
    "QuantizeLinear": (OpKind.CAST, None),
    "DequantizeLinear": (OpKind.CAST, None),
    "DynamicQuantizeLinear": (OpKind.CAST, None),
    "Shape": (OpKind.CONSTANT, None),
    "Size": (OpKind.CONSTANT, None),
    "Constant": (OpKind.CONSTANT, None),
    "ConstantOfShape": (OpKind.CONSTANT, None),
    "Range": (OpKind.CONSTANT, None),
}
for _op, _fn in {
    "Relu": "relu",
    "Clip": "clip",
    "HardSwish": "hardswish",
    "HardSigmoid": "hardsigmoid",
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "LeakyRelu": "leaky_relu",
    "Elu": "elu",
    "Selu": "selu",
    "Gelu": "gelu",
    "Softplus": "softplus",
    "Mish": "mish",
    "PRelu": "prelu",
    "QLinearLeakyRelu": "leaky_relu",
    "QLinearSigmoid": "sigmoid",
}.items():
    _KIND[_op] = (OpKind.ACTIVATION, _fn)
for _op in (
    "Add Sub Mul Div Pow Sqrt Exp Log Erf Neg Abs Reciprocal Where Equal Less Greater "
    "LessOrEqual GreaterOrEqual Not And Or Max Min Sum Mean QLinearAdd QLinearMul"
).split():
    _KIND[_op] = (OpKind.ELEMENTWISE, _op.lower().removeprefix("qlinear"))
for _op in "ReduceMean ReduceSum ReduceMax ReduceMin ReduceL2 ReduceProd ReduceSumSquare".split():
    _KIND[_op] = (OpKind.REDUCE, _op.removeprefix("Reduce").lower())

#: Which node input holds the weight (and the bias) for ops with a quantized layout.
_WEIGHT_INPUT = {"QLinearConv": 3, "QLinearMatMul": 3, "ConvInteger": 1, "MatMulInteger": 1}


def read_onnx(path: str | Path) -> Any:
    """Load an ONNX file with a clear error for a missing, truncated or non-ONNX file."""
    import onnx
    from google.protobuf.message import DecodeError

    p = Path(path)
    if not p.is_file():
        raise ModelLoadError(f"ONNX file '{p}' not found: check the path")
    data = p.read_bytes()
    try:
        model = onnx.load_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as e:
        raise ModelLoadError(
            f"'{p}' is not a valid ONNX model (corrupt or truncated: {type(e).__name__}); "
            "re-export it or check the download"
        ) from None
    if not model.graph.node:
        raise ModelLoadError(
            f"'{p}' contains no ONNX graph nodes (truncated or not an ONNX file): re-export it"
        )
    if check_external_data(model, p):
        try:
            onnx.load_external_data_for_model(model, str(p.parent))
        except (OSError, ValueError, onnx.checker.ValidationError) as e:
            raise ModelLoadError(
                f"cannot read the external data of '{p}' ({type(e).__name__}: "
                f"{_first_line(e)}): keep the weight files next to the model, as exported"
            ) from None
    return model


def external_tensors(model: Any) -> list[Any]:
    """Every ``TensorProto`` of ``model`` stored outside it: initializers and ``Constant`` node
    values, subgraphs included."""
    import onnx

    def graph_tensors(g: Any) -> list[Any]:
        out = list(g.initializer)
        for n in g.node:
            for a in n.attribute:
                out += ([a.t] if a.HasField("t") else []) + list(a.tensors)
                for sub in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                    out += graph_tensors(sub)
        return out

    return [t for t in graph_tensors(model.graph) if t.data_location == onnx.TensorProto.EXTERNAL]


def check_external_data(model: Any, path: str | Path) -> bool:
    """Refuse external data that lives outside the model's folder; True if there is any.

    A ``location`` must be a relative path that stays inside the folder of ``path`` after
    resolving ``..`` and symbolic links: ``../secret`` or ``/etc/passwd`` would let a model file
    read any file the user can read.
    """
    tensors = external_tensors(model)
    folder = Path(path).resolve().parent
    for t in tensors:
        location = next((e.value for e in t.external_data if e.key == "location"), "")
        target = (folder / location).resolve()
        if not location or Path(location).is_absolute() or not target.is_relative_to(folder):
            raise ModelLoadError(
                f"'{path}': tensor '{t.name}' keeps its data at '{location}', outside the "
                f"model's folder '{folder}'; refused: put the data file next to the model "
                "(a relative location inside its folder)"
            )
    return bool(tensors)


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0][:200] if lines else ""


def graph_from_onnx(source: Any, input_shape: tuple[int, ...] | None = None) -> Graph:
    """Build the IR of an ONNX model (a path or a ``ModelProto``)."""
    import onnx

    if isinstance(source, (str, Path)):
        model = read_onnx(source)
        name = Path(source).stem
    else:
        model = onnx.ModelProto()
        model.CopyFrom(source)
        name = model.graph.name or "onnx-model"
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset and opset < 11:
        raise ModelLoadError(
            f"ONNX opset {opset} is older than 11: upgrade it with onnx.version_converter"
        )
    if input_shape is not None:
        input_shape = check_input_shape(tuple(int(d) for d in input_shape))
    init_names = {i.name for i in model.graph.initializer}
    real_inputs = [i for i in model.graph.input if i.name not in init_names]
    _fix_input_shapes(model, real_inputs, input_shape)
    shapes = _infer_shapes(model)
    return _build(model, shapes, name)


def _fix_input_shapes(model: Any, inputs: list, input_shape: tuple[int, ...] | None) -> None:
    for idx, inp in enumerate(inputs):
        dims = inp.type.tensor_type.shape.dim
        symbolic = [
            d.dim_param or "?" for d in dims if not d.HasField("dim_value") or d.dim_value <= 0
        ]
        if input_shape is not None and idx == 0:
            declared = [d.dim_value if d.HasField("dim_value") else None for d in dims]
            check_declared_shape(inp.name, declared, input_shape)
            for d, v in zip(dims, input_shape, strict=True):
                d.ClearField("dim_param")
                d.dim_value = v
        elif symbolic:
            raise ShapeError(
                f"model input '{inp.name}' has symbolic dimensions {_dims_text(dims)}: "
                "pass a concrete shape with --input-shape, e.g. 1x3x224x224"
            )


def check_declared_shape(
    name: str, declared: list[int | str | None], shape: tuple[int, ...] | list[int]
) -> None:
    """Refuse ``shape`` for an ONNX input declared as ``declared`` (ints are fixed dims;
    strings, None and values <= 0 are symbolic) when the ranks or a fixed dim differ. The one
    check of ``--input-shape`` against an ONNX model (frontend and ORT feeds)."""
    text = "x".join(map(str, shape))
    if len(declared) != len(shape):
        raise ShapeError(
            f"--input-shape {text} has {len(shape)} dims but model input '{name}' has "
            f"{len(declared)}"
        )
    fixed = "x".join(str(d) if isinstance(d, int) and d > 0 else "?" for d in declared)
    for d, v in zip(declared, shape, strict=True):
        if isinstance(d, int) and d > 0 and d != v:
            raise ShapeError(
                f"--input-shape {text} conflicts with model input '{name}' of fixed shape "
                f"{fixed}: give the model's own shape"
            )


def _dims_text(dims: Any) -> str:
    return "x".join(
        str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?") for d in dims
    )


def _static_shape(vi: Any) -> tuple[int, ...] | None:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    dims = []
    for d in t.shape.dim:
        if not d.HasField("dim_value") or d.dim_value < 0:
            return None
        dims.append(int(d.dim_value))
    return tuple(dims)


def _collect(model: Any) -> dict[str, tuple[tuple[int, ...] | None, int]]:
    out: dict[str, tuple[tuple[int, ...] | None, int]] = {}
    g = model.graph
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        out[vi.name] = (_static_shape(vi), vi.type.tensor_type.elem_type)
    for init in g.initializer:
        out[init.name] = (tuple(int(d) for d in init.dims), init.data_type)
    return out


def _infer_shapes(model: Any) -> dict[str, tuple[tuple[int, ...] | None, int]]:
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception as e:  # noqa: BLE001 - onnx raises several types for malformed graphs
        raise ModelLoadError(f"ONNX shape inference failed: {str(e).splitlines()[0]}") from None
    shapes = _collect(inferred)
    needed = [o for n in inferred.graph.node for o in n.output if o]
    if all(shapes.get(o, (None, 0))[0] is not None for o in needed):
        return shapes
    try:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

        with _scratch_cwd():  # on failure it saves sym_shape_infer_temp.onnx (+ data) in "."
            symbolic = SymbolicShapeInference.infer_shapes(inferred, auto_merge=True)
    except Exception:  # noqa: BLE001 - best effort second pass
        symbolic = None
    if symbolic is not None:
        for k, v in _collect(symbolic).items():
            if v[0] is not None or k not in shapes:
                shapes[k] = v
    missing = [o for o in needed if shapes.get(o, (None, 0))[0] is None]
    if missing:
        shapes.update(_shapes_by_running(inferred, missing))
    return shapes


@contextlib.contextmanager
def _scratch_cwd() -> Iterator[None]:
    """Run the body in a fresh temporary working directory (removed afterwards), for library
    code that writes files into the current directory."""
    with tempfile.TemporaryDirectory(prefix="edgecnn-onnx-") as d:
        previous = os.getcwd()
        os.chdir(d)
        try:
            yield
        finally:
            os.chdir(previous)


def _shapes_by_running(model: Any, names: list[str]) -> dict[str, tuple[tuple[int, ...], int]]:
    """Last resort: run the model once in ONNX Runtime on zeros and read the missing shapes.

    Used when static shape inference cannot see through a data-dependent constant expression
    (TorchScript exports of ViT's class-token Expand, for instance). Returns what it could get.
    """
    import numpy as np
    import onnx

    try:
        import onnxruntime as ort

        probe = onnx.ModelProto()
        probe.CopyFrom(model)
        known = {o.name for o in probe.graph.output}
        for name in names:
            if name not in known:
                probe.graph.output.append(onnx.ValueInfoProto(name=name))
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        opts.log_severity_level = 3
        sess = ort.InferenceSession(
            probe.SerializeToString(), opts, providers=["CPUExecutionProvider"]
        )
        feeds = {}
        for inp in sess.get_inputs():
            dtype = {"tensor(float)": np.float32, "tensor(int64)": np.int64}.get(
                inp.type, np.float32
            )
            feeds[inp.name] = np.zeros([int(d) for d in inp.shape], dtype=dtype)
        values = sess.run(names, feeds)
    except Exception:  # noqa: BLE001 - best effort; the caller reports what stays unknown
        return {}
    return {n: (tuple(int(d) for d in v.shape), 1) for n, v in zip(names, values, strict=True)}


_ELEM_DTYPE = {
    1: "float32",
    2: "uint8",
    3: "int8",
    6: "int32",
    7: "int64",
    9: "bool",
    10: "float16",
    11: "float64",
    16: "bfloat16",
}


def _attrs(node: Any) -> dict[str, Any]:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _build(model: Any, shapes: dict, name: str) -> Graph:
    """The Graph of a shape-inferred model: one layer per node that reads an activation."""
    g = model.graph
    param_numel = _parameter_sizes(g)
    st = _BuildState(
        shapes=shapes,
        static={i.name for i in g.initializer},
        origin={k: {k} for k in param_numel},
        initializers={t.name: t for t in g.initializer},
    )
    skip, gated = _gated_activations(g)
    layers: list[Layer] = []
    for idx, node in enumerate(g.node):
        if idx in skip:
            continue
        kind, fn, ins = _node_kind(node, gated.get(idx))
        if _propagate_static(node, kind, ins, st):
            continue
        _require_output_shapes(node, idx, shapes)
        if node.op_type == "Einsum":
            k = einsum_reduction(_attrs(node).get("equation", b""), [shapes[i][0] for i in ins])
            kind = OpKind.MATMUL if k is not None else OpKind.UNKNOWN
        layers.append(_node_layer(node, idx, kind, fn, ins, st, param_numel))
    unknown = sorted({layer.source_op for layer in layers if layer.op is OpKind.UNKNOWN})
    init_names = {i.name for i in g.initializer}
    return Graph(
        name=name,
        layers=layers,
        inputs=[st.info(i.name) for i in g.input if i.name not in init_names],
        outputs=[st.info(o.name) for o in g.output],
        param_count=sum(param_numel.values()),
        meta={"frontend": "onnx", "unknown_ops": unknown},
    )


@dataclass
class _BuildState:
    """What :func:`_build` carries from node to node.

    ``static``: tensors computed from initializers only; ``origin``: static tensor -> the
    parameters it derives from (DequantizeLinear, Transpose...); ``attributed``: parameters
    already counted by an earlier layer; ``used_names``: layer names given so far.
    """

    shapes: dict
    static: set[str]
    origin: dict[str, set[str]]
    #: static float tensor -> its smallest value (initializers and Constant nodes, exact, read
    #: on first use from ``initializers``; carried through the static nodes computed from them
    #: as the smallest of their inputs')
    static_min: dict[str, float | None] = field(default_factory=dict)
    initializers: dict[str, Any] = field(default_factory=dict)
    attributed: set[str] = field(default_factory=set)
    used_names: dict[str, int] = field(default_factory=dict)

    def info(self, tensor: str) -> TensorInfo:
        shape, elem = self.shapes.get(tensor, (None, 1))
        return TensorInfo(tensor, shape or (), _ELEM_DTYPE.get(elem, "float32"))

    def min_of(self, tensor: str) -> float | None:
        """The smallest value of a static float tensor, if known (see ``static_min``)."""
        if tensor not in self.static_min:
            t = self.initializers.get(tensor)
            self.static_min[tensor] = _float_min(t) if t is not None else None
        return self.static_min[tensor]

    def unique_name(self, name: str) -> str:
        k = self.used_names.get(name, 0)
        self.used_names[name] = k + 1
        return f"{name}#{k + 1}" if k else name


def _parameter_sizes(g: Any) -> dict[str, int]:
    """Static tensor -> element count, for the static tensors that are trainable parameters.

    Sources: initializers and ``Constant`` nodes (exports that keep weights as nodes, e.g.
    ``paddle2onnx`` or TorchScript with ``keep_initializers_as_inputs``-style options).
    Floating-point tensors count, except BatchNorm running statistics, the scales and zero points
    of (De)QuantizeLinear, the ``roi``/``scales`` of Resize/Upsample and, for ``Constant``
    nodes, one-element tensors (the constants of elementwise formulas such as HardSwish's 3
    and 6); quantized weights and biases (the data input of a DequantizeLinear) count whatever
    their type.
    """
    tensors = {i.name: i for i in g.initializer}
    from_nodes = set()
    for n in g.node:
        value = _constant_value(n)
        if value is not None:
            tensors[n.output[0]] = value
            from_nodes.add(n.output[0])
    excluded = {
        n.input[k]
        for n in g.node
        for k in _NON_PARAMETER_INPUTS.get(n.op_type, ())
        if len(n.input) > k
    }
    numel = {k: math.prod(t.dims) for k, t in tensors.items()}
    quantized = {
        n.input[0] for n in g.node if n.op_type == "DequantizeLinear" and n.input[0] in tensors
    }
    sizes = {
        k: v
        for k, v in numel.items()
        if tensors[k].data_type in (1, 10, 11, 16)
        and k not in excluded
        and not (k in from_nodes and v <= 1)
    }
    sizes.update({k: numel[k] for k in quantized})
    return sizes


#: Inputs (by index) that hold statistics, quantization parameters or shape arguments, never
#: trainable parameters, even when they are floating-point.
_NON_PARAMETER_INPUTS: dict[str, tuple[int, ...]] = {
    "BatchNormalization": (3, 4),
    "QuantizeLinear": (1, 2),
    "DequantizeLinear": (1, 2),
    "Resize": (1, 2, 3),
    "Upsample": (1,),
}


def _constant_value(node: Any) -> Any:
    """The ``TensorProto`` a ``Constant`` node emits (``value`` or ``value_float(s)``), else
    None."""
    import onnx

    if node.op_type != "Constant" or node.domain not in ("", "ai.onnx") or not node.output:
        return None
    for a in node.attribute:
        if a.name == "value":
            return a.t
        if a.name == "value_floats":
            return onnx.helper.make_tensor("", onnx.TensorProto.FLOAT, [len(a.floats)], a.floats)
        if a.name == "value_float":
            return onnx.helper.make_tensor("", onnx.TensorProto.FLOAT, [], [a.f])
    return None


def _equation(equation: str | bytes) -> str:
    """An Einsum equation as text, without spaces (PyTorch exports ``"B G H I D, ..."``)."""
    text = equation.decode() if isinstance(equation, bytes) else str(equation)
    return text.replace(" ", "")


def einsum_reduction(equation: str | bytes, shapes: list[Any]) -> int | None:
    """The reduction length of a two-operand ``Einsum`` that is a (batched) matrix product:
    the product of the sizes of the indices its operands share and its output drops (MACs =
    output elements x that length, as for a MatMul). None when the equation is not one:
    not two operands, a repeated index within an operand (a diagonal), no contracted index,
    or an unknown shape; the layer then stays unknown and is reported.

    ``...`` stands for the same leading (broadcast) dimensions in every term; without ``->``
    the output is the indices that occur once, in alphabetical order (the ONNX convention).
    """
    eq = _equation(equation)
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != 2 or len(shapes) != 2 or any(s is None for s in shapes):
        return None
    sizes: dict[str, int] = {}
    letters: list[str] = []
    for term, shape in zip(terms, shapes, strict=True):
        head, dots, tail = term.partition("...")
        if not dots and len(term) != len(shape):
            return None
        if dots and len(head) + len(tail) > len(shape):
            return None
        dims = list(zip(head, shape[: len(head)], strict=True))
        if tail:
            dims += list(zip(tail, shape[len(shape) - len(tail) :], strict=True))
        if len({c for c, _ in dims}) != len(dims):
            return None  # a diagonal (e.g. "ii,i->i")
        for c, d in dims:
            if not c.isalpha():
                return None
            if sizes.setdefault(c, int(d)) != int(d) and 1 not in (sizes[c], int(d)):
                return None
            sizes[c] = max(sizes[c], int(d))
        letters += [c for c, _ in dims]
    if arrow:
        kept = set(rhs.replace("...", ""))
    else:
        kept = {c for c in letters if letters.count(c) == 1}
    contracted = [c for c in sizes if c not in kept]
    if not contracted or any(letters.count(c) != 2 for c in contracted):
        return None
    k = 1
    for c in contracted:
        k *= sizes[c]
    return k


def _node_kind(node: Any, gate: tuple[str, str] | None) -> tuple[OpKind, str | None, list[str]]:
    """The node's kind, activation/elementwise function and non-empty inputs.

    ``gate`` is ``(activation, x)`` when the node is the Mul of a gated activation
    (x * sigmoid(x) is one SiLU, x * hardsigmoid(x) one HardSwish): it then reads ``x`` only.
    Ops of custom domains are UNKNOWN.
    """
    kind, fn = _KIND.get(node.op_type, (OpKind.UNKNOWN, None))
    if node.domain not in ("", "ai.onnx", "com.microsoft"):
        kind, fn = OpKind.UNKNOWN, None
    ins = [i for i in node.input if i]
    if gate is not None:
        kind, fn = OpKind.ACTIVATION, gate[0]
        ins = [gate[1]]
    return kind, fn, ins


def _propagate_static(node: Any, kind: OpKind, ins: list[str], st: _BuildState) -> bool:
    """Mark the outputs of a constant node, or of one reading static tensors only, as static
    (remembering which parameters they derive from). True if the node is not a layer."""
    if kind is not OpKind.CONSTANT and any(i not in st.static for i in ins):
        return False
    derived = set().union(*(st.origin.get(i, set()) for i in ins))
    lows = [v for i in ins if (v := st.min_of(i)) is not None]
    if kind is OpKind.CONSTANT:
        value = next((a.t for a in node.attribute if a.name == "value"), None)
        low = _float_min(value) if value is not None else None
        lows += [low] if low is not None else []
    for o in node.output:
        if o:
            st.static.add(o)
            if derived:
                st.origin[o] = derived
            if lows:
                st.static_min[o] = min(lows)
    return True


#: Largest float tensor whose values :func:`_float_min` reads (masks, tables; not weights).
STATIC_MIN_MAX_ELEMS = 1 << 22


def _float_min(t: Any) -> float | None:
    """The smallest value of a float ``TensorProto`` (None for other types, empty or huge)."""
    from onnx import TensorProto, numpy_helper

    if t.data_type not in (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE):
        return None
    n = math.prod(t.dims)
    if n == 0 or n > STATIC_MIN_MAX_ELEMS:
        return None
    return float(numpy_helper.to_array(t).min())


def _require_output_shapes(node: Any, idx: int, shapes: dict) -> None:
    for o in node.output:
        if o and shapes.get(o, (None, 0))[0] is None:
            raise ShapeError(
                f"could not infer the shape of '{o}' (output of {node.op_type} node "
                f"'{node.name or idx}'): pass --input-shape, or simplify the model with onnxsim"
            )


def _node_layer(
    node: Any,
    idx: int,
    kind: OpKind,
    fn: str | None,
    ins: list[str],
    st: _BuildState,
    param_numel: dict[str, int],
) -> Layer:
    """The layer of one node: static inputs become params, fresh parameters are attributed."""
    shapes, static = st.shapes, st.static
    params = {
        f"{node.op_type.lower()}_in{j}": shapes[i][0] or ()
        for j, i in enumerate(ins)
        if i in static
    }
    weight_idx = _WEIGHT_INPUT.get(node.op_type, 1)
    if kind in (OpKind.CONV, OpKind.CONV_TRANSPOSE, OpKind.LINEAR) or (
        kind is OpKind.MATMUL and len(ins) > weight_idx and ins[weight_idx] in static
    ):
        params = _named_params(node, ins, static, shapes, weight_idx)
    if kind is OpKind.MATMUL and "weight" in params:
        kind = OpKind.LINEAR
    fresh = set().union(*(st.origin.get(i, set()) for i in ins)) - st.attributed
    st.attributed |= fresh
    standard = node.domain in ("", "ai.onnx")
    return Layer(
        name=st.unique_name(node.name or f"{node.op_type}_{idx}"),
        op=kind,
        inputs=[st.info(i) for i in ins if i not in static],
        outputs=[st.info(o) for o in node.output if o][: None if kind is OpKind.SPLIT else 1],
        params=params,
        attrs=_layer_attrs(kind, fn, node, _attrs(node), ins, shapes, params)
        | (_static_min_attr(ins, st) if kind is OpKind.ELEMENTWISE else {}),
        source_op=node.op_type if standard else f"{node.domain}.{node.op_type}",
        param_count=sum(param_numel[i] for i in fresh),
    )


def _static_min_attr(ins: list[str], st: _BuildState) -> dict[str, float]:
    """``{"static_min": v}`` for a layer reading static float operands (v: their smallest
    value, see :data:`edgecnn.graph.ir.STATIC_MIN_ATTR`), else nothing."""
    lows = [v for i in ins if i in st.static and (v := st.min_of(i)) is not None]
    return {STATIC_MIN_ATTR: min(lows)} if lows else {}


def _gated_activations(g: Any) -> tuple[set[int], dict[int, tuple[str, str]]]:
    """Find ``Mul(x, Sigmoid(x))`` / ``Mul(x, HardSigmoid(x))`` pairs (SiLU and HardSwish as
    exported to opsets without those ops). Returns the gate nodes to skip and, per Mul node,
    the activation name and its input ``x``."""
    producer = {o: (i, n) for i, n in enumerate(g.node) for o in n.output}
    readers: dict[str, int] = {}
    for n in g.node:
        for i in n.input:
            readers[i] = readers.get(i, 0) + 1
    for o in g.output:
        readers[o.name] = readers.get(o.name, 0) + 1
    skip: set[int] = set()
    gated: dict[int, tuple[str, str]] = {}
    for idx, n in enumerate(g.node):
        if n.op_type != "Mul" or len(n.input) != 2:
            continue
        for x, gate in ((n.input[0], n.input[1]), (n.input[1], n.input[0])):
            src = producer.get(gate)
            if src is None or readers.get(gate, 0) != 1:
                continue
            gidx, gnode = src
            fn = {"Sigmoid": "silu", "HardSigmoid": "hardswish"}.get(gnode.op_type)
            if fn and list(gnode.input) == [x]:
                skip.add(gidx)
                gated[idx] = (fn, x)
                break
    for idx in range(len(g.node)):  # x * 0.5 * (1 + erf(x / sqrt 2)): GELU before opset 20
        chain = _erf_gelu(g, idx, producer, readers)
        if chain is not None:
            *inner, last, x = chain
            skip.update(inner)
            gated[last] = ("gelu", x)
    return skip, gated


def _erf_gelu(g: Any, erf_idx: int, producer: dict, readers: dict) -> tuple | None:
    """Node indices of an exported erf-GELU around ``Erf`` node ``erf_idx`` and its input x."""
    n = g.node[erf_idx]
    if n.op_type != "Erf":
        return None
    div = producer.get(n.input[0])
    if div is None or div[1].op_type not in ("Div", "Mul") or readers.get(n.input[0]) != 1:
        return None
    x = div[1].input[0]

    def only_reader(tensor: str) -> tuple[int, Any] | None:
        if readers.get(tensor) != 1:
            return None
        for i, c in enumerate(g.node):
            if tensor in c.input:
                return i, c
        return None

    add = only_reader(n.output[0])
    if add is None or add[1].op_type != "Add":
        return None
    mul = only_reader(add[1].output[0])
    if mul is None or mul[1].op_type != "Mul" or x not in mul[1].input:
        return None
    indices = [div[0], erf_idx, add[0]]
    half = only_reader(mul[1].output[0])
    if half is not None and half[1].op_type == "Mul" and x not in half[1].input:
        return (*indices, mul[0], half[0], x)
    return (*indices, mul[0], x)


def _named_params(
    node: Any, ins: list[str], static: set[str], shapes: dict, weight_idx: int
) -> dict:
    params: dict[str, tuple[int, ...]] = {}
    if len(ins) > weight_idx and ins[weight_idx] in static:
        params["weight"] = shapes[ins[weight_idx]][0] or ()
    bias_idx = {"QLinearConv": 8, "Conv": 2, "ConvTranspose": 2, "Gemm": 2}.get(node.op_type)
    if bias_idx is not None and len(ins) > bias_idx and ins[bias_idx] in static:
        params["bias"] = shapes[ins[bias_idx]][0] or ()
    return params


def _layer_attrs(
    kind: OpKind, fn: str | None, node: Any, attrs: dict, ins: list[str], shapes: dict, params: dict
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if fn is not None and kind not in (OpKind.MAXPOOL, OpKind.AVGPOOL):
        out["fn"] = fn
    if kind in (OpKind.CONV, OpKind.CONV_TRANSPOSE):
        w = params.get("weight") or ()
        kernel = tuple(attrs.get("kernel_shape") or w[2:])
        nsp = len(kernel)
        out["kernel"] = kernel
        out["stride"] = tuple(attrs.get("strides") or (1,) * nsp)
        out["dilation"] = tuple(attrs.get("dilations") or (1,) * nsp)
        out["padding"] = tuple(attrs.get("pads") or (0,) * (2 * nsp))
        out["groups"] = int(attrs.get("group", 1))
        out["transposed"] = kind is OpKind.CONV_TRANSPOSE
    elif kind is OpKind.LINEAR and node.op_type in ("Gemm", "QGemm"):
        a_shape = shapes.get(ins[0], ((), 0))[0] or ()
        if a_shape:
            out["k"] = a_shape[0] if attrs.get("transA", 0) else a_shape[-1]
    elif kind in (OpKind.MAXPOOL, OpKind.AVGPOOL):
        if fn == "global" or node.op_type.startswith(("Global", "QLinearGlobal")):
            out["mode"] = "global"
        else:
            kernel = tuple(attrs.get("kernel_shape", ()))
            out["kernel"] = kernel
            out["stride"] = tuple(attrs.get("strides") or (1,) * len(kernel))
            out["padding"] = tuple(attrs.get("pads") or (0,) * (2 * len(kernel)))
            out["mode"] = "max" if kind is OpKind.MAXPOOL else "avg"
    elif node.op_type == "Einsum":
        k = einsum_reduction(attrs.get("equation", b""), [shapes[i][0] for i in ins])
        out["k"] = k
        out["equation"] = _equation(attrs.get("equation", b""))
    elif node.op_type == "Transpose" and "perm" in attrs:
        out["perm"] = tuple(int(p) for p in attrs["perm"])
    return out
