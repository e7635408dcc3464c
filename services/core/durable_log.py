"""An append-only, crash-safe record log with group-committed fsync.

Each process appends to a segment file of its own (``<prefix>-<host>-<pid>-<n>.log``), so
several processes can share a data directory without sharing memory or locks. ``append``
returns only once the record is on disk: callers acknowledge after it, so an acknowledged
record survives a SIGKILL that follows the ack. Concurrent appenders share one fsync (group
commit): a writer thread drains whatever is queued, writes it, fsyncs once and wakes them.

Readers (``iter_records``) stop at a torn tail left by a crash mid-write; consumers keep
their own offsets (see ``LogCheckpoint``) and so replay what they had not processed.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from services.core.files import fsync_dir, write_file_durably

_HEADER = struct.Struct("<II")  # payload length, crc32 of payload
MAX_RECORD_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class LogPosition:
    segment: str
    offset: int  # byte offset just after the record


class DurableLog:
    """Appends records to this process's segment in ``folder``; thread-safe."""

    def __init__(self, folder: Path, prefix: str, segment_bytes: int = 64 * 1024 * 1024):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.segment_bytes = segment_bytes
        self._cond = threading.Condition()
        self._queue: list[bytes] = []
        self._queued_seq = 0
        self._durable_seq = 0
        self._error: BaseException | None = None
        self._closed = False
        self._segment_no = 0
        self._file = self._open_segment()
        self._writer = threading.Thread(target=self._write_loop, name=f"{prefix}-log-writer", daemon=True)
        self._writer.start()

    def append(self, record: dict) -> None:
        """Appends one JSON record and returns once it is durable."""
        self.append_many([record])

    def append_many(self, records: list[dict]) -> None:
        """Appends records (all or nothing on one segment) and returns once they are durable."""
        frames = b"".join(_frame(json.dumps(r, separators=(",", ":")).encode()) for r in records)
        with self._cond:
            if self._closed:
                raise RuntimeError("log is closed")
            self._queue.append(frames)
            self._queued_seq += 1
            seq = self._queued_seq
            self._cond.notify_all()
            while self._durable_seq < seq and self._error is None:
                self._cond.wait()
            if self._error is not None:
                raise RuntimeError("decision log write failed") from self._error

    def close(self) -> None:
        """Waits for queued records to be durable, then closes the segment."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._writer.join()
        self._file.close()

    @property
    def segment_path(self) -> Path:
        return Path(self._file.name)

    def _open_segment(self):
        self._segment_no += 1
        name = f"{self.prefix}-{socket.gethostname()}-{os.getpid()}-{self._segment_no:04d}.log"
        handle = open(self.folder / name, "ab", buffering=0)
        fsync_dir(self.folder)
        return handle

    def _write_loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue and self._closed:
                    return
                batch, self._queue = self._queue, []
                target = self._queued_seq
            try:
                self._file.write(b"".join(batch))
                os.fsync(self._file.fileno())
                if self._file.tell() >= self.segment_bytes:
                    self._file.close()
                    self._file = self._open_segment()
            except BaseException as err:  # surfaced to every waiting appender
                with self._cond:
                    self._error = err
                    self._cond.notify_all()
                return
            with self._cond:
                self._durable_seq = target
                self._cond.notify_all()


def _frame(payload: bytes) -> bytes:
    if len(payload) > MAX_RECORD_BYTES:
        raise ValueError(f"record of {len(payload)} bytes exceeds {MAX_RECORD_BYTES}")
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def list_segments(folder: Path, prefix: str) -> list[Path]:
    """Segments of every process, oldest name first."""
    return sorted(Path(folder).glob(f"{prefix}-*.log"), key=lambda p: (p.stat().st_mtime_ns, p.name))


def iter_records(path: Path, start: int = 0) -> Iterator[tuple[dict, LogPosition]]:
    """Records of one segment from byte ``start``; stops at a torn or corrupt tail."""
    with open(path, "rb") as handle:
        handle.seek(start)
        offset = start
        while True:
            header = handle.read(_HEADER.size)
            if len(header) < _HEADER.size:
                return
            length, crc = _HEADER.unpack(header)
            payload = handle.read(length)
            if len(payload) < length or zlib.crc32(payload) != crc:
                return
            offset += _HEADER.size + length
            yield json.loads(payload), LogPosition(path.name, offset)


class LogCheckpoint:
    """A consumer's progress through every segment of a log: segment name -> byte offset."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.offsets: dict[str, int] = json.loads(self.path.read_text())
        except FileNotFoundError:
            self.offsets = {}

    def pending(self, folder: Path, prefix: str) -> Iterator[tuple[dict, LogPosition]]:
        """Records not yet consumed, across all segments."""
        for segment in list_segments(folder, prefix):
            yield from iter_records(segment, self.offsets.get(segment.name, 0))

    def advance(self, position: LogPosition) -> None:
        self.offsets[position.segment] = position.offset

    def save(self) -> None:
        write_file_durably(self.path, json.dumps(self.offsets).encode())
