"""The label joiner: joins outcome events to logged decisions by decision id within the
use case's attribution window, and writes each decision's label to the training table once
its window has closed.

It consumes the decision log and the feedback log like a consumer group (each with its
own checkpoint), keeps its working state in SQLite, and never drops an outcome: those after
the window are kept as ``late``, those with no known decision as ``orphan`` (and joined if
the decision shows up while its window is still open). Counters are in ``stats``.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

from services.core.blueprint import Blueprint
from services.core.blueprint_store import BlueprintStore
from services.core.decision_log import PREFIX as DECISION_PREFIX
from services.core.durable_log import LogCheckpoint
from services.core.errors import NotFound
from services.core.records import DecisionRecord, OutcomeEvent
from services.core.telemetry import OffTracer
from services.core.training_table import TrainingTable
from services.feedback.recorder import PREFIX as FEEDBACK_PREFIX

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
  status TEXT NOT NULL,  -- orphan | attributed | late
  PRIMARY KEY (use_case, event_id));
CREATE INDEX IF NOT EXISTS outcomes_by_decision ON outcomes (use_case, decision_id);
"""


@dataclass(frozen=True)
class JoinStats:
    joined_decisions: int
    pending_decisions: int
    attributed_outcomes: int
    late_outcomes: int
    orphan_outcomes: int


@dataclass(frozen=True)
class Label:
    joined: bool
    value: float
    outcome_count: int
    window_end: datetime


def aggregate(aggregation: str, outcomes: list[tuple[float, float]], missing_value: float) -> float:
    """The label from (event_time, value) pairs; ``missing_value`` when there are none."""
    if not outcomes:
        return missing_value
    if aggregation == "count":
        return float(len(outcomes))
    if aggregation == "sum":
        return float(sum(v for _, v in outcomes))
    if aggregation == "max":
        return float(max(v for _, v in outcomes))
    return float(min(outcomes)[1])  # first: the earliest event's value


SubjectCounts = dict[str, object]  # entity key, event_timestamp and one column per counter


