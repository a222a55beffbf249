"""Files written safely on shared machines: atomic replacement, the user's umask, the leftovers of
killed writes, and damaged files moved aside rather than deleted.

* :func:`atomic_write` — write through a temporary file in the same folder, then rename: readers
  never see half a file, and a crash leaves the previous version. The temporary file is created
  with mode ``0o666`` minus the umask, as ``open()`` would, so a class server's shared cache stays
  readable to every student (``tempfile.mkstemp`` would make it ``0o600``).
* :func:`clean_orphans` — temporary files left by a write that was killed (their process is gone,
  or they are old) are removed before the next write of the same file.
* :func:`move_aside` — a damaged file is renamed ``<name>.damaged-<time>``, never deleted, so
  nothing is lost and the next run starts clean.

Examples
--------
>>> import pathlib, tempfile
>>> from helpers import files
>>> path = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
>>> with files.atomic_write(path) as tmp:
...     _ = tmp.write_text("hello")
>>> path.read_text(), sorted(p.name for p in path.parent.iterdir())
('hello', ['a.txt'])
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = ["atomic_write", "clean_orphans", "move_aside", "temporary_path", "umask", "write_text"]

ORPHAN_AGE_SECONDS = 3600.0
"""A temporary file older than this is a leftover whoever wrote it (another machine included)."""


def umask() -> int:
    """The process's file-creation mask (read without changing it for longer than a call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _host() -> str:
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def temporary_path(path: Path) -> Path:
    """A fresh temporary name ``<name>.<pid>.<host>.<random>.tmp`` beside ``path``."""
    return path.with_name(f"{path.name}.{os.getpid()}.{_host()}.{secrets.token_hex(4)}.tmp")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process, or we cannot tell: leave its file alone
    return True


def clean_orphans(path: str | Path, *, older_than: float = ORPHAN_AGE_SECONDS) -> list[Path]:
    """Remove temporary files of ``path`` left behind by writes that were killed.

    A file ``<name>.<pid>.<host>.<random>.tmp`` of this machine whose process no longer runs is
    an orphan; so is any ``<name>.*.tmp`` older than ``older_than`` seconds (a write in progress
    elsewhere is younger). Returns the files removed.
    """
    path = Path(path)
    if not path.parent.is_dir():
        return []
    removed, now, host = [], time.time(), _host()
    for tmp in path.parent.glob(f"{path.name}.*.tmp"):
        fields = tmp.name[len(path.name) + 1 : -len(".tmp")].split(".")
        try:
            age = now - tmp.stat().st_mtime
        except FileNotFoundError:
            continue
        ours = len(fields) == 3 and fields[0].isdigit() and fields[1] == host
        if age > older_than or (ours and not _alive(int(fields[0]))):
            try:
                tmp.unlink()
                removed.append(tmp)
                logger.info("removed %s, left by an interrupted write", tmp)
            except FileNotFoundError:
                pass
    return removed


@contextmanager
def atomic_write(path: str | Path, *, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` atomically.

    The folder is created when missing. The temporary file exists (empty) when the block starts,
    with the permissions ``open()`` would give a new file (``0o666`` minus the umask). On an
    exception the temporary file is removed and ``path`` is left as it was.

    Raises
    ------
    OSError
        The folder cannot be created or written (the error names the path).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_orphans(path)
    tmp = temporary_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~umask())  # writers that re-create the file (safetensors) make 0o600
        if fsync:  # on disk before the rename, so a power loss never exposes half a file
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    path = Path(path)
    with atomic_write(path, fsync=False) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def move_aside(path: str | Path, reason: str = "damaged") -> Path:
    """Rename ``path`` to ``<name>.<reason>-<YYYYmmdd-HHMMSS>`` (never overwriting); returns it."""
    path = Path(path)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.{reason}-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.{reason}-{stamp}-{n}")
    os.replace(path, target)
    return target
