"""Crash-safe file writes: a file is either absent or complete after a crash."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def write_file_durably(path: Path, data: bytes, exclusive: bool = False) -> None:
    """Writes ``data`` to ``path`` via a temporary file, fsync and rename.

    With ``exclusive`` the rename fails with FileExistsError when ``path`` exists (a hard
    link is used, which is atomic and refuses to overwrite).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    try:
        if exclusive:
            os.link(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def append_line_durably(path: Path, line: str) -> None:
    """Appends one line (a small history record) and fsyncs it before returning."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    with open(path, "a") as out:
        out.write(line.rstrip("\n") + "\n")
        out.flush()
        os.fsync(out.fileno())
    if created:
        fsync_dir(path.parent)


def change_token(path: str) -> tuple[int, int] | None:
    """(mtime in ns, inode) of a file or folder, None when it does not exist: it changes when
    the file is replaced or an entry of the folder is added or removed. The stores check one
    on every decision, so it takes a str: ``os.stat`` of a str costs a fraction of pathlib's
    joins and ``Path.stat``."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_mtime_ns, stat.st_ino


def fsync_dir(folder: Path) -> None:
    """Makes a rename or a new file in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def exclusive_lock(path: Path, blocking: bool = True) -> Iterator[bool]:
    """An flock held for the block, across processes. With ``blocking=False`` it yields
    whether the lock was taken (another process holding it means: skip the work)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True


class StorageHealth:
    """Whether a store can write: False from a failed write (a full disk) until its file
    system has ``minimum_bytes`` free again (the next write confirms it)."""

    def __init__(self, folder: Path, minimum_bytes: int = 1 << 20):
        self.folder, self.minimum_bytes = Path(folder), minimum_bytes
        self.ok = True

    def failed(self) -> None:
        self.ok = False

    def check(self) -> bool:
        if not self.ok:
            stat = os.statvfs(self.folder)
            self.ok = stat.f_bavail * stat.f_frsize >= self.minimum_bytes
        return self.ok
