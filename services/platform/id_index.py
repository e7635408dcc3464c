"""Which ids have been used, shared by every process on a data directory: the idempotency
index behind decision ids and outcome event ids.

An id is first *claimed* (a row that says who is writing it), then *completed* once its
record is durable, with the record's address when the caller wants to read it again. Two
processes that receive the same id at once both try to claim it; SQLite lets exactly one
insert the row, and the other sees the claim and waits for it. A claim whose owner died is
taken over. The index lives in SQLite (WAL, one writer at a time, readers never blocked);
it is not the source of truth, the durable logs are, so commits skip fsync (a crash of the
process loses nothing, a power loss may lose the newest rows).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from services.platform.durable_log import RecordAddress, owner_alive, process_owner
from services.platform.errors import Unavailable
from services.platform.files import StorageHealth

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ids (
  scope TEXT NOT NULL, key TEXT NOT NULL, time REAL NOT NULL, done INTEGER NOT NULL,
  segment TEXT, offset INTEGER, owner TEXT NOT NULL,
  PRIMARY KEY (scope, key)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ids_by_time ON ids (time);
"""


@dataclass(frozen=True)
class IndexEntry:
    time: float  # when the id was used (Unix seconds)
    done: bool  # False while its owner is still writing the record
    address: RecordAddress | None
    owner: str

    def owner_alive(self) -> bool:
        """Whether the claiming process still runs (see ``durable_log.owner_alive``)."""
        return owner_alive(self.owner)


