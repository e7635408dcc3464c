"""The label joiner: joins outcome events to logged decisions by decision id within the
use case's attribution window, and writes each decision's label to the training table once
its window has closed.

It reads the decision log and the outcome log through their streams (each remembers how far
the joiner got), keeps its working state in SQLite, and never drops an outcome: those after
the window are kept as ``late``, those with no known decision as ``orphan`` (and joined if
the decision shows up while its window is still open). Counters are in ``stats``; the
subjects whose activity changed are reported after each pass (personalization).

Several Feedback workers may share one data directory: with ``pass_lock`` their passes take
turns under an flock, and each starts from the progress the last one saved.
"""

from __future__ import annotations

import enum
import itertools
import json
import logging
from collections import Counter
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterator

from services.blueprints.spec import Aggregation, Blueprint, DecisionType
from services.blueprints.store import BlueprintStore
from services.decisions.log import DecisionStream
from services.decisions.record import DecisionRecord
from services.deletions.store import TombstoneSet
from services.labels.outcomes import OutcomeStream
from services.labels.training_table import LabeledDecision, TrainingTable
from services.platform.errors import NotFound
from services.platform.files import exclusive_lock
from services.platform.telemetry import OffTracer

log = logging.getLogger("looper.joiner")

CONSUMER = "label-joiner"  # the joiner's name as a reader of the decision and outcome logs
JOINER_LOCK = "label-joiner.lock"  # in the data directory's locks: one pass at a time, across processes
INGEST_BATCH = 5000  # records per transaction, so one pass never holds a whole backlog in memory

_SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
  use_case TEXT NOT NULL, decision_id TEXT NOT NULL, decide_time REAL NOT NULL,
  window_end REAL NOT NULL, subject_key TEXT NOT NULL, blueprint_version INTEGER NOT NULL, record_json TEXT NOT NULL,
  joined INTEGER NOT NULL DEFAULT 0, label REAL, outcome_count INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (use_case, decision_id));
CREATE INDEX IF NOT EXISTS open_windows ON decisions (joined, window_end);
CREATE INDEX IF NOT EXISTS decisions_by_subject ON decisions (use_case, subject_key, decide_time);
CREATE TABLE IF NOT EXISTS outcomes (
  use_case TEXT NOT NULL, event_id TEXT NOT NULL, decision_id TEXT NOT NULL,
  outcome TEXT NOT NULL, value REAL NOT NULL, event_time REAL NOT NULL,
  status TEXT NOT NULL,  -- an OutcomeStatus
  action_id TEXT NOT NULL DEFAULT '',  -- the item it concerns (ranking), or ''
  PRIMARY KEY (use_case, event_id));