class LabelJoiner:
    def __init__(self, blueprints: BlueprintStore, decision_log: Path, feedback_log: Path,
                 state: Path, training_table: TrainingTable,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 on_subject_counts: Callable[[Blueprint, list[SubjectCounts]], None] | None = None,
                 tracer=None, grace: timedelta = timedelta(seconds=1)):
        self.blueprints = blueprints
        self.decision_log, self.feedback_log = Path(decision_log), Path(feedback_log)
        self.state = Path(state)
        self.state.mkdir(parents=True, exist_ok=True)
        self.training_table = training_table
        self.clock = clock
        self.on_subject_counts = on_subject_counts
        self.tracer = tracer or OffTracer()
        # How long after a window's end its label waits for outcomes still in transit
        # (an outcome counts when it happened inside the window and arrived by then).
        self.grace = grace
        self._touched: set[tuple[str, str]] = set()  # subjects whose counters changed this pass
        self._db = sqlite3.connect(self.state / "label_joiner.sqlite", check_same_thread=False,
                                   isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._reader = sqlite3.connect(self.state / "label_joiner.sqlite", check_same_thread=False)
        self._lock = threading.Lock()

    def run_once(self) -> int:
        """Ingests new decisions and outcomes, attributes outcomes, closes due windows;
        returns the number of labels written."""
        with self._lock:
            self._ingest_decisions()
            self._ingest_outcomes()
            self._publish_subject_counts()
            return self._close_windows()

    def _ingest_decisions(self) -> None:
        checkpoint = LogCheckpoint(self.state / "joiner-decisions.checkpoint.json")
        rows = []
        for data, position in checkpoint.pending(self.decision_log, DECISION_PREFIX):
            record = DecisionRecord.from_dict(data)
            blueprint = self._blueprint(record.use_case, record.blueprint_version)
            end = record.decide_time + blueprint.label.window
            subject_key = record.subject.get(blueprint.entities[0], "") if blueprint.entities else ""
            rows.append((record.use_case, record.decision_id, record.decide_time.timestamp(),
                         end.timestamp(), subject_key, record.blueprint_version, json.dumps(data)))
            self._touched.add((record.use_case, subject_key))
            checkpoint.advance(position)
        self._commit(checkpoint, "INSERT OR IGNORE INTO decisions (use_case, decision_id, decide_time, "
                     "window_end, subject_key, blueprint_version, record_json) VALUES (?,?,?,?,?,?,?)", rows)

    def _ingest_outcomes(self) -> None:
        checkpoint = LogCheckpoint(self.state / "joiner-feedback.checkpoint.json")
        rows = []
        for data, position in checkpoint.pending(self.feedback_log, FEEDBACK_PREFIX):
            event = OutcomeEvent.from_dict(data)
            rows.append((event.use_case, event.event_id, event.decision_id, event.outcome,
                         event.value, event.event_time.timestamp()))
            checkpoint.advance(position)
        pending = {(r[0], r[2]) for r in rows}
        self._commit(checkpoint, "INSERT OR IGNORE INTO outcomes (use_case, event_id, decision_id, "
                     "outcome, value, event_time, status) VALUES (?,?,?,?,?,?,'orphan')", rows)
        # Orphans whose decision is known now: attributed inside an open window, late otherwise.
        self._db.execute("""
            UPDATE outcomes SET status = CASE
              WHEN d.joined = 0 AND outcomes.event_time <= d.window_end THEN 'attributed' ELSE 'late' END
            FROM decisions d
            WHERE outcomes.status = 'orphan' AND d.use_case = outcomes.use_case
              AND d.decision_id = outcomes.decision_id""")
        for use_case, decision_id in pending:
            row = self._db.execute("SELECT subject_key FROM decisions WHERE use_case = ? AND decision_id = ?",
                                   (use_case, decision_id)).fetchone()
            if row:
                self._touched.add((use_case, row[0]))

    def _publish_subject_counts(self) -> None:
        """Recomputes the personalization counters of the subjects touched since the last
        pass and hands them to ``on_subject_counts`` (which pushes them to Feast)."""
        touched, self._touched = self._touched, set()
        if not self.on_subject_counts:
            return
        by_use_case: dict[str, list[str]] = {}
        for use_case, subject_key in touched:
            by_use_case.setdefault(use_case, []).append(subject_key)
        now = self.clock()
        for use_case, keys in by_use_case.items():
            blueprint = self.blueprints.latest(use_case)
            spec = blueprint.personalization
            if spec is None:
                continue
            decisions_name, outcomes_name = spec.feature_names(blueprint)
            since = (now - spec.window).timestamp()
            rows = [{blueprint.entities[0]: key, "event_timestamp": now,
                     decisions_name: self._count_decisions(use_case, key, since),
                     outcomes_name: self._count_outcomes(use_case, key, blueprint.label.outcome, since)}
                    for key in sorted(keys)]
            try:
                self.on_subject_counts(blueprint, rows)
            except Exception:  # noqa: BLE001 - recomputed on the subject's next activity
                logging.getLogger("looper.joiner").exception("publishing subject counters failed")

    def _count_decisions(self, use_case: str, subject_key: str, since: float) -> int:
        return self._db.execute("SELECT COUNT(*) FROM decisions WHERE use_case = ? AND subject_key = ? "
                                "AND decide_time >= ?", (use_case, subject_key, since)).fetchone()[0]

    def _count_outcomes(self, use_case: str, subject_key: str, outcome: str, since: float) -> int:
        return self._db.execute(
            "SELECT COUNT(*) FROM outcomes o JOIN decisions d ON d.use_case = o.use_case "
            "AND d.decision_id = o.decision_id WHERE d.use_case = ? AND d.subject_key = ? "
            "AND o.outcome = ? AND o.status IN ('attributed', 'late') AND o.event_time >= ?",
            (use_case, subject_key, outcome, since)).fetchone()[0]

    def _commit(self, checkpoint: LogCheckpoint, sql: str, rows: list[tuple]) -> None:
        """Rows first, checkpoint after: a crash in between re-ingests, and INSERT OR IGNORE
        makes that harmless."""
        if rows:
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany(sql, rows)
            checkpoint.save()

    def _close_windows(self) -> int:
        now = (self.clock() - self.grace).timestamp()
        due = self._db.execute(
            "SELECT use_case, decision_id, blueprint_version, record_json FROM decisions "
            "WHERE joined = 0 AND window_end <= ? ORDER BY decide_time", (now,)).fetchall()
        by_use_case: dict[str, list[dict]] = {}
        updates = []
        for use_case, decision_id, version, record_json in due:
            blueprint = self._blueprint(use_case, version)
            outcomes = self._db.execute(
                "SELECT event_time, value FROM outcomes WHERE use_case = ? AND decision_id = ? "
                "AND status = 'attributed' AND outcome = ?", (use_case, decision_id, blueprint.label.outcome)
            ).fetchall()
            label = aggregate(blueprint.label.aggregation, outcomes, blueprint.label.missing_value)
            record = DecisionRecord.from_dict(json.loads(record_json))
            by_use_case.setdefault(use_case, []).append(training_row(record, label, len(outcomes)))
            updates.append((label, len(outcomes), use_case, decision_id))
        if not updates:
            return 0
        with self.tracer.start_as_current_span("looper.label_join", attributes={"looper.labels": len(updates)}):
            for use_case, rows in by_use_case.items():
                self.training_table.append(use_case, rows)  # before marking: a crash re-writes, never loses
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany("UPDATE decisions SET joined = 1, label = ?, outcome_count = ? "
                                     "WHERE use_case = ? AND decision_id = ?", updates)
        return len(updates)

    def label(self, use_case: str, decision_id: str) -> Label:
        with self._lock:
            self._ingest_decisions()
            self._ingest_outcomes()
            row = self._db.execute(
                "SELECT joined, label, window_end FROM decisions WHERE use_case = ? AND decision_id = ?",
                (use_case, decision_id)).fetchone()
            if row is None:
                raise NotFound(f"decision {decision_id!r} of use case {use_case!r} is not in the decision log")
            count, so_far = self._attributed(use_case, decision_id)
        joined, value, window_end = row
        if not joined:
            blueprint = self.blueprints.latest(use_case)
            value = aggregate(blueprint.label.aggregation, so_far, blueprint.label.missing_value)
        return Label(bool(joined), float(value), count, datetime.fromtimestamp(window_end, timezone.utc))

    def _attributed(self, use_case: str, decision_id: str) -> tuple[int, list[tuple[float, float]]]:
        rows = self._db.execute(
            "SELECT event_time, value FROM outcomes WHERE use_case = ? AND decision_id = ? "
            "AND status = 'attributed'", (use_case, decision_id)).fetchall()
        return len(rows), rows

    def decision_traceparents(self, use_case: str, decision_ids: list[str]) -> dict[str, str]:
        """The traceparents the decisions were made under, so feedback can link to their
        traces. Read on a connection of its own (WAL lets it read while a pass writes), and
        never waiting for a pass: a decision made within the last pass interval is not
        ingested yet, and its feedback goes unlinked."""
        marks = ",".join("?" * len(decision_ids))
        rows = self._reader.execute(
            f"SELECT decision_id, json_extract(record_json, '$.traceparent') FROM decisions "
            f"WHERE use_case = ? AND decision_id IN ({marks})", (use_case, *decision_ids)).fetchall()
        return {decision_id: traceparent or "" for decision_id, traceparent in rows}

    def stats(self, use_case: str) -> JoinStats:
        with self._lock:
            decisions = dict(self._db.execute(
                "SELECT joined, COUNT(*) FROM decisions WHERE use_case = ? GROUP BY joined", (use_case,)))
            outcomes = dict(self._db.execute(
                "SELECT status, COUNT(*) FROM outcomes WHERE use_case = ? GROUP BY status", (use_case,)))
        return JoinStats(joined_decisions=decisions.get(1, 0), pending_decisions=decisions.get(0, 0),
                         attributed_outcomes=outcomes.get("attributed", 0),
                         late_outcomes=outcomes.get("late", 0), orphan_outcomes=outcomes.get("orphan", 0))

    def _blueprint(self, use_case: str, version: int) -> Blueprint:
        return self.blueprints.get(use_case, version).blueprint

    def close(self) -> None:
        self._reader.close()
        self._db.close()


def training_row(record: DecisionRecord, label: float, outcome_count: int) -> dict:
    """One row of the training table: the decision's keys, every feature value it logged
    (one column each, named as the model names them), and its label."""
    return {
        "decision_id": record.decision_id,
        "event_timestamp": record.decide_time,
        **record.subject,
        "action": record.action,
        "propensity": record.propensity,
        "is_default": record.is_default,
        "is_exploration": record.is_exploration,
        "model_version": record.model_version,
        "blueprint_version": record.blueprint_version,
        **record.features,
        "label": label,
        "outcome_count": outcome_count,
    }
