"""The ``kernels`` command group: ``compare`` (counts, memory, error, loop orders) and ``bench``."""

from __future__ import annotations

import typer
from rich.table import Table

from edgecnn.cli.app import app
from edgecnn.cli.common import console, err_console, parse_shape, print_json
from edgecnn.errors import ConfigError

kernels_app = typer.Typer(
    help="Convolution algorithms: direct, im2col, Winograd, FFT; tiled loop orders.",
    no_args_is_help=True,
)
app.add_typer(kernels_app, name="kernels")


def _fmt(v: float | None, spec: str = ".1e") -> str:
    return "-" if v is None else format(v, spec)


def _si(n: float) -> str:
    """1234567 -> '1.23M' (compact counts for narrow terminals)."""
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.3g}{unit}"
    return str(int(n))


def _require_memory(shapes, algorithms, reference: bool, what: str, fix: str) -> None:
    """Refuse before allocating when the largest layer's working set does not fit in memory."""
    from edgecnn.kernels.memory import working_set_bytes
    from edgecnn.runtime.memory import require_memory

    need = max(working_set_bytes(s, algorithms, reference) for s in shapes)
    require_memory(need, what, fix)


@kernels_app.command("compare")
def compare(
    layer: str = typer.Option(
        ...,
        "--layer",
        help="HxWxCINxCOUTkK plus optional s<stride> p<pad> d<dilation> g<groups> b<batch> "
        "(default pad (K-1)/2*d), e.g. 56x56x64x64k3, 224x224x3x64k7s2p3, 112x112x32x32k3g32.",
    ),
    precisions: str = typer.Option(
        "fp32,fp16,bf16",
        "--precisions",
        help="Product-stage precisions to measure, comma-separated.",
    ),
    buffers: str = typer.Option(
        "16384x16384x16384",
        "--buffers",
        help="On-chip input x weight x output buffer sizes in elements, for the loop-order table.",
    ),
    tiles: str | None = typer.Option(
        None,
        "--tiles",
        help="Fixed tiles TmxTnxTrxTc for the loop-order table (default: best tiles per order "
        "within --buffers).",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the random operands."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Multiplications, additions, extra memory and measured error of every algorithm on one
    layer, and the best tiling of each loop order (input/output/weight reuse).

    Example: edgecnn kernels compare --layer 56x56x64x64k3
    """
    from edgecnn.hardware.tiling import Tiles
    from edgecnn.kernels.compare import compare_algorithms, parse_layer
    from edgecnn.kernels.im2col import im2col_buffer_elems
    from edgecnn.kernels.loopnest import Buffers

    shape = parse_layer(layer)
    _require_memory(
        [shape],
        None,
        True,
        f"kernels compare on {layer}",
        "give a smaller --layer (H, W, channels, b<batch>)",
    )
    dims = parse_shape(buffers, "--buffers", input_tensor=False)
    if dims is None or len(dims) != 3:
        raise ConfigError(f"--buffers needs three sizes INxWxOUT in elements, got '{buffers}'")
    precs = tuple(p.strip() for p in precisions.split(",") if p.strip())
    fixed = parse_shape(tiles, "--tiles", input_tensor=False) if tiles else None
    if fixed is not None and len(fixed) != 4:
        raise ConfigError(f"--tiles needs four sizes TmxTnxTrxTc, got '{tiles}'")
    tile_obj = Tiles(*fixed) if fixed else None
    result = compare_algorithms(shape, precs, Buffers(*dims), seed=seed, tiles=tile_obj)
    if as_json:
        print_json(result.to_dict() | {"im2col_full_matrix_elems": im2col_buffer_elems(shape)})
        return
    table = Table(title=f"{layer}: {result.macs:,} MACs, output {shape.out_h}x{shape.out_w}")
    for col in ("algorithm", "mults", "saving", "adds", "extra"):
        if col == "algorithm":
            table.add_column(col, no_wrap=True, min_width=12)
        else:
            table.add_column(col, justify="right")
    for p in precs:
        table.add_column(f"err {p}", justify="right")
    for row in result.rows:
        c = row.cost
        if not c.supported:
            table.add_row(c.algorithm, "n/a", "-", "-", "-", *("-" for _ in precs))
            continue
        table.add_row(
            c.algorithm,
            _si(c.mults),
            _fmt(row.mult_saving, ".2f") + "x",
            _si(c.adds),
            _si(c.extra_total_elems),
            *(_fmt(row.errors[p]) for p in precs),
        )
    console.print(table)
    console.print(
        "mults: product-stage multiplications (FFT: complex); errors: max |y - ref| / output range "
        f"vs float64; im2col full matrix {im2col_buffer_elems(shape):,} elements (run in chunks)."
    )
    title = (
        f"loop orders at tiles {tiles}"
        if tile_obj
        else f"loop orders, best tiling within buffers {dims} elements"
    )
    orders = Table(title=title)
    for col in ("order", "Tm,Tn,Tr,Tc", "DRAM elems", "input", "weight", "output", "psum"):
        orders.add_column(col, justify="left" if col in ("order", "Tm,Tn,Tr,Tc") else "right")
    for o in result.orders:
        d = o.to_dict()
        orders.add_row(
            d["order"],
            ",".join(str(t) for t in d["tiles"]),
            _si(d["total_elems"]),
            _si(d["input_reads"]),
            _si(d["weight_reads"]),
            _si(d["output_writes"]),
            _si(d["psum_elems"]),
        )
    console.print(orders)


@kernels_app.command("bench")
def bench(
    layers: str | None = typer.Option(
        None,
        "--layers",
        help="Comma-separated bench layer names or layer specs (default: all representative layers).",
    ),
    batches: str = typer.Option("1,8", "--batches", help="Batch sizes, comma-separated."),
    algorithms: str | None = typer.Option(
        None,
        "--algorithms",
        help="Algorithms to time, comma-separated (default: all but direct_loops).",
    ),
    repeats: int = typer.Option(
        5, "--repeats", help="Interleaved repeats per layer (median reported)."
    ),
    threads: int = typer.Option(1, "--threads", help="torch threads during the run."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Time every algorithm against torch.nn.functional.conv2d (oneDNN), interleaved, reporting
    effective GFLOP/s (2*MACs/time) and the time ratio to oneDNN.

    Example: edgecnn kernels bench --layers r50-conv3-3x3,r50-conv4-3x3 --batches 8
    """
    from edgecnn.kernels.bench import BENCH_ALGORITHMS, BENCH_LAYERS, bench_layers, with_batch
    from edgecnn.kernels.compare import parse_layer
    from edgecnn.kernels.conv import parse_algorithm

    if layers:
        chosen = {}
        for item in (v.strip() for v in layers.split(",") if v.strip()):
            chosen[item] = BENCH_LAYERS.get(item, item)
    else:
        chosen = dict(BENCH_LAYERS)
    try:
        batch_list = tuple(int(b) for b in batches.split(",") if b.strip())
    except ValueError:
        raise ConfigError(f"--batches needs integers like 1,8, got '{batches}'") from None
    algos = (
        tuple(parse_algorithm(a.strip()) for a in algorithms.split(",") if a.strip())
        if algorithms
        else BENCH_ALGORITHMS
    )
    shapes = []
    for spec in chosen.values():
        layer_shape = parse_layer(spec)
        for b in batch_list:
            if b < 1:
                raise ConfigError(f"--batches must be >= 1, got {b} in '{batches}'")
            shapes.append(with_batch(layer_shape, b))
    _require_memory(
        shapes,
        algos,
        False,
        f"kernels bench at --batches {batches}",
        "use smaller --batches or --layers",
    )
    total = len(chosen) * len(batch_list)
    done = [0]

    def progress(msg: str) -> None:
        done[0] += 1
        if not as_json:
            err_console.print(f"[{done[0]}/{total}] {msg}", highlight=False)

    result = bench_layers(chosen, batch_list, algos, repeats, threads, progress)
    if as_json:
        print_json(result.to_dict())
        return
    table = Table(title=f"conv algorithms vs oneDNN, {threads} thread(s), median of {repeats}")
    for col in ("layer", "batch", "algorithm", "ms", "GFLOP/s", "x oneDNN"):
        table.add_column(col, justify="left" if col in ("layer", "algorithm") else "right")
    for r in result.rows:
        if r.time_s is None:
            table.add_row(r.layer, str(r.batch), r.algorithm, "n/a", "-", "-")
            continue
        table.add_row(
            r.layer,
            str(r.batch),
            r.algorithm,
            f"{r.time_s * 1e3:.2f}",
            f"{r.gflops:.1f}",
            f"{r.ratio_to_onednn:.2f}",
        )
    console.print(table)
