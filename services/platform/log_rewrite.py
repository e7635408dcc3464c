"""Rewriting closed segments of a durable log without some of their records: how a deletion
(``services.deletions``) reaches the decision and outcome logs.

A segment is append-only while its writer has it open; once closed (nothing appended for
``segment_seconds``: ``DurableLog`` never appends to an older segment) it changes only here.
A rewrite copies the records it keeps, byte for byte, into a new segment named after the old
one (``...-0001.log`` becomes ``...-0001.r1.log``) that carries the old one's modification
time, so that readers order it and retention ages it exactly as before. Then it switches:

1. the new segment is written as a hidden temporary file and fsynced;
2. a journal (``.rewrite-<old>.json``) records the switch: the old and new names and, for
   each consumer that had read into the old segment, its offset in the new one (the same
   record boundary, less the bytes dropped before it);
3. the temporary file gets the new name;
4. each consumer's progress moves from the old segment to the new one;
5. the id index is remapped (``Reindex``): kept records to their new addresses, dropped
   ones forgotten;
6. the old segment is deleted, then the journal.

Every step after the journal is idempotent, so a rewrite cut short (a crash, SIGKILL) is
finished by ``finish_rewrites``: the log's consumers run it before they read, and the
deletion job before it starts anything new. Until step 6 both segments hold every kept
record, so a reader that follows the id index finds its record at every moment. The caller
holds the lock the log's consumers take for a pass (no consumer keeps offsets in memory
across a switch) and has checked that the segment is closed.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Hashable

from services.platform.durable_log import RecordAddress, iter_records, list_segments
from services.platform.files import fsync_dir, write_file_durably

JOURNAL_PREFIX = ".rewrite-"
_NAME = re.compile(r"(?P<base>.+?)(?:\.r(?P<generation>\d+))?\.log")

# (old segment, new segment or None when nothing was kept, kept records at their new
# addresses, dropped records): updates whatever index points into the old segment; returns
# the keys of the dropped records it forgot.
Reindex = Callable[[str, "str | None", list[tuple[dict, RecordAddress]], list[dict]], list]
Key = Callable[[dict], Hashable]  # what identifies a record in the index (use case and id)


@dataclass(frozen=True)
class SegmentRewrite:
    old: str
    new: str | None  # None: every record was dropped and the segment is gone
    kept: int
    dropped: list[dict]
    forgotten: list = field(default_factory=list)  # keys of dropped records the index forgot


def next_name(name: str) -> str:
    """The name of a segment's rewritten version: ``x.log`` -> ``x.r1.log`` -> ``x.r2.log``."""
    match = _NAME.fullmatch(name)
    if match is None:
        raise ValueError(f"{name!r} is not a segment name")
    return f"{match['base']}.r{int(match['generation'] or 0) + 1}.log"


def rewrite_segment(segment: Path, consumers: Path, drop: Callable[[dict], bool], key: Key,
                    reindex: Reindex) -> SegmentRewrite | None:
    """Rewrites ``segment`` without the records ``drop`` selects (see the module's steps);
    None when it selects none. Raises if the segment changes meanwhile (it was not closed)."""
    segment = Path(segment)
    folder = segment.parent
    before = segment.stat()
    kept, dropped, boundaries, size = [], [], [], 0
    for record, position in iter_records(segment):
        if drop(record):
            dropped.append(record)
        else:
            kept.append((position.start, position.offset - position.start))
            size += position.offset - position.start
        boundaries.append((position.offset, size))  # a record's end: old offset -> new offset
    if not dropped:
        return None
    new = next_name(segment.name) if kept else None
    if new is not None:
        temporary = folder / f".{new}.tmp"
        with open(segment, "rb") as source, open(temporary, "wb") as out:
            for start, length in kept:
                source.seek(start)
                out.write(source.read(length))
            out.flush()
            os.utime(temporary, ns=(before.st_atime_ns, before.st_mtime_ns))
            os.fsync(out.fileno())
    after = segment.stat()
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        if new is not None:
            (folder / f".{new}.tmp").unlink(missing_ok=True)
        raise RuntimeError(f"segment {segment.name} changed while it was being rewritten: it was not closed")
    targets = {}
    for path in sorted(Path(consumers).glob("*.json")):
        offsets = json.loads(path.read_text())
        if segment.name in offsets:
            targets[path.stem] = _moved_offset(offsets[segment.name], boundaries)
    journal = {"old": segment.name, "new": new, "consumers": targets}
    write_file_durably(folder / f"{JOURNAL_PREFIX}{segment.name}.json", json.dumps(journal).encode())
    forgotten = _finish(folder, Path(consumers), journal, key, reindex)
    return SegmentRewrite(segment.name, new, len(kept), dropped, forgotten)


