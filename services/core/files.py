"""Crash-safe file writes: a file is either absent or complete after a crash."""

from __future__ import annotations

import os
from pathlib import Path


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


def fsync_dir(folder: Path) -> None:
    """Makes a rename or a new file in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
