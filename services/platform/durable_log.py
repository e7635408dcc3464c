"""An append-only, crash-safe record log with group-committed fsync.

Each process appends to a segment file of its own (``<prefix>-<host>-<pid>-<n>.log``), so
several processes can share a data directory without sharing memory or locks. ``append``
returns only once the record is on disk: callers acknowledge after it, so an acknowledged
record survives a SIGKILL that follows the ack. Concurrent appenders share one fsync (group
commit): an appender that finds no write under way writes whatever is queued, its own and
the others', fsyncs once and wakes them; those that queued meanwhile go together next. (A
writer thread doing the same cost each append two thread hand-offs: without them Decide made
3% more calls/s.) With ``Durability.OS`` a writer thread writes, acknowledges, and then
fsyncs, so that no appender waits for the disk.

Once a log has written ``spare_after_bytes``, a thread keeps a *spare* segment ready: a file
of ``segment_bytes`` zeros, written and fsynced ahead of need, which becomes the next segment.
Appending into room that is already allocated and sized, an fdatasync flushes only the data,
not the file system's journal as well: for appends of 2.5 and 30 KB on this machine's ext4,
123-143 us against 175-277 (medians of 400 each). A segment is cut to its records when it is
closed; after a crash its unused zeros stay, and readers stop at them as at a torn tail (a
record is never empty, so a zero header is never one).

Readers stop at a torn tail left by a crash mid-write. Consumers (``LogConsumer``) keep
their progress in the log's consumer folder, so a restart replays what they had not
processed, and retention (``deletable_segments``) removes only what every consumer has read.
"""

from __future__ import annotations

import enum
import json
import logging
import os
import socket
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import orjson

from services.platform.errors import Unavailable
from services.platform.files import StorageHealth, fsync_dir, write_file_durably

log = logging.getLogger("looper.log")

_HEADER = struct.Struct("<II")  # payload length, crc32 of payload
MAX_RECORD_BYTES = 16 * 1024 * 1024
SPARE_AFTER_BYTES = 1024 * 1024  # what a log writes before it keeps a spare segment ready
# A spare is filled a MiB a write, each synced at once: one flush of 64 MiB would hold up the
# log's own flushes behind it.
_ZEROS = bytes(1024 * 1024)
_BLOCK = 4096  # data_end reads a segment's tail this much at a time


@dataclass(frozen=True)
class RecordAddress:
    """Where a record starts: enough to read it again (``read_record``)."""

    segment: str
    offset: int


@dataclass(frozen=True)
class LogPosition:
    segment: str
    offset: int  # byte offset just after the record (a consumer's progress)
    start: int = 0  # byte offset of the record itself

    @property
    def address(self) -> RecordAddress:
        return RecordAddress(self.segment, self.start)


def process_owner() -> str:
    """This process as it appears in segment names and claims: ``<host>-<pid>``."""
    return f"{socket.gethostname()}-{os.getpid()}"


def owner_alive(owner: str) -> bool:
    """Whether the process ``<host>-<pid>`` still runs (one on another host is assumed alive:
    only its own host can tell)."""
    host, _, pid = owner.rpartition("-")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Durability(str, enum.Enum):
    """When an append is acknowledged."""

    FSYNC = "fsync"  # once the bytes are on disk (group commit): survives a power loss
    OS = "os"  # once the OS has them; synced right after: survives a process crash, not a power loss


