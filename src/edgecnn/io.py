"""Atomic output: write to a temporary file beside the target, then rename over it."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
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


def check_output_path(path: str | os.PathLike[str]) -> Path:
    """Return ``path`` as a Path after checking its directory exists (else a clear error)."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise EdgecnnError(
            f"output directory '{parent}' does not exist: create it first or choose another path"
        )
    return p


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same directory, then rename)."""
    p = check_output_path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        _public_file(tmp)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


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
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise EdgecnnError(
            f"output directory's parent '{parent}' does not exist: create it first or choose another path"
        )
    if p.exists() and not p.is_dir():
        raise EdgecnnError(f"output path '{p}' exists and is not a directory: choose another --out")
    tmp = Path(tempfile.mkdtemp(prefix=f".{p.name}.", dir=parent))
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
