"""Deletion requests, their progress, and the tombstones readers check: one SQLite database in
the data directory (``DataDir.deletions``), shared by every process.

A deletion is created by the Trainer (``DeleteUseCase``, ``DeleteSubjectData``), carried out
by the deletion job (``services.deletions.job``), and read back by id (``GetDeletion``). While
it is unfinished it is a *tombstone*: every process hides what it covers at once (the
Decision service's lookups, the label joiner) by checking ``Tombstones``, which re-reads the
database only when another process has committed to it (SQLite's ``data_version``).

A subject deletion covers the use case's decisions for that subject made up to the request;
a use-case deletion covers every decision and outcome of the use case. Once a deletion is
done, nothing it covered is left to hide, and the subject's values are dropped from the
record: only their SHA-256 digest stays.
"""

from __future__ import annotations

import enum
import hashlib
import json
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from services.platform.errors import FailedPrecondition, NotFound, ResourceExhausted

MAX_UNFINISHED = 1000  # deletions waiting or running at once: each is checked by every reader

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deletions (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, deletion_id TEXT NOT NULL UNIQUE, request_id TEXT NOT NULL,
  request_digest TEXT NOT NULL, kind INTEGER NOT NULL, use_case TEXT NOT NULL, subject_json TEXT NOT NULL,
  subject_sha256 TEXT NOT NULL, state INTEGER NOT NULL, request_time REAL NOT NULL, update_time REAL NOT NULL,
  end_time REAL, removed_json TEXT NOT NULL, waiting_json TEXT NOT NULL, waiting_reason TEXT NOT NULL,
  steps_json TEXT NOT NULL, details_json TEXT NOT NULL, error TEXT NOT NULL, attempts INTEGER NOT NULL,
  requested_by TEXT NOT NULL,
  UNIQUE (use_case, request_id));
CREATE INDEX IF NOT EXISTS unfinished ON deletions (state, seq);
-- Ids of records a deletion removes (decision ids, outcome event ids), kept until it is done
-- so that every copy is found (the log, the joiner, the indexes).
CREATE TABLE IF NOT EXISTS deleted_ids (
  deletion_id TEXT NOT NULL, log TEXT NOT NULL, use_case TEXT NOT NULL, id TEXT NOT NULL,
  PRIMARY KEY (deletion_id, log, use_case, id)) WITHOUT ROWID;
-- How far each closed log segment has been cleaned: of every deletion up to this seq.
CREATE TABLE IF NOT EXISTS cleaned_segments (
  log TEXT NOT NULL, segment TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (log, segment)) WITHOUT ROWID;
