"""Atomic output: write to a temporary file beside the target, then rename over it."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from edgecnn.errors import EdgecnnError


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _public_file(path: str | os.PathLike[str]) -> None:
    """Give a mkstemp file the permissions an ordinary ``open(..., "w")`` would (0666 & ~umask)."""
    os.chmod(path, 0o666 & ~_umask())


def _public_dir(path: str | os.PathLike[str]) -> None:
    """Give a mkdtemp directory ordinary permissions (0777 & ~umask)."""
    os.chmod(path, 0o777 & ~_umask())


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except OSError:
        return False


def check_output_path(
    path: str | os.PathLike[str],
    inputs: Iterable[str | os.PathLike[str] | None] = (),
    directory: bool = False,
    option: str = "--out",
) -> Path:
    """Return ``path`` as a Path after checking it can be written, before any slow work.

    Refused, each with one line saying what to do: a missing or non-writable parent directory;
    an existing directory where a file goes (or a file where a directory goes, with
    ``directory=True``); and an output that is one of ``inputs`` (never overwrite the user's
    input) or, for a directory output, one that holds an input.
    """
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise EdgecnnError(
            f"output directory '{parent}' does not exist: create it first or choose another path"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise EdgecnnError(
            f"output directory '{parent}' is not writable: choose another {option} path"
        )
    if directory and p.exists() and not p.is_dir():
        raise EdgecnnError(f"{option} '{p}' exists and is not a directory: choose another path")
    if not directory and p.is_dir():
        raise EdgecnnError(f"{option} '{p}' is a directory: give a file name inside it")
    for src in inputs:
        if src is None:
            continue
        q = Path(src)
        if _same_file(p, q) or (directory and q.exists() and _inside(q, p)):
            raise EdgecnnError(
                f"{option} '{p}' would overwrite the input '{q}': choose another output path"
            )
    return p


def _inside(child: Path, folder: Path) -> bool:
    try:
        child.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same directory, then rename)."""
    p = check_output_path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    except OSError as e:
        raise write_error(p, e) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        _public_file(tmp)
        os.replace(tmp, p)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise write_error(p, e) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


def write_error(path: Path, e: OSError) -> EdgecnnError:
    """A one-line error for a failed write (disk full, read-only file system, permissions)."""
    reason = e.strerror or type(e).__name__
    return EdgecnnError(f"cannot write '{path}': {reason}: free space or choose another path")


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path for a writer that needs a filename; rename it to ``path`` on success."""
    p = check_output_path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=p.suffix or ".tmp", dir=p.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        _public_file(tmp)
        os.replace(tmp, p)
    finally:
        Path(tmp).unlink(missing_ok=True)


@contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``path`` on success and vanishes on failure.

    An existing ``path`` is replaced only when the block succeeds, so a failed run leaves no
    partial output directory behind.
    """
    p = check_output_path(path, directory=True)
    parent = p.parent if str(p.parent) else Path(".")
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{p.name}.", dir=parent))
    except OSError as e:
        raise write_error(p, e) from None
    try:
        yield tmp
        _public_dir(tmp)
        if p.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{p.name}.old.", dir=parent))
            os.replace(p, old / "x")
            os.replace(tmp, p)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, p)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