class IdempotencyIndex:
    def __init__(self, path: Path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.owner = process_owner()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self.health = StorageHealth(Path(path).parent)

    def claim(self, scope: str, keys: list[str], now: float) -> dict[str, IndexEntry]:
        """Claims every key nobody has used, in one transaction; returns the entries of the
        keys that were already there (done, or claimed by someone else)."""
        existing: dict[str, IndexEntry] = {}
        with self._lock, self._transaction():
            for key in keys:
                inserted = self._db.execute(
                    "INSERT INTO ids (scope, key, time, done, owner) VALUES (?, ?, ?, 0, ?) ON CONFLICT DO NOTHING",
                    (scope, key, now, self.owner)).rowcount
                if not inserted:
                    existing[key] = self._get(scope, key)
        return existing

    def complete(self, scope: str, items: list[tuple[str, RecordAddress | None, float]]) -> None:
        """Marks claimed keys done: (key, the record's address or None, the time it was used)."""
        with self._lock, self._transaction():
            self._db.executemany(
                "UPDATE ids SET done = 1, segment = ?, offset = ?, time = ? WHERE scope = ? AND key = ?",
                [(a.segment if a else None, a.offset if a else None, t, scope, k) for k, a, t in items])

    def release(self, scope: str, keys: list[str]) -> None:
        """Gives up this process's claims (the write failed): the ids are free again."""
        with self._lock, self._transaction():
            self._db.executemany("DELETE FROM ids WHERE scope = ? AND key = ? AND done = 0 AND owner = ?",
                                 [(scope, k, self.owner) for k in keys])

    def take_over(self, scope: str, key: str, dead_owner: str, now: float) -> bool:
        """Moves a dead process's claim to this one; False if it changed meanwhile."""
        with self._lock, self._transaction():
            return self._db.execute(
                "UPDATE ids SET owner = ?, time = ? WHERE scope = ? AND key = ? AND done = 0 AND owner = ?",
                (self.owner, now, scope, key, dead_owner)).rowcount == 1

    def get(self, scope: str, key: str) -> IndexEntry | None:
        with self._lock:
            return self._get(scope, key)

    def prune(self, before: float) -> int:
        """Forgets ids used before ``before`` (Unix seconds); returns how many."""
        with self._lock, self._transaction():
            return self._db.execute("DELETE FROM ids WHERE time < ? AND done = 1", (before,)).rowcount

    def move(self, old_segment: str, items: list[tuple[str, str, RecordAddress]]) -> int:
        """Points ids whose record was rewritten to its new address: (scope, key, address),
        for entries that still point into ``old_segment``; returns how many moved."""
        with self._lock, self._transaction():
            return sum(self._db.execute(
                "UPDATE ids SET segment = ?, offset = ? WHERE scope = ? AND key = ? AND segment = ?",
                (address.segment, address.offset, scope, key, old_segment)).rowcount for scope, key, address in items)

    def forget(self, items: list[tuple[str, str]], segment: str | None = None) -> list[tuple[str, str]]:
        """Forgets ids (scope, key) whose record was deleted, only those whose entry points into
        ``segment`` when it is given; returns the ones that were there."""
        with self._lock, self._transaction():
            if segment is None:
                return [item for item in items
                        if self._db.execute("DELETE FROM ids WHERE scope = ? AND key = ?", item).rowcount]
            return [item for item in items if self._db.execute(
                "DELETE FROM ids WHERE scope = ? AND key = ? AND segment = ?", (*item, segment)).rowcount]

    def forget_scope(self, scope: str) -> int:
        """Forgets every id of a scope (a deleted use case); returns how many."""
        with self._lock, self._transaction():
            return self._db.execute("DELETE FROM ids WHERE scope = ?", (scope,)).rowcount

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM ids").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _get(self, scope: str, key: str) -> IndexEntry | None:
        row = self._db.execute("SELECT time, done, segment, offset, owner FROM ids WHERE scope = ? AND key = ?",
                               (scope, key)).fetchone()
        if row is None:
            return None
        time, done, segment, offset, owner = row
        address = RecordAddress(segment, offset) if segment is not None else None
        return IndexEntry(time=time, done=bool(done), address=address, owner=owner)

    def _transaction(self):
        return _Transaction(self._db, self.health)


LOCK_WAIT_SECONDS = 30.0  # how long a transaction waits for another process's to finish


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (or ROLLBACK on error): the write lock is taken up front,
    so two processes never deadlock upgrading a read to a write. A database that cannot be
    written (a full disk) makes the call Unavailable: retried later, nothing was stored.

    While another process holds the lock, BEGIN is retried after 50 us, doubling up to 1 ms.
    SQLite's own busy handler sleeps 1, 2, 5, 10... ms between tries: with two Decision
    workers committing every batch, that left both waiting on each other with cores idle."""

    def __init__(self, db: sqlite3.Connection, health: StorageHealth):
        self.db, self.health = db, health

    def __enter__(self):
        deadline, pause = time.monotonic() + LOCK_WAIT_SECONDS, 0.00005
        self.db.execute("PRAGMA busy_timeout = 0")  # a busy lock is reported at once: retried here
        try:
            while not self._begun(deadline):
                time.sleep(pause)
                pause = min(pause * 2, 0.001)
        finally:
            self.db.execute(f"PRAGMA busy_timeout = {int(LOCK_WAIT_SECONDS * 1000)}")

    def _begun(self, deadline: float) -> bool:
        try:
            self.db.execute("BEGIN IMMEDIATE")
            return True
        except sqlite3.OperationalError as err:
            if "locked" in str(err) and time.monotonic() < deadline:
                return False
            self.health.failed()
            raise Unavailable(f"the id index cannot be written ({err}); retry later") from err

    def __exit__(self, kind, error, traceback) -> None:
        if kind is None:
            self._run("COMMIT")
            return
        try:
            self.db.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        if isinstance(error, sqlite3.OperationalError):
            self.health.failed()
            raise Unavailable(f"the id index cannot be written ({error}); retry later") from error

    def _run(self, statement: str) -> None:
        try:
            self.db.execute(statement)
        except sqlite3.OperationalError as err:
            if statement == "COMMIT":
                try:
                    self.db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            self.health.failed()
            raise Unavailable(f"the id index cannot be written ({err}); retry later") from err