CREATE INDEX IF NOT EXISTS outcomes_by_decision ON outcomes (use_case, decision_id);
"""


class OutcomeStatus(str, enum.Enum):
    ORPHAN = "orphan"  # its decision is not known (yet)
    ATTRIBUTED = "attributed"  # inside its decision's window: counts for the label
    LATE = "late"  # after the window closed, or after the label was written: kept, not counted
    EARLY = "early"  # dated before its decision: a clock or a caller is wrong; kept, not counted


@dataclass(frozen=True)
class JoinStats:
    joined_decisions: int
    pending_decisions: int
    attributed_outcomes: int
    late_outcomes: int
    orphan_outcomes: int
    early_outcomes: int


@dataclass(frozen=True)
class Label:
    joined: bool
    value: float
    outcome_count: int
    window_end: datetime


def aggregate(aggregation: Aggregation, outcomes: list[tuple[float, float]], missing_value: float) -> float:
    """The label from (event_time, value) pairs; ``missing_value`` when there are none."""
    if not outcomes:
        return missing_value
    if aggregation == Aggregation.COUNT:
        return float(len(outcomes))
    if aggregation == Aggregation.SUM:
        return float(sum(v for _, v in outcomes))
    if aggregation == Aggregation.MAX:
        return float(max(v for _, v in outcomes))
    return float(min(outcomes)[1])  # first: the earliest event's value


class LabelJoiner:
    def __init__(self, blueprints: BlueprintStore, decisions: DecisionStream, outcomes: OutcomeStream,
                 state: Path, training_table: TrainingTable,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 on_activity: Callable[[str, list[str]], None] | None = None,
                 tracer=None, grace: timedelta = timedelta(seconds=1), pass_lock: Path | None = None,
                 tombstones: Callable[[], TombstoneSet] | None = None):
        self.blueprints = blueprints
        # The deletions in progress: what they cover is never joined, labeled nor reported.
        self.tombstones = tombstones or (lambda: TombstoneSet([]))
        self.decisions, self.outcomes = decisions, outcomes
        self.training_table = training_table
        self.clock = clock
        # Told, after each pass, which subjects of a use case had new decisions or outcomes.
        self.on_activity = on_activity
        self.tracer = tracer or OffTracer()
        # How long after a window's end its label waits for outcomes still in transit
        # (an outcome counts when it happened inside the window and arrived by then).
        self.grace = grace
        self._touched: set[tuple[str, str]] = set()
        self.skipped: Counter[str] = Counter()  # decisions that could not be joined, by use case
        Path(state).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(state, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        _add_missing_columns(self._db)
        self._reader = sqlite3.connect(state, check_same_thread=False, isolation_level=None)
        self._read_lock = threading.Lock()  # the reader connection is used by one thread at a time
        self._lock = threading.Lock()
        self.pass_lock = pass_lock

    def run_once(self) -> int:
        """Ingests new decisions and outcomes, attributes outcomes, closes due windows;
        returns the number of labels written (0 when another process is in its pass)."""
        with self._pass(wait=False) as mine:
            if not mine:
                return 0
            self._ingest_decisions()
            self._ingest_outcomes()
            self._report_activity()
            return self._close_windows()

    @contextmanager
    def _pass(self, wait: bool) -> Iterator[bool]:
        """This thread's turn at the logs and the state; yields False when ``wait`` is off
        and another process has the turn."""
        with self._lock:
            if self.pass_lock is None:
                yield True
                return
            with exclusive_lock(self.pass_lock, blocking=wait) as mine:
                if mine:
                    self.decisions.reload()
                    self.outcomes.reload()
                yield mine

    # --- ingesting -------------------------------------------------------------------------
    def _ingest_decisions(self) -> None:
        deleting = self.tombstones()
        for chunk in _chunks(self.decisions.pending()):
            rows = []
            for record, position in chunk:
                self.decisions.advance(position)
                if deleting.covers(record):
                    continue
                try:
                    blueprint = self._blueprint(record.use_case, record.blueprint_version)
                    end = record.decide_time + blueprint.longest_window
                except Exception:  # noqa: BLE001 - one use case's bad data never stops the others
                    log.exception("decision %s of %s cannot be joined; skipped", record.decision_id, record.use_case)
                    self.skipped[record.use_case] += 1
                    continue
                subject_key = record.subject.get(blueprint.entities[0], "") if blueprint.entities else ""
                rows.append((record.use_case, record.decision_id, record.decide_time.timestamp(),
                             end.timestamp(), subject_key, record.blueprint_version, json.dumps(record.to_dict())))
                self._touched.add((record.use_case, subject_key))
            self._commit(self.decisions, "INSERT OR IGNORE INTO decisions (use_case, decision_id, decide_time, "
                         "window_end, subject_key, blueprint_version, record_json) VALUES (?,?,?,?,?,?,?)", rows)

    def _ingest_outcomes(self) -> None:
        """Stores new outcomes as orphans, then attributes every orphan whose decision is
        known now (it may have come in this pass, after its outcome)."""
        arrived: set[tuple[str, str]] = set()
        deleting = self.tombstones()
        for chunk in _chunks(self.outcomes.pending()):
            rows = []
            for event, position in chunk:
                if deleting.covers_use_case(event.use_case):
                    self.outcomes.advance(position)
                    continue
                rows.append((event.use_case, event.event_id, event.decision_id, event.outcome,
                             event.value, event.event_time.timestamp(), OutcomeStatus.ORPHAN.value, event.action_id))
                self.outcomes.advance(position)
            self._commit(self.outcomes, "INSERT OR IGNORE INTO outcomes (use_case, event_id, decision_id, "
                         "outcome, value, event_time, status, action_id) VALUES (?,?,?,?,?,?,?,?)", rows)
            arrived |= {(r[0], r[2]) for r in rows}
        self._attribute_orphans(arrived)

    def _attribute_orphans(self, decisions: set[tuple[str, str]]) -> None:
        """Orphans whose decision is known: attributed inside an open window, late otherwise;
        the subjects of ``decisions`` (those with new outcomes) count as active."""
        self._db.execute("""
            UPDATE outcomes SET status = CASE
              WHEN outcomes.event_time < d.decide_time THEN ?
              WHEN d.joined = 0 AND outcomes.event_time <= d.window_end THEN ? ELSE ? END
            FROM decisions d
            WHERE outcomes.status = ? AND d.use_case = outcomes.use_case
              AND d.decision_id = outcomes.decision_id""",
                         (OutcomeStatus.EARLY.value, OutcomeStatus.ATTRIBUTED.value, OutcomeStatus.LATE.value,
                          OutcomeStatus.ORPHAN.value))
        for use_case, decision_id in decisions:
            row = self._db.execute("SELECT subject_key FROM decisions WHERE use_case = ? AND decision_id = ?",
                                   (use_case, decision_id)).fetchone()
            if row:
                self._touched.add((use_case, row[0]))

    def _commit(self, stream, sql: str, rows: list[tuple]) -> None:
        """Rows first, the stream's progress after: a crash in between re-ingests, and
        INSERT OR IGNORE makes that harmless."""
        if rows:
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany(sql, rows)
            stream.commit()

    def _report_activity(self) -> None:
        touched, self._touched = self._touched, set()
        if not self.on_activity:
            return
        by_use_case: dict[str, list[str]] = {}
        for use_case, subject_key in touched:
            by_use_case.setdefault(use_case, []).append(subject_key)
        for use_case, keys in by_use_case.items():
            self.on_activity(use_case, sorted(keys))

    def subject_activity(self, use_case: str, subject_keys: list[str], outcome: str,
                         since: datetime) -> dict[str, tuple[int, int]]:
        """Per subject: decisions made since ``since``, and outcomes named ``outcome`` that
        happened since then and were joined to one of its decisions."""
        start = since.timestamp()
        counts = {}
        for key in subject_keys:
            decisions = self._db.execute(
                "SELECT COUNT(*) FROM decisions WHERE use_case = ? AND subject_key = ? AND decide_time >= ?",
                (use_case, key, start)).fetchone()[0]
            outcomes = self._db.execute(
                "SELECT COUNT(*) FROM outcomes o JOIN decisions d ON d.use_case = o.use_case "
                "AND d.decision_id = o.decision_id WHERE d.use_case = ? AND d.subject_key = ? "
                "AND o.outcome = ? AND o.status IN (?, ?) AND o.event_time >= ?",
                (use_case, key, outcome, OutcomeStatus.ATTRIBUTED.value, OutcomeStatus.LATE.value,
                 start)).fetchone()[0]
            counts[key] = (decisions, outcomes)
        return counts

    # --- labels ------------------------------------------------------------------------------
    def _close_windows(self) -> int:
        """Writes the labels of every decision whose window (plus grace) has closed, use case
        by use case: one that fails is counted and retried next pass, the others go on."""
        now = (self.clock() - self.grace).timestamp()
        written, failed = 0, set()
        while True:
            skip = ",".join("?" * len(failed))
            due = self._db.execute(
                "SELECT use_case, decision_id, blueprint_version, record_json FROM decisions "
                f"WHERE joined = 0 AND window_end <= ? AND use_case NOT IN ({skip}) ORDER BY decide_time LIMIT ?",
                (now, *failed, INGEST_BATCH)).fetchall()
            if not due:
                return written
            by_use_case: dict[str, list[tuple]] = {}
            for row in due:
                by_use_case.setdefault(row[0], []).append(row)
            for use_case, rows in by_use_case.items():
                try:
                    written += self._write_labels(use_case, rows)
                except Exception:  # noqa: BLE001 - one use case's bad data never stops the others
                    log.exception("writing the labels of %s failed; retried next pass", use_case)
                    self.skipped[use_case] += 1
                    failed.add(use_case)

    def _write_labels(self, use_case: str, due: list[tuple]) -> int:
        labeled, updates, deleted = [], [], []
        deleting = self.tombstones()
        for _, decision_id, version, record_json in due:
            record = DecisionRecord.from_dict(json.loads(record_json))
            if deleting.covers(record):  # ingested before its deletion was requested: never labeled
                deleted.append(decision_id)
                continue
            blueprint = self._blueprint(use_case, version)
            values = self._label_values(use_case, decision_id, blueprint, record)
            items = (self._item_label_values(use_case, decision_id, blueprint, record)
                     if blueprint.decision_type == DecisionType.RANKING and record.ranking else None)
            labeled.append(LabeledDecision(record, values, items))
            primary = next(iter(values.values()))
            updates.append((primary[0], primary[1], use_case, decision_id))
        with self.tracer.start_as_current_span("looper.label_join", attributes={
                "looper.use_case": use_case, "looper.labels": len(updates)}):
            self.training_table.append(use_case, labeled)  # before marking: a crash re-writes, never loses
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany("UPDATE decisions SET joined = 1, label = ?, outcome_count = ? "
                                     "WHERE use_case = ? AND decision_id = ?", updates)
                _delete_decisions(self._db, use_case, deleted)
        return len(updates)

    def _label_values(self, use_case: str, decision_id: str, blueprint: Blueprint,
                      record: DecisionRecord) -> dict[str, tuple[float, int]]:
        """Each label's value and outcome count, the primary label first: the outcomes
        attributed to the decision that happened within that label's own window."""
        rows = self._db.execute(
            "SELECT outcome, event_time, value FROM outcomes WHERE use_case = ? AND decision_id = ? AND status = ?",
            (use_case, decision_id, OutcomeStatus.ATTRIBUTED.value)).fetchall()
        values = {}
        for spec in blueprint.all_labels:
            end = (record.decide_time + spec.window).timestamp()
            outcomes = [(t, v) for outcome, t, v in rows if outcome == spec.outcome and t <= end]
            values[spec.outcome] = (aggregate(spec.aggregation, outcomes, spec.missing_value), len(outcomes))
        return values

    def _item_label_values(self, use_case: str, decision_id: str, blueprint: Blueprint,
                           record: DecisionRecord) -> dict[str, dict[str, tuple[float, int]]]:
        """A ranking's labels per shown item: the outcomes that name the item (one that
        names none concerns the first item)."""
        rows = self._db.execute(
            "SELECT outcome, event_time, value, action_id FROM outcomes WHERE use_case = ? AND decision_id = ? "
            "AND status = ?", (use_case, decision_id, OutcomeStatus.ATTRIBUTED.value)).fetchall()
        first = record.ranking[0].action_id
        items = {}
        for item in record.ranking:
            values = {}
            for spec in blueprint.all_labels:
                end = (record.decide_time + spec.window).timestamp()
                outcomes = [(t, v) for outcome, t, v, action in rows
                            if outcome == spec.outcome and t <= end and (action or first) == item.action_id]
                values[spec.outcome] = (aggregate(spec.aggregation, outcomes, spec.missing_value), len(outcomes))
            items[item.action_id] = values
        return items

    def label(self, use_case: str, decision_id: str) -> Label:
        """The decision's label: the written one once its window closed, else the label that
        the outcomes attributed so far would give."""
        with self._pass(wait=True):
            self._ingest_decisions()
            self._ingest_outcomes()
            row = self._db.execute(
                "SELECT joined, label, outcome_count, window_end, blueprint_version, record_json FROM decisions "
                "WHERE use_case = ? AND decision_id = ?", (use_case, decision_id)).fetchone()
            deleting = self.tombstones()
            if row is None or (deleting and deleting.covers(DecisionRecord.from_dict(json.loads(row[5])))):
                raise NotFound(f"decision {decision_id!r} of use case {use_case!r} is not in the decision log")
            joined, value, count, window_end, version, _ = row
            spec = self._blueprint(use_case, version).primary_label
            if not joined:
                so_far = self._db.execute(
                    "SELECT event_time, value FROM outcomes WHERE use_case = ? AND decision_id = ? "
                    "AND status = ? AND outcome = ?",
                    (use_case, decision_id, OutcomeStatus.ATTRIBUTED.value, spec.outcome)).fetchall()
                value, count = aggregate(spec.aggregation, so_far, spec.missing_value), len(so_far)
        return Label(bool(joined), float(value), count, datetime.fromtimestamp(window_end, timezone.utc))

    def decision_traceparents(self, use_case: str, decision_ids: list[str]) -> dict[str, str]:
        """The traceparents the decisions were made under, so feedback can link to their
        traces. Read on a connection of its own (WAL lets it read while a pass writes), and
        never waiting for a pass: a decision made within the last pass interval is not
        ingested yet, and its feedback goes unlinked."""
        marks = ",".join("?" * len(decision_ids))
        with self._read_lock:
            rows = self._reader.execute(
                f"SELECT decision_id, json_extract(record_json, '$.traceparent') FROM decisions "
                f"WHERE use_case = ? AND decision_id IN ({marks})", (use_case, *decision_ids)).fetchall()
        return {decision_id: traceparent or "" for decision_id, traceparent in rows}

    def stats(self, use_case: str) -> JoinStats:
        """Counts as of the last committed pass, read beside a pass in progress (WAL), so
        that a long pass never holds up the caller."""
        with self._read_lock:
            decisions = dict(self._reader.execute(
                "SELECT joined, COUNT(*) FROM decisions WHERE use_case = ? GROUP BY joined", (use_case,)))
            outcomes = dict(self._reader.execute(
                "SELECT status, COUNT(*) FROM outcomes WHERE use_case = ? GROUP BY status", (use_case,)))
        return JoinStats(joined_decisions=decisions.get(1, 0), pending_decisions=decisions.get(0, 0),
                         attributed_outcomes=outcomes.get(OutcomeStatus.ATTRIBUTED.value, 0),
                         late_outcomes=outcomes.get(OutcomeStatus.LATE.value, 0),
                         orphan_outcomes=outcomes.get(OutcomeStatus.ORPHAN.value, 0),
                         early_outcomes=outcomes.get(OutcomeStatus.EARLY.value, 0))

    def retention(self, keep: timedelta) -> int:
        """Forgets joined decisions made before ``keep`` ago, with their outcomes, and
        orphans older than that; returns the number of decisions forgotten. Their labels
        stay in the training table."""
        cutoff = (self.clock() - keep).timestamp()
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM outcomes WHERE EXISTS (SELECT 1 FROM decisions d WHERE d.joined = 1 "
                             "AND d.decide_time < ? AND d.use_case = outcomes.use_case "
                             "AND d.decision_id = outcomes.decision_id)", (cutoff,))
            self._db.execute("DELETE FROM outcomes WHERE status = ? AND event_time < ?",
                             (OutcomeStatus.ORPHAN.value, cutoff))
            return self._db.execute("DELETE FROM decisions WHERE joined = 1 AND decide_time < ?",
                                    (cutoff,)).rowcount

    def _blueprint(self, use_case: str, version: int) -> Blueprint:
        return self.blueprints.get(use_case, version).blueprint

    def close(self) -> None:
        self._reader.close()
        self._db.close()