class DurableLog:
    """Appends records to this process's segment in ``folder``; thread-safe.

    A write that fails (a full disk) is cut back to the last whole record and its appenders
    get ``Unavailable``; the log stays usable and ``healthy`` turns False until a write
    succeeds again or ``check_space`` finds room."""

    def __init__(self, folder: Path, prefix: str, segment_bytes: int = 64 * 1024 * 1024,
                 segment_seconds: float = 3600.0, durability: Durability = Durability.FSYNC,
                 spare_after_bytes: int = SPARE_AFTER_BYTES):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.durability = Durability(durability)
        # A segment is closed when it reaches either bound, so retention can delete it.
        self.segment_bytes, self.segment_seconds = segment_bytes, segment_seconds
        self.health = StorageHealth(self.folder)
        self.failed_writes = 0
        self._cond = threading.Condition()
        self._queue: list[tuple[int, list[bytes]]] = []
        self._queued_seq = 0
        self._answered: dict[int, list[RecordAddress] | OSError] = {}
        self._closed = False
        self._broken: BaseException | None = None  # a write died of a bug: refuse, never hang
        self._after_failure = False
        self._segment_no = 0
        self._room = 0  # bytes allocated in the current segment (0: it grows as it is written)
        self._file = self._open_segment()
        # A log that has written spare_after_bytes is busy: from then on a spare is kept ready.
        self._spares = SpareSegments(self.folder, prefix, segment_bytes, spare_after_bytes)
        self._leading = False  # an appender is writing the queue (fsync durability)
        self._writer = None
        if self.durability == Durability.OS:  # the acknowledged bytes are synced a moment later
            self._writer = threading.Thread(target=self._write_loop, name=f"{prefix}-log-writer", daemon=True)
            self._writer.start()

    def append(self, record: dict) -> RecordAddress:
        """Appends one JSON record and returns, once it is durable, where it starts."""
        return self.append_many([record])[0]

    def append_many(self, records: list[dict]) -> list[RecordAddress]:
        """Appends records (all on one segment) and returns once they are durable."""
        frames = [_frame(_encoded(r)) for r in records]
        with self._cond:
            if self._closed:
                raise RuntimeError("log is closed")
            self._queued_seq += 1
            seq = self._queued_seq
            self._queue.append((seq, frames))
            self._cond.notify_all()
            while seq not in self._answered and self._broken is None:
                if self._writer is None and not self._leading:
                    self._lead()
                else:
                    self._cond.wait()
            answer = self._answered.pop(seq, self._broken)
        if self._broken is not None and answer is self._broken:
            raise Unavailable(f"the {self.prefix} log's writer stopped ({self._broken!r}); "
                              "nothing was stored, retry later") from self._broken
        if isinstance(answer, OSError):
            raise Unavailable(f"the {self.prefix} log cannot be written ({answer.strerror or answer}); "
                              "nothing was stored, retry later") from answer
        return answer

    @property
    def healthy(self) -> bool:
        """False after a failed write, until there is room again (see ``check_space``)."""
        return self.health.ok

    def check_space(self) -> bool:
        """After a failed write: healthy again once the file system has room (the next
        append confirms it). Returns ``healthy``."""
        return self.health.check()

    def close(self) -> None:
        """Waits for queued records to be durable, then closes the segment."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            while self._writer is None and (self._leading or self._queue) and self._broken is None:
                self._cond.wait()
        if self._writer is not None:
            self._writer.join()
        self._spares.close()
        self._close_segment()

    @property
    def segment_path(self) -> Path:
        return Path(self._file.name)

    def _open_segment(self, spare: Path | None = None):
        """The next segment: the spare made ready for it when there is one, else a new file."""
        self._segment_no += 1
        path = self.folder / f"{self.prefix}-{process_owner()}-{self._segment_no:04d}.log"
        if spare is not None and self._adopted(spare, path):
            handle = open(path, "r+b", buffering=0)  # written from its start, over the zeros
            self._room = os.fstat(handle.fileno()).st_size
        else:
            handle = open(path, "ab", buffering=0)
            self._room = 0
        fsync_dir(self.folder)
        self._segment_opened = time.monotonic()
        return handle

    def _adopted(self, spare: Path, path: Path) -> bool:
        """Whether the spare became the segment at ``path`` (False: gone, or the folder is
        read-only now, and a new file it is)."""
        try:
            os.rename(spare, path)
            return True
        except OSError as err:
            log.warning("could not use the spare %s segment %s: %s", self.prefix, spare.name, err)
            return False

    def _close_segment(self) -> None:
        """Closes the current segment, cut to its records when it had room to spare."""
        if self._file.closed:  # the log was closed before
            return
        if self._room > self._file.tell():
            _truncate(self._file.fileno(), self._file.tell())
        self._file.close()

    def _next_segment(self, size: int) -> bool:
        """Whether a write of ``size`` bytes goes to a new segment: the current one is older
        than segment_seconds (retention relies on no writer appending to such), a write to it
        failed (should cutting that back have failed, its tail is torn), its allocated room
        is too small, or a spare is ready to replace one that grows as it is written."""
        if self._after_failure or time.monotonic() - self._segment_opened >= self.segment_seconds:
            return True
        if self._room:
            return self._file.tell() + size > self._room
        return self._spares.ready()

    def _lead(self) -> None:
        """Writes the queue on the calling appender's thread (called, and returning, with
        ``_cond`` held; released while writing, when others may queue)."""
        batch, self._queue, self._leading = self._queue, [], True
        self._cond.release()
        answers: dict | BaseException = {}
        try:
            answers = self._written(batch)
        except BaseException as err:  # a bug, not a disk error: every appender is refused, none hangs
            log.exception("the %s log's writer stopped", self.prefix)
            answers = err
        finally:
            self._cond.acquire()
            self._leading = False
            if isinstance(answers, BaseException):
                self._broken = answers
            else:
                self._answered.update(answers)
            self._cond.notify_all()

    def _write_loop(self) -> None:
        try:
            self._drain_until_closed()
        except BaseException as err:  # a bug, not a disk error: every appender is refused, none hangs
            log.exception("the %s log's writer stopped", self.prefix)
            with self._cond:
                self._broken = err
                self._cond.notify_all()

    def _drain_until_closed(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue and self._closed:
                    return
                batch, self._queue = self._queue, []
            answers = self._written(batch)
            with self._cond:
                self._answered.update(answers)
                self._cond.notify_all()
            if not isinstance(next(iter(answers.values())), OSError):
                self._sync_after_ack()

    def _written(self, batch: list[tuple[int, list[bytes]]]) -> dict[int, list[RecordAddress] | OSError]:
        """Each appender's addresses, or the error that refused the whole batch."""
        try:
            answers = self._write(batch)
            self.health.ok = True
            return answers
        except OSError as err:  # the batch is cut back; its appenders are told, the log goes on
            self.health.failed()
            self.failed_writes += 1
            log.error("writing %d records to the %s log failed: %s", len(batch), self.prefix, err)
            return {seq: err for seq, _ in batch}

    def _sync_after_ack(self) -> None:
        try:
            os.fdatasync(self._file.fileno())
        except OSError as err:  # acknowledged records may not survive a power loss: say so
            self.health.failed()
            self.failed_writes += 1
            log.error("syncing the %s log failed after acknowledging: %s", self.prefix, err)

    def _write(self, batch: list[tuple[int, list[bytes]]]) -> dict[int, list[RecordAddress]]:
        data = b"".join(f for _, frames in batch for f in frames)
        if self._next_segment(len(data)):
            self._rotate()
        segment, start = Path(self._file.name).name, self._file.tell()
        addresses, offset = {}, start
        for seq, frames in batch:
            addresses[seq] = []
            for frame in frames:
                addresses[seq].append(RecordAddress(segment, offset))
                offset += len(frame)
        try:
            _write_all(self._file.fileno(), data)
            if self.durability == Durability.FSYNC:
                # fdatasync flushes the bytes and the file's new length (what reading them back
                # needs), not its times: on this machine's ext4, 0.33 ms against fsync's 0.48.
                os.fdatasync(self._file.fileno())
        except OSError:
            _truncate(self._file.fileno(), start)  # no torn record is left for a reader to stop at
            self._after_failure, self._room = True, 0
            raise
        self._spares.written(len(data))
        if self._file.tell() >= self.segment_bytes:
            self._rotate()
        return addresses

    def _rotate(self) -> None:
        self._close_segment()
        self._file = self._open_segment(self._spares.take())
        self._after_failure = False