"""


class DeletionKind(enum.IntEnum):
    """Mirrors ``looper.v1.DeletionKind``."""

    UNSPECIFIED = 0
    SUBJECT = 1
    USE_CASE = 2


class DeletionState(enum.IntEnum):
    """Mirrors ``looper.v1.DeletionState``."""

    UNSPECIFIED = 0
    PENDING = 1  # requested; its tombstone hides what it covers already
    RUNNING = 2  # the job has started removing
    DONE = 3  # nothing it covers is left anywhere Looper keeps data
    FAILED = 4  # a step kept failing (see error); the job gave up, a new request starts over


# What a deletion counts, removed and still waiting (``looper.v1.DeletionCounts``).
COUNTS = ("decision_records", "outcome_records", "joined_decisions", "joined_outcomes", "training_rows",
          "online_feature_rows", "offline_feature_rows", "index_entries", "segments", "blueprint_versions",
          "models", "training_runs", "experiments")


@dataclass(frozen=True)
class Deletion:
    deletion_id: str
    seq: int  # creation order
    request_id: str
    kind: DeletionKind
    use_case: str
    subject: dict[str, str]  # the subject's entity values; {} for a use case, and once done
    subject_sha256: str  # "" for a use case
    state: DeletionState
    request_time: datetime
    update_time: datetime
    end_time: datetime | None = None
    removed: dict[str, int] = field(default_factory=dict)
    waiting: dict[str, int] = field(default_factory=dict)
    waiting_reason: str = ""
    steps: frozenset[str] = frozenset()  # the job's steps already done
    details: dict = field(default_factory=dict)
    error: str = ""
    attempts: int = 0  # runs in a row that failed
    requested_by: str = ""

    @property
    def finished(self) -> bool:
        return self.state in (DeletionState.DONE, DeletionState.FAILED)

    def covers(self, use_case: str, subject: dict[str, str], decide_time: datetime) -> bool:
        """Whether a decision (its use case, subject and time) is one this deletion removes."""
        if use_case != self.use_case:
            return False
        if self.kind == DeletionKind.USE_CASE:
            return True
        return (decide_time <= self.request_time and bool(self.subject)
                and all(subject.get(key) == value for key, value in self.subject.items()))


def subject_digest(subject: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(subject, sort_keys=True).encode()).hexdigest()


def _request_digest(kind: DeletionKind, use_case: str, subject: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps([int(kind), use_case, subject], sort_keys=True).encode()).hexdigest()


def _connect(path: Path) -> sqlite3.Connection:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(_SCHEMA)
    return db


_COLUMNS = ("seq, deletion_id, request_id, kind, use_case, subject_json, subject_sha256, state, request_time, "
            "update_time, end_time, removed_json, waiting_json, waiting_reason, steps_json, details_json, error, "
            "attempts, requested_by")


def _deletion(row) -> Deletion:
    (seq, deletion_id, request_id, kind, use_case, subject, digest, state, request_time, update_time, end_time,
     removed, waiting, reason, steps, details, error, attempts, requested_by) = row
    stamp = lambda t: datetime.fromtimestamp(t, timezone.utc) if t is not None else None  # noqa: E731
    return Deletion(deletion_id=deletion_id, seq=seq, request_id=request_id, kind=DeletionKind(kind),
                    use_case=use_case, subject=json.loads(subject), subject_sha256=digest, state=DeletionState(state),
                    request_time=stamp(request_time), update_time=stamp(update_time), end_time=stamp(end_time),
                    removed=json.loads(removed), waiting=json.loads(waiting), waiting_reason=reason,
                    steps=frozenset(json.loads(steps)), details=json.loads(details), error=error, attempts=attempts,
                    requested_by=requested_by)


class DeletionStore:
    """The deletions of a data directory (written by the Trainer, read by everyone)."""

    def __init__(self, path: Path, max_unfinished: int = MAX_UNFINISHED):
        self.path = Path(path)
        self.max_unfinished = max_unfinished
        self._db = _connect(self.path)
        self._lock = threading.Lock()

    # --- requests ---------------------------------------------------------------------------
    def create(self, kind: DeletionKind, use_case: str, subject: dict[str, str], request_id: str,
               requested_by: str = "", details: dict | None = None, now: datetime | None = None
               ) -> tuple[Deletion, bool]:
        """A new pending deletion, or the one made earlier by the same request (same use case
        and request id; also, for a use case, any unfinished deletion of it); returns it and
        whether it is new. A request id used for a different request is refused."""
        digest = _request_digest(kind, use_case, subject)
        request_id = request_id or f"auto-{uuid.uuid4().hex}"
        moment = (now or datetime.now(timezone.utc)).timestamp()
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            earlier = self._db.execute(f"SELECT {_COLUMNS}, request_digest FROM deletions "
                                       "WHERE use_case = ? AND request_id = ?", (use_case, request_id)).fetchone()
            if earlier is not None:
                if earlier[-1] != digest:
                    raise FailedPrecondition(f"request_id {request_id!r} was used for a different deletion "
                                             f"({earlier[1]}); use a new request id")
                return _deletion(earlier[:-1]), False
            if kind == DeletionKind.USE_CASE:
                running = self._db.execute(f"SELECT {_COLUMNS} FROM deletions WHERE use_case = ? AND kind = ? "
                                           "AND state IN (?, ?) ORDER BY seq LIMIT 1",
                                           (use_case, int(kind), *_UNFINISHED)).fetchone()
                if running is not None:
                    return _deletion(running), False
            unfinished = self._db.execute("SELECT COUNT(*) FROM deletions WHERE state IN (?, ?)",
                                          _UNFINISHED).fetchone()[0]
            if unfinished >= self.max_unfinished:
                raise ResourceExhausted(f"{unfinished} deletions are still unfinished, the most allowed at once; "
                                        "retry once some are done (GetDeletion)")
            deletion_id = f"del-{uuid.uuid4().hex[:16]}"
            self._db.execute(
                "INSERT INTO deletions (deletion_id, request_id, request_digest, kind, use_case, subject_json, "
                "subject_sha256, state, request_time, update_time, end_time, removed_json, waiting_json, "
                "waiting_reason, steps_json, details_json, error, attempts, requested_by) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, '{}', '{}', '', '[]', ?, '', 0, ?)",
                (deletion_id, request_id, digest, int(kind), use_case, json.dumps(subject, sort_keys=True),
                 subject_digest(subject) if subject else "", int(DeletionState.PENDING), moment, moment,
                 json.dumps(details or {}), requested_by))
        return self.get(deletion_id), True

    def earlier(self, use_case: str, request_id: str, kind: DeletionKind, subject: dict[str, str]) -> Deletion | None:
        """The deletion an earlier request with this id made, if any (a retry); a request id
        used for a different request is refused."""
        if not request_id:
            return None
        with self._lock:
            row = self._db.execute(f"SELECT {_COLUMNS}, request_digest FROM deletions "
                                   "WHERE use_case = ? AND request_id = ?", (use_case, request_id)).fetchone()
        if row is None:
            return None
        if row[-1] != _request_digest(kind, use_case, subject):
            raise FailedPrecondition(f"request_id {request_id!r} was used for a different deletion ({row[1]}); "
                                     "use a new request id")
        return _deletion(row[:-1])

    def get(self, deletion_id: str) -> Deletion:
        with self._lock:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM deletions WHERE deletion_id = ?",
                                   (deletion_id,)).fetchone()
        if row is None:
            raise NotFound(f"deletion {deletion_id!r} was not found")
        return _deletion(row)

    def unfinished(self) -> list[Deletion]:
        """Pending and running deletions, oldest first."""
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM deletions WHERE state IN (?, ?) ORDER BY seq",
                                    _UNFINISHED).fetchall()
        return [_deletion(row) for row in rows]

    def deleting_use_case(self, use_case: str) -> Deletion | None:
        """The unfinished deletion of the use case itself, if any."""
        return next((d for d in self.unfinished() if d.use_case == use_case and d.kind == DeletionKind.USE_CASE),
                    None)

    # --- progress (the job) ------------------------------------------------------------------
    def save(self, deletion: Deletion) -> Deletion:
        """Stores the deletion's progress (state, counts, steps, error) as given."""
        now = time.time()
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "UPDATE deletions SET state = ?, update_time = ?, end_time = ?, removed_json = ?, waiting_json = ?, "
                "waiting_reason = ?, steps_json = ?, details_json = ?, error = ?, attempts = ?, subject_json = ? "
                "WHERE deletion_id = ?",
                (int(deletion.state), now, deletion.end_time.timestamp() if deletion.end_time else None,
                 json.dumps(deletion.removed, sort_keys=True), json.dumps(deletion.waiting, sort_keys=True),
                 deletion.waiting_reason, json.dumps(sorted(deletion.steps)), json.dumps(deletion.details),
                 deletion.error, deletion.attempts, json.dumps(deletion.subject, sort_keys=True),
                 deletion.deletion_id))
            if deletion.finished:
                self._db.execute("DELETE FROM deleted_ids WHERE deletion_id = ?", (deletion.deletion_id,))
        return replace(deletion, update_time=datetime.fromtimestamp(now, timezone.utc))

    def add_ids(self, deletion_id: str, log: str, items: list[tuple[str, str]]) -> None:
        """Records (use case, id) of records the deletion removes from ``log``."""
        if not items:
            return
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT OR IGNORE INTO deleted_ids VALUES (?, ?, ?, ?)",
                                 [(deletion_id, log, use_case, key) for use_case, key in items])

    def ids(self, deletion_id: str, log: str) -> set[tuple[str, str]]:
        with self._lock:
            return set(self._db.execute("SELECT use_case, id FROM deleted_ids WHERE deletion_id = ? AND log = ?",
                                        (deletion_id, log)).fetchall())

    def cleaned(self, log: str) -> dict[str, int]:
        """Closed segments of ``log`` and the seq of the last deletion each is clean of."""
        with self._lock:
            return dict(self._db.execute("SELECT segment, seq FROM cleaned_segments WHERE log = ?", (log,)))

    def mark_cleaned(self, log: str, segment: str, seq: int, replaced: str | None = None) -> None:
        """Records that ``segment`` is clean of every deletion up to ``seq`` (a rewritten
        segment replaces the old one's entry)."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            if replaced:
                self._db.execute("DELETE FROM cleaned_segments WHERE log = ? AND segment = ?", (log, replaced))
            self._db.execute("INSERT OR REPLACE INTO cleaned_segments VALUES (?, ?, ?)", (log, segment, seq))

    def forget_segments(self, log: str, present: set[str]) -> None:
        """Drops the entries of segments that no longer exist (retention deleted them)."""
        gone = [name for name in self.cleaned(log) if name not in present]
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("DELETE FROM cleaned_segments WHERE log = ? AND segment = ?",
                                 [(log, name) for name in gone])

    def close(self) -> None:
        with self._lock:
            self._db.close()


_UNFINISHED = (int(DeletionState.PENDING), int(DeletionState.RUNNING))


class TombstoneSet:
    """The unfinished deletions at one moment, indexed for the readers' checks."""

    def __init__(self, deletions: list[Deletion]):
        self.deletions = deletions
        self._use_cases = {d.use_case for d in deletions if d.kind == DeletionKind.USE_CASE}
        self._subjects: dict[tuple[str, str, str], list[Deletion]] = {}
        for d in deletions:
            if d.kind == DeletionKind.SUBJECT and d.subject:
                key, value = sorted(d.subject.items())[0]
                self._subjects.setdefault((d.use_case, key, value), []).append(d)

    def __bool__(self) -> bool:
        return bool(self.deletions)

    def covers(self, record) -> bool:
        """Whether a decision record (``use_case``, ``subject``, ``decide_time``) is being deleted."""
        if not self.deletions:
            return False
        if record.use_case in self._use_cases:
            return True
        return any(d.covers(record.use_case, record.subject, record.decide_time)
                   for key, value in record.subject.items()
                   for d in self._subjects.get((record.use_case, key, value), ()))

    def covers_use_case(self, use_case: str) -> bool:
        """Whether the whole use case is being deleted (its outcome events too)."""
        return use_case in self._use_cases


class Tombstones:
    """Every process's read side: the unfinished deletions, re-read only after another
    process committed a change (cheap enough for every lookup)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._version = None
        self._set = TombstoneSet([])

    def active(self) -> TombstoneSet:
        with self._lock:
            if self._db is None:
                self._db = _connect(self.path)
            version = self._db.execute("PRAGMA data_version").fetchone()[0]
            if version != self._version:
                rows = self._db.execute(f"SELECT {_COLUMNS} FROM deletions WHERE state IN (?, ?) ORDER BY seq",
                                        _UNFINISHED).fetchall()
                self._set, self._version = TombstoneSet([_deletion(row) for row in rows]), version
            return self._set

    def covers(self, record) -> bool:
        return self.active().covers(record)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
