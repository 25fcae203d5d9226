"""Helpers shared by the command modules: JSON output, shapes, progress bars."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from edgecnn.errors import ShapeError

T = TypeVar("T")

#: Width of tables when the output is not a terminal (a pipe or a file): wide enough that
#: nothing is cut; on a terminal rich uses the terminal's width.
PIPE_WIDTH = 240


def _console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    interactive = hasattr(stream, "isatty") and stream.isatty()
    return Console(stderr=stderr, width=None if interactive else PIPE_WIDTH)


console = _console()
err_console = _console(stderr=True)


def counter(label: str, quiet: bool = False):
    """A ``(done, total)`` progress callback on stderr: one updating line on a terminal; when
    stderr is a pipe or a file, one line at every tenth of the work (and at the end)."""
    shown = {"step": -1}

    def report(done: int, total: int) -> None:
        if quiet or total <= 0:
            return
        if err_console.is_terminal:
            err_console.print(f"\r{label}: {done}/{total}", end="", highlight=False)
            if done >= total:
                err_console.print("")
            return
        step = (10 * done) // total
        if step != shown["step"] or done >= total:
            shown["step"] = step
            err_console.print(f"{label}: {done}/{total}", highlight=False)

    return report


def announcer(label: str, quiet: bool = False):
    """A callback that prints ``label: MESSAGE`` on stderr for each named step of a long run
    (above the progress bar on a terminal, one line each in a pipe)."""

    def announce(message: str) -> None:
        if not quiet:
            err_console.print(f"{label}: {message}", highlight=False)

    return announce


def print_json(obj: Any) -> None:
    """Print one JSON document on stdout (no rich markup, machine-readable, strict JSON: a NaN
    or infinity in a result is a bug and raises instead of reaching a report)."""
    sys.stdout.write(json.dumps(obj, indent=2, default=json_default, allow_nan=False) + "\n")
    sys.stdout.flush()


def json_default(o: Any) -> Any:
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def parse_shape(
    text: str | None, option: str = "--input-shape", input_tensor: bool = True
) -> tuple[int, ...] | None:
    """Parse ``1x3x224x224`` (or ``1,3,224,224``) into a tuple of positive ints.

    Dimensions must fit int64; the element count of an ``input_tensor`` must be at most
    :data:`~edgecnn.graph.ir.MAX_INPUT_ELEMENTS` (:func:`edgecnn.graph.ir.check_input_shape`).
    Pass ``input_tensor=False`` for sizes that are not a tensor (buffers, tiles).
    """
    from edgecnn.graph.ir import MAX_INPUT_ELEMENTS, check_input_shape

    if text is None:
        return None
    parts = text.lower().replace(",", "x").replace("*", "x").split("x")
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise ShapeError(
            f"malformed {option} '{text}': give positive integers joined by 'x', e.g. 1x3x224x224"
        ) from None
    limit = MAX_INPUT_ELEMENTS if input_tensor else None
    return check_input_shape(dims, f"{option} '{text}'", max_elements=limit)


def track(
    items: Iterable[T], description: str, total: int | None = None, quiet: bool = False
) -> Iterator[T]:
    """Iterate with a progress bar on stderr (hidden when ``quiet`` or stderr is not a terminal)."""
    if quiet:
        yield from items
        return
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )
    with progress:
        yield from progress.track(items, total=total, description=description)


def device_max_batch(model: str, shape, device: str | None, precision: str = "fp32"):
    """``analysis.batch.max_batch`` of ``model`` for ``device``'s memory (``None``: this host's
    available memory / ``runtime.memory.RUNTIME_COPIES``, as PyTorch and ORT each hold a copy)."""
    from edgecnn.analysis.batch import max_batch
    from edgecnn.analysis.devices import get_device
    from edgecnn.errors import ConfigError
    from edgecnn.models.resolve import load_graph
    from edgecnn.runtime.memory import RUNTIME_COPIES, available_memory_bytes

    if device is None:
        memory, name = available_memory_bytes() // RUNTIME_COPIES, "this host"
    else:
        dev = get_device(device)
        if dev.memory_bytes is None:
            raise ConfigError(
                f"device '{device}' has no published memory size (memory_bytes in devices.toml): "
                "--max-batch needs one; choose another --device"
            )
        memory, name = dev.memory_bytes, device
    rest = tuple(load_graph(model, shape).inputs[0].shape[1:])
    return max_batch(lambda b: load_graph(model, (b, *rest)), memory, precision, name)