class SpareSegments:
    """Keeps one spare segment ready for a ``DurableLog``, on a thread of its own: a file of
    ``size`` zeros, synced, named ``<prefix>-<host>-<pid>-<n>.spare`` (not a segment to
    readers). It starts once the log has written ``after_bytes``, so that the many small logs
    (tests, quiet use cases) never pay for one (with 0, no log does); spares left by a dead
    process are removed."""

    def __init__(self, folder: Path, prefix: str, size: int, after_bytes: int):
        self.folder, self.prefix, self.size, self.after_bytes = folder, prefix, size, after_bytes
        self._written = 0
        self._made = 0
        self._spare: Path | None = None
        self._lock = threading.Lock()
        self._wanted = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        _remove_dead_spares(folder, prefix)

    def written(self, size: int) -> None:
        """Counts what the log wrote; the first time it passes ``after_bytes``, starts the thread."""
        self._written += size
        if self._thread is None and 0 < self.after_bytes <= self._written and not self._closed:
            self._thread = threading.Thread(target=self._keep_one_ready, name=f"{self.prefix}-log-spare",
                                            daemon=True)
            self._wanted.set()
            self._thread.start()

    def ready(self) -> bool:
        return self._spare is not None

    def take(self) -> Path | None:
        """The ready spare, if any; the next is made meanwhile (or tried again, after a failure)."""
        with self._lock:
            spare, self._spare = self._spare, None
        if self._thread is not None:
            self._wanted.set()
        return spare

    def close(self) -> None:
        self._closed = True
        self._wanted.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None:
            spare.unlink(missing_ok=True)

    def _keep_one_ready(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            if self._closed:
                return
            if self._spare is None:  # asked again while one was being made: it is the one
                spare = self._filled()
                with self._lock:
                    self._spare = spare

    def _filled(self) -> Path | None:
        stat = os.statvfs(self.folder)
        if stat.f_bavail * stat.f_frsize < 2 * self.size:  # a spare must never take the log's last room
            log.warning("no spare %s segment: less than twice its %d bytes free", self.prefix, self.size)
            return None
        self._made += 1
        path = self.folder / f"{self.prefix}-{process_owner()}-{self._made:04d}.spare"
        try:
            with open(path, "wb", buffering=0) as handle:
                for start in range(0, self.size, len(_ZEROS)):
                    if self._closed:  # the log is closing: no spare
                        break
                    _write_all(handle.fileno(), memoryview(_ZEROS)[:self.size - start])
                    os.fdatasync(handle.fileno())
                else:
                    os.fsync(handle.fileno())  # its blocks and its size: later syncs flush only data
                    return path
        except OSError as err:  # a full disk: the log writes as it grows, as without a spare
            log.warning("could not make a spare %s segment: %s", self.prefix, err)
        path.unlink(missing_ok=True)
        return None


def _remove_dead_spares(folder: Path, prefix: str) -> None:
    for path in Path(folder).glob(f"{prefix}-*.spare"):
        owner = path.stem[len(prefix) + 1:].rpartition("-")[0]
        if not owner_alive(owner):
            path.unlink(missing_ok=True)


def _truncate(fd: int, length: int) -> None:
    try:
        os.ftruncate(fd, length)
        os.fsync(fd)
    except OSError as err:  # the reader still stops at the torn tail; recovery truncates it
        log.error("could not cut a failed write back: %s", err)


def _write_all(fd: int, data: bytes) -> None:
    """os.write may write less than asked (a full disk, a signal): loop until all is out."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _encoded(record: dict) -> bytes:
    """A record as compact JSON, by orjson: a tenth of ``json.dumps``'s time for a decision
    (12 against 0.7 us), a ranking's hundred candidates included. Like ``json.dumps`` it
    writes non-str keys as strings; unlike it, NaN and infinities as null (read back as
    missing, which is what a NaN feature already meant)."""
    return orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS)


def _frame(payload: bytes) -> bytes:
    if len(payload) > MAX_RECORD_BYTES:
        raise ValueError(f"record of {len(payload)} bytes exceeds {MAX_RECORD_BYTES}")
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def list_segments(folder: Path, prefix: str) -> list[Path]:
    """Segments of every process, oldest first."""
    segments = []
    for path in Path(folder).glob(f"{prefix}-*.log"):
        try:
            segments.append((path.stat().st_mtime_ns, path.name, path))
        except FileNotFoundError:  # deleted by retention meanwhile
            continue
    return [path for _, _, path in sorted(segments)]


def data_end(path: Path) -> int:
    """Where a segment's records end: its size, less the zeros of a spare it was made from
    and had not used yet (a segment is cut to its records when closed, so only the one being
    written and one a crash left have them). Records never end in a zero byte and no 4 KiB
    of them are all zeros, so the end is found by halving: the first 4 KiB block of zeros,
    then the last byte before it that is not zero."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0 or os.pread(handle.fileno(), 1, size - 1) != b"\0":
            return size
        low, high = 0, -(-size // _BLOCK)  # the first all-zero block is in [low, high] (high: past the end)
        while low < high:
            middle = (low + high) // 2
            if os.pread(handle.fileno(), _BLOCK, middle * _BLOCK).count(0) == min(_BLOCK, size - middle * _BLOCK):
                high = middle
            else:
                low = middle + 1
        if low == 0:
            return 0
        before = os.pread(handle.fileno(), _BLOCK, (low - 1) * _BLOCK)
        return (low - 1) * _BLOCK + len(before.rstrip(b"\0"))


def iter_records(path: Path, start: int = 0) -> Iterator[tuple[dict, LogPosition]]:
    """Records of one segment from byte ``start``; stops at a torn or corrupt tail."""
    with open(path, "rb") as handle:
        handle.seek(start)
        offset = start
        while True:
            payload = _read_frame(handle)
            if payload is None:
                return
            record_start, offset = offset, offset + _HEADER.size + len(payload)
            yield json.loads(payload), LogPosition(path.name, offset, record_start)


def read_record(folder: Path, address: RecordAddress) -> dict | None:
    """The record at an address, or None when its segment is gone or the bytes are not a
    whole record."""
    try:
        with open(Path(folder) / address.segment, "rb") as handle:
            handle.seek(address.offset)
            payload = _read_frame(handle)
    except FileNotFoundError:
        return None
    return json.loads(payload) if payload is not None else None


def _read_frame(handle) -> bytes | None:
    header = handle.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    length, crc = _HEADER.unpack(header)
    if length == 0:  # the unused zeros of a preallocated segment (a record is never empty)
        return None
    payload = handle.read(length)
    if len(payload) < length or zlib.crc32(payload) != crc:
        return None
    return payload


class LogConsumer:
    """One reader's progress through every segment of a log (segment name -> byte offset),
    kept in the log's consumer folder under the reader's name."""

    def __init__(self, log_folder: Path, prefix: str, consumers_folder: Path, name: str):
        self.log_folder, self.prefix, self.name = Path(log_folder), prefix, name
        self.path = Path(consumers_folder) / f"{name}.json"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.offsets: dict[str, int] = {}
        self.reload()

    def reload(self) -> None:
        """Reads the saved progress again: another process may have consumed since (the
        readers take turns under a lock, see LabelJoiner)."""
        try:
            self.offsets = json.loads(self.path.read_text())
        except FileNotFoundError:
            self.offsets = {}

    def pending(self) -> Iterator[tuple[dict, LogPosition]]:
        """Records not yet consumed, across all segments."""
        for segment in list_segments(self.log_folder, self.prefix):
            yield from iter_records(segment, self.offsets.get(segment.name, 0))

    def advance(self, position: LogPosition) -> None:
        self.offsets[position.segment] = position.offset

    def save(self) -> None:
        """Records the progress durably; segments that no longer exist are forgotten."""
        present = {p.name for p in list_segments(self.log_folder, self.prefix)}
        self.offsets = {name: offset for name, offset in self.offsets.items() if name in present}
        write_file_durably(self.path, json.dumps(self.offsets).encode())

    def backlog_bytes(self) -> int:
        total = 0
        for segment in list_segments(self.log_folder, self.prefix):
            try:
                total += max(0, data_end(segment) - self.offsets.get(segment.name, 0))
            except FileNotFoundError:
                continue
        return total


def deletable_segments(log_folder: Path, prefix: str, consumers_folder: Path, consumers: list[str],
                       older_than: float, segment_seconds: float = 3600.0) -> list[Path]:
    """Segments that are closed, old and read: last written before ``older_than`` (a Unix
    time) and more than ``segment_seconds`` ago (a writer never appends to a segment older
    than that, see DurableLog), and read to their end by each of the log's ``consumers``
    (one that has not started yet holds everything back)."""
    cutoff = min(older_than, time.time() - segment_seconds)
    progress = []
    for name in consumers:
        try:
            progress.append(json.loads((Path(consumers_folder) / f"{name}.json").read_text()))
        except FileNotFoundError:
            return []
    deletable = []
    for segment in list_segments(log_folder, prefix):
        try:
            stat = segment.stat()
        except FileNotFoundError:
            continue
        if stat.st_mtime < cutoff and all(offsets.get(segment.name, 0) >= data_end(segment) for offsets in progress):
            deletable.append(segment)
    return deletable
