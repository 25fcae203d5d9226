"""SCALE-Sim topology CSV: read it as a :class:`Graph`, write any workload as one.

Format (one conv/GEMM layer per row, header first)::

    Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,

Conventions of SCALE-Sim that we follow: no padding (the IFMAP is the padded input), output
size ``ceil((H - R + S) / S)``, which is one more than PyTorch's ``floor((H - R) / S) + 1`` when
``S`` does not divide ``H - R`` (read as implicit bottom/right zero padding), batch 1, one stride
for both axes, no groups. Extra trailing columns (e.g. ``Target``) are ignored.

Writing: the IFMAP is the padded extent the windows read, ``(OH - 1) * S + R`` (so both output
conventions agree), a dilated kernel is written with its dilated
extent (SCALE-Sim cannot express holes, so its MACs are then overcounted), a grouped conv
becomes one row per group (``name/g0``, ``name/g1``...), a linear layer with batch B becomes an
IFMAP of B x 1. A conv with batch > 1 or different strides per axis cannot be expressed and
raises :class:`~edgecnn.errors.ShapeError`.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from edgecnn.errors import ModelLoadError, ShapeError
from edgecnn.graph.ir import Graph, Layer, OpKind, TensorInfo
from edgecnn.hardware.workload import ArrayWork, Workload

HEADER = (
    "Layer name",
    "IFMAP Height",
    "IFMAP Width",
    "Filter Height",
    "Filter Width",
    "Channels",
    "Num Filter",
    "Strides",
)


def read_topology(path: str | Path) -> Graph:
    """Read a SCALE-Sim topology CSV as a graph of independent convolution layers."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ModelLoadError(f"cannot read topology CSV '{p}': {e.strerror}") from None
    rows = [r for r in csv.reader(io.StringIO(text)) if any(c.strip() for c in r)]
    if not rows:
        raise ModelLoadError(f"topology CSV '{p}' is empty")
    first = [c.strip().lower() for c in rows[0]]
    if first and first[0].startswith("layer"):
        rows = rows[1:]
    layers: list[Layer] = []
    for lineno, row in enumerate(rows, start=2):
        cells = [c.strip() for c in row]
        if len(cells) < 8:
            raise ModelLoadError(
                f"{p}:{lineno}: expected 8 columns (name, IFMAP H, W, filter H, W, channels, "
                f"num filter, stride), got {len(cells)}"
            )
        name = cells[0]
        try:
            h, w, r, s, c, k, st = (int(float(x)) for x in cells[1:8])
        except ValueError:
            raise ModelLoadError(f"{p}:{lineno}: non-numeric value in {cells[1:8]}") from None
        if min(h, w, r, s, c, k, st) < 1:
            raise ModelLoadError(f"{p}:{lineno}: every dimension must be >= 1, got {cells[1:8]}")
        if r > h or s > w:
            raise ModelLoadError(f"{p}:{lineno}: filter {r}x{s} larger than IFMAP {h}x{w}")
        oh, ow = -(-(h - r) // st) + 1, -(-(w - s) // st) + 1  # SCALE-Sim: ceil((H - R + S) / S)
        pad_b, pad_r = (oh - 1) * st + r - h, (ow - 1) * st + s - w  # the ceil's implicit rows
        layers.append(
            Layer(
                name=name,
                op=OpKind.CONV,
                inputs=[TensorInfo(f"{name}:in", (1, c, h, w))],
                outputs=[TensorInfo(f"{name}:out", (1, k, oh, ow))],
                params={"weight": (k, c, r, s)},
                attrs={
                    "kernel": (r, s),
                    "stride": (st, st),
                    "padding": (0, 0, pad_b, pad_r),
                    "dilation": (1, 1),
                    "groups": 1,
                },
                source_op="scalesim",
            )
        )
    if not layers:
        raise ModelLoadError(f"topology CSV '{p}' has no layers")
    return Graph(
        name=p.stem,
        layers=layers,
        inputs=[t for layer in layers for t in layer.inputs],
        outputs=[t for layer in layers for t in layer.outputs],
        meta={"source": "scalesim-topology"},
    )


def topology_rows(workload: Workload) -> list[tuple[str, int, int, int, int, int, int, int]]:
    """Rows of the SCALE-Sim topology of every array layer (see the module docstring)."""
    rows = []
    for item in workload.items:
        if not isinstance(item, ArrayWork):
            continue
        s = item.shape
        if s.stride_h != s.stride_w:
            raise ShapeError(
                f"layer {item.name}: stride {s.stride_h}x{s.stride_w} differs per axis; "
                "SCALE-Sim topologies have one stride"
            )
        span_h = (s.kernel_h - 1) * s.dilation_h + 1
        span_w = (s.kernel_w - 1) * s.dilation_w + 1
        if item.op == "conv" and s.batch > 1:
            raise ShapeError(
                f"layer {item.name}: batch {s.batch} cannot be written as a SCALE-Sim topology; "
                "export with --input-shape 1x..."
            )
        h = (s.out_h - 1) * s.stride_h + span_h  # padded rows actually read by some window
        w = (s.out_w - 1) * s.stride_w + span_w
        if item.op != "conv":  # GEMM: M x K times K x N as an M x 1 IFMAP with 1x1 filters
            h, w = s.batch * s.in_h, s.in_w
        groups = s.groups
        for g in range(groups):
            name = item.name if groups == 1 else f"{item.name}/g{g}"
            rows.append((name, h, w, span_h, span_w, s.n_per_group, s.m_per_group, s.stride_h))
    return rows


def topology_csv(workload: Workload) -> str:
    """The topology CSV text of ``workload``."""
    out = io.StringIO()
    out.write(", ".join(HEADER) + ",\n")
    for row in topology_rows(workload):
        out.write(",".join(str(x) for x in row) + ",\n")
    return out.getvalue()