def finish_rewrites(folder: Path, consumers: Path, key: Key, reindex: Reindex) -> int:
    """Finishes every rewrite of the log in ``folder`` that was cut short, and removes the
    temporary file of one cut short before its journal; returns how many it finished. The
    caller holds the lock of the log's consumers."""
    folder = Path(folder)
    finished = 0
    for path in sorted(folder.glob(f"{JOURNAL_PREFIX}*.json")):
        _finish(folder, Path(consumers), json.loads(path.read_text()), key, reindex)
        finished += 1
    for stale in folder.glob(".*.log.tmp"):  # written before its journal: the rewrite never began
        stale.unlink(missing_ok=True)
    return finished


def pending_rewrites(folder: Path) -> bool:
    """Whether a rewrite of the log in ``folder`` was cut short (a journal is left)."""
    return any(Path(folder).glob(f"{JOURNAL_PREFIX}*.json"))


def _finish(folder: Path, consumers: Path, journal: dict, key: Key, reindex: Reindex) -> list:
    old, new = folder / journal["old"], folder / journal["new"] if journal["new"] else None
    if new is not None:
        temporary = folder / f".{new.name}.tmp"
        if temporary.exists():  # complete: it was fsynced before the journal was written
            os.replace(temporary, new)
            fsync_dir(folder)
    for name, target in journal["consumers"].items():
        path = consumers / f"{name}.json"
        try:
            offsets = json.loads(path.read_text())
        except FileNotFoundError:
            continue
        if old.name in offsets:  # not moved yet
            del offsets[old.name]
            if new is not None:
                offsets[new.name] = target
            write_file_durably(path, json.dumps(offsets).encode())
    forgotten = []
    if old.exists():
        kept = [(record, position.address) for record, position in iter_records(new)] if new else []
        kept_keys = {key(record) for record, _ in kept}
        dropped = [record for record, _ in iter_records(old) if key(record) not in kept_keys]
        forgotten = reindex(old.name, new.name if new else None, kept, dropped)
        old.unlink()
        fsync_dir(folder)
    (folder / f"{JOURNAL_PREFIX}{journal['old']}.json").unlink(missing_ok=True)
    fsync_dir(folder)
    return forgotten


def _moved_offset(offset: int, boundaries: list[tuple[int, int]]) -> int:
    """A consumer's offset in the old segment (a record's end, or 0) in the new one: the
    kept bytes before it."""
    moved = 0
    for old_end, new_end in boundaries:
        if old_end > offset:
            break
        moved = new_end
    return moved


class LogEraser:
    """One durable log as a deletion sees it: its segments, which of them are closed (safe
    to rewrite), rewriting one, and finishing rewrites that were cut short. ``reindex``
    keeps the log's id index in step; the caller holds the lock of the log's consumers
    around ``rewrite`` and ``finish``."""

    def __init__(self, folder: Path, prefix: str, consumers: Path, segment_seconds: float, key: Key,
                 reindex: Reindex):
        self.folder, self.prefix, self.consumers = Path(folder), prefix, Path(consumers)
        self.segment_seconds, self.key, self.reindex = segment_seconds, key, reindex

    def segments(self) -> list[Path]:
        return list_segments(self.folder, self.prefix)

    def is_closed(self, segment: Path, now: float | None = None) -> bool:
        """Whether no writer will append to the segment again: nothing written for more than
        ``segment_seconds`` (and a second), or its writer, on this host, is gone."""
        try:
            modified = segment.stat().st_mtime
        except FileNotFoundError:
            return True
        now = time.time() if now is None else now
        return now - modified > self.segment_seconds + CLOSE_MARGIN_SECONDS or not self._writer_alive(segment.name)

    def records(self, segment: Path) -> list[dict]:
        return [record for record, _ in iter_records(segment)]

    def rewrite(self, segment: Path, drop: Callable[[dict], bool]) -> SegmentRewrite | None:
        return rewrite_segment(segment, self.consumers, drop, self.key, self.reindex)

    def finish(self) -> int:
        return finish_rewrites(self.folder, self.consumers, self.key, self.reindex)

    def _writer_alive(self, name: str) -> bool:
        match = re.fullmatch(rf"{re.escape(self.prefix)}-(?P<host>.+)-(?P<pid>\d+)-\d+(?:\.r\d+)?\.log", name)
        if match is None or match["host"] != socket.gethostname():
            return True  # only its own host can tell
        try:
            os.kill(int(match["pid"]), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


CLOSE_MARGIN_SECONDS = 1.0  # clocks and the writer's monotonic timer may disagree this much
