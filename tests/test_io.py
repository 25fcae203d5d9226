"""Atomic output: nothing half-written, ordinary permissions, failures leave no trace."""

import os
import stat

import pytest

from edgecnn.errors import EdgecnnError
from edgecnn.io import atomic_dir, atomic_path, atomic_write_text


def _mode(p):
    return stat.S_IMODE(os.stat(p).st_mode)


def test_files_and_dirs_get_umask_permissions(tmp_path):
    mask = os.umask(0o022)
    os.umask(mask)
    f = atomic_write_text(tmp_path / "a.txt", "hi")
    assert f.read_text() == "hi" and _mode(f) == 0o666 & ~mask
    with atomic_path(tmp_path / "b.bin") as tmp:
        tmp.write_bytes(b"x")
    assert _mode(tmp_path / "b.bin") == 0o666 & ~mask
    with atomic_dir(tmp_path / "out") as d:
        (d / "x").write_text("1")
    assert _mode(tmp_path / "out") == 0o777 & ~mask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin", "out"]


def test_failed_directory_leaves_nothing_and_keeps_the_old_one(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old").write_text("keep")
    with pytest.raises(RuntimeError), atomic_dir(out) as d:
        (d / "partial").write_text("half")
        raise RuntimeError("boom")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert [p.name for p in out.iterdir()] == ["old"]


def test_missing_parent_is_a_clear_error(tmp_path):
    with pytest.raises(EdgecnnError, match="does not exist"):
        atomic_write_text(tmp_path / "nope" / "a.txt", "x")
