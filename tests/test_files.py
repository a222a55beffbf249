"""Tests of helpers.files: atomic writes, the umask, orphaned temporary files, moving aside."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from helpers import files


def test_atomic_write_replaces_and_leaves_nothing_behind(tmp_path):
    path = tmp_path / "sub" / "a.txt"
    files.write_text(path, "one")
    files.write_text(path, "two")
    assert path.read_text() == "two"
    assert [p.name for p in path.parent.iterdir()] == ["a.txt"]


def test_failed_write_keeps_the_previous_file(tmp_path):
    path = files.write_text(tmp_path / "a.txt", "kept")
    with pytest.raises(RuntimeError, match="disk full"), files.atomic_write(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert path.read_text() == "kept" and os.listdir(tmp_path) == ["a.txt"]


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_new_files_follow_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        path = files.write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


def test_orphans_of_dead_writers_and_old_orphans_are_removed(tmp_path):
    path = tmp_path / "m.safetensors"
    # a writer of this machine that no longer runs: a child process that has exited
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    dead = int(child.stdout)
    host = files.temporary_path(path).name.split(".")[-3]
    orphan = tmp_path / f"m.safetensors.{dead}.{host}.abcd.tmp"
    orphan.write_bytes(b"half")
    old = tmp_path / "m.safetensors.x1y2z3.tmp"  # another naming (e.g. an older kit), old
    old.write_bytes(b"half")
    os.utime(old, (0, 0))
    alive = tmp_path / f"m.safetensors.{os.getpid()}.{host}.beef.tmp"  # a write in progress
    alive.write_bytes(b"half")
    unrelated = tmp_path / "other.safetensors.1.2.3.tmp"
    unrelated.write_bytes(b"x")
    removed = files.clean_orphans(path)
    assert sorted(p.name for p in removed) == sorted([orphan.name, old.name])
    assert alive.exists() and unrelated.exists()


def test_move_aside_never_overwrites(tmp_path):
    path = tmp_path / "c.safetensors"
    path.write_text("1")
    first = files.move_aside(path)
    path.write_text("2")
    second = files.move_aside(path)
    assert first != second and not path.exists()
    assert first.name.startswith("c.safetensors.damaged-") and first.read_text() == "1"
    assert second.read_text() == "2"