def _delete_decisions(db: sqlite3.Connection, use_case: str, decision_ids: list[str]) -> tuple[int, int]:
    """Deletes decisions and their outcome events from the joiner's state (inside the
    caller's transaction); returns (decisions, events) deleted."""
    decisions = events = 0
    for decision_id in decision_ids:
        events += db.execute("DELETE FROM outcomes WHERE use_case = ? AND decision_id = ?",
                             (use_case, decision_id)).rowcount
        decisions += db.execute("DELETE FROM decisions WHERE use_case = ? AND decision_id = ?",
                                (use_case, decision_id)).rowcount
    return decisions, events


@dataclass(frozen=True)
class JoinedErasure:
    decision_ids: list[str]  # the decisions it selected (by use case, or by subject)
    event_ids: list[str]  # outcome events deleted (with their decisions, or as orphans of deleted ones)
    decisions: int = 0  # decisions deleted from the joiner's state


def erase_joined(state: Path, use_case: str, subject: dict[str, str] | None = None, until: datetime | None = None,
                 decision_ids: set[str] = frozenset()) -> JoinedErasure:
    """Deletes from the joiner's state a use case's decisions (every one; or, with ``subject``,
    the subject's made at or before ``until``) with their outcome events, and the events of
    ``decision_ids`` (decisions deleted elsewhere, whose outcomes wait as orphans). The caller
    holds the joiner's pass lock (a deletion job in another process)."""
    if not Path(state).exists():
        return JoinedErasure([], [], 0)
    db = sqlite3.connect(state, isolation_level=None, timeout=30)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("BEGIN IMMEDIATE")
        try:
            if subject is None:
                ids = [r[0] for r in db.execute("SELECT decision_id FROM decisions WHERE use_case = ?", (use_case,))]
                events = [r[0] for r in db.execute("SELECT event_id FROM outcomes WHERE use_case = ?", (use_case,))]
                db.execute("DELETE FROM outcomes WHERE use_case = ?", (use_case,))
                deleted = db.execute("DELETE FROM decisions WHERE use_case = ?", (use_case,)).rowcount
            else:
                where, params = ["use_case = ?", "decide_time <= ?"], [use_case, until.timestamp()]
                for key, value in sorted(subject.items()):  # keys are entity names: lower_snake_case
                    where.append("json_extract(record_json, '$.subject.' || ?) = ?")
                    params += [key, value]
                ids = [r[0] for r in db.execute(f"SELECT decision_id FROM decisions WHERE {' AND '.join(where)}",
                                                params)]
                doomed = sorted(set(ids) | set(decision_ids))
                events = [r[0] for d in doomed for r in db.execute(
                    "SELECT event_id FROM outcomes WHERE use_case = ? AND decision_id = ?", (use_case, d))]
                deleted, _ = _delete_decisions(db, use_case, doomed)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    finally:
        db.close()
    return JoinedErasure(ids, events, deleted)


def _add_missing_columns(db: sqlite3.Connection) -> None:
    """A joiner database from before outcomes named their item gains the column."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(outcomes)")}
    if "action_id" not in columns:
        db.execute("ALTER TABLE outcomes ADD COLUMN action_id TEXT NOT NULL DEFAULT ''")


def _chunks(items: Iterator, size: int = INGEST_BATCH) -> Iterator[list]:
    while chunk := list(itertools.islice(items, size)):
        yield chunk
