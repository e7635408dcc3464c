"""The deletion job: carries out the unfinished deletions, in the Trainer, one process at a
time (an flock in ``data.locks``, like the other background jobs), every
``LOOPER_DELETION_INTERVAL`` seconds and at once when a deletion is requested.

A run first finishes any log rewrite a crash cut short, then, for each deletion, the steps
it has not done yet (each idempotent, each recorded once done, so a run cut short is picked
up by the next):

- a subject's deletion: the label joiner's rows of the subject (decisions made up to the
  request, and their outcome events), the subject's rows in the use case's personalization
  views (online, and offline up to this step: counters published before it may count the
  erased decisions; later ones count only later decisions), then the training table's rows
  of the subject made up to the request (each part rewritten without them);
- a use case's deletion: its id-index entries, the joiner's rows, its personalization views
  (dropped from Feast with their online table and offline parts), its training table, and,
  once no training run of it is active, its models, training runs and experiments;
- then the logs, for every deletion at once: each *closed* segment of the decision log and
  of the outcome log that holds a covered record is rewritten without it
  (``services.platform.log_rewrite``); a segment still open is counted as waiting and
  handled once it closes. Outcome events go once the deletion's decisions are all found
  (the events of a subject's decisions are known by their decision ids).

A deletion is done when no segment holds anything it covers and ``IN_FLIGHT_SECONDS`` have
passed since the request (a decision made just before it may still be being logged); its
remaining id-index entries are then forgotten, its tombstone lifted, and the subject's values
dropped from its record. Steps that touch what the label joiner reads or writes hold the
joiner's lock, so the joiner never holds stale offsets or publishes a deleted subject's
counters meanwhile.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from services.blueprints.store import BlueprintStore
from services.decisions.log import decision_log_eraser
from services.deletions.store import Deletion, DeletionKind, DeletionState, DeletionStore
from services.features import personalization
from services.features.store import LooperFeatureStore
from services.labels.joiner import JOINER_LOCK, erase_joined
from services.labels.outcomes import outcome_log_eraser
from services.labels.training_table import TrainingTable
from services.platform.audit import AuditLog
from services.platform.data_dir import DataDir
from services.platform.durable_log import iter_records
from services.platform.files import exclusive_lock, fsync_dir
from services.platform.errors import NotFound
from services.platform.id_index import IdempotencyIndex
from services.platform.log_rewrite import LogEraser, pending_rewrites
from services.platform.parquet_parts import row_count, subject_rows

log = logging.getLogger("looper.deletions")

DECISIONS, OUTCOMES = "decisions", "outcomes"
IN_FLIGHT_SECONDS = 5.0  # a decision made before the request is logged within this long after it
MAX_FAILED_RUNS = 10  # runs in a row in which a deletion's step failed before it is given up


@dataclass
class _Progress:
    """One deletion's changes during a run, saved at its end."""

    deletion: Deletion
    removed: Counter = field(default_factory=Counter)
    waiting: Counter = field(default_factory=Counter)
    reasons: list[str] = field(default_factory=list)
    steps: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    open_segments: dict[str, set[str]] = field(default_factory=lambda: {DECISIONS: set(), OUTCOMES: set()})

    def __post_init__(self) -> None:
        self.steps = set(self.deletion.steps)

    @property
    def d(self) -> Deletion:
        return self.deletion


class DeletionJob:
    def __init__(self, data: DataDir, store: DeletionStore, blueprints: BlueprintStore,
                 features: LooperFeatureStore | None, table: TrainingTable, segment_seconds: float,
                 training_active: Callable[[str], bool] = lambda use_case: False, audit: AuditLog | None = None,
                 clock: Callable[[], float] = time.time):
        self.data, self.store, self.blueprints = data, store, blueprints
        self.features, self.table, self.segment_seconds = features, table, segment_seconds
        self.training_active, self.audit, self.clock = training_active, audit, clock
        self.decision_index = IdempotencyIndex(data.decisions.index)
        self.outcome_index = IdempotencyIndex(data.labels.outcome_index)
        self.logs: dict[str, LogEraser] = {
            DECISIONS: decision_log_eraser(data.decisions, segment_seconds, self.decision_index),
            OUTCOMES: outcome_log_eraser(data.labels, segment_seconds, self.outcome_index)}
        # (log, open segment, deletion id) -> (offset read to, ids of the records it covers there)
        self._open_scans: dict[tuple[str, str, str], tuple[int, list[tuple[str, str]]]] = {}

    # --- one run ------------------------------------------------------------------------------
    def run_once(self) -> int:
        """Advances every unfinished deletion; returns how many it finished."""
        if any(pending_rewrites(eraser.folder) for eraser in self.logs.values()):
            with self._joiner_lock():
                for eraser in self.logs.values():
                    eraser.finish()
        progress = [_Progress(d) for d in self.store.unfinished()]
        if not progress:
            return 0
        for p in progress:
            self._guarded(p, "prepare", self._first_steps)
        self._guarded_logs(progress)
        finished = 0
        for p in progress:
            if not p.errors and self._complete(p):
                self._guarded(p, "finish", self._finish)
            finished += self._save(p)
        return finished

    def close(self) -> None:
        self.decision_index.close()
        self.outcome_index.close()

    def _guarded(self, p: _Progress, step: str, work: Callable[[_Progress], None]) -> None:
        try:
            work(p)
        except Exception as err:  # noqa: BLE001 - one deletion's failure never stops the others
            log.exception("deletion %s: %s failed", p.d.deletion_id, step)
            p.errors.append(f"{step}: {type(err).__name__}: {err}")

    # --- the first steps of each deletion -------------------------------------------------------
    def _first_steps(self, p: _Progress) -> None:
        if p.d.kind == DeletionKind.USE_CASE:
            self._use_case_steps(p)
        else:
            self._subject_steps(p)

    def _subject_steps(self, p: _Progress) -> None:
        d = p.d
        if "joiner" not in p.steps:
            with self._joiner_lock():
                erased = erase_joined(self.data.labels.joiner, d.use_case, d.subject, d.request_time,
                                      {key for _, key in self.store.ids(d.deletion_id, DECISIONS)})
                self.store.add_ids(d.deletion_id, DECISIONS, [(d.use_case, key) for key in erased.decision_ids])
                self.store.add_ids(d.deletion_id, OUTCOMES, [(d.use_case, key) for key in erased.event_ids])
                p.removed["joined_decisions"] += erased.decisions
                p.removed["joined_outcomes"] += len(erased.event_ids)
                # Counters published until now may count decisions erased just now (a pass between
                # the request and this step): offline rows up to now go, not only those up to the request.
                now = datetime.now(timezone.utc)
                for view, entity in self._personalization_views(d.use_case):
                    if entity in d.subject and self.features is not None:
                        online, offline = personalization.erase_subjects(
                            self.features, view, [({entity: d.subject[entity]}, now)])
                        p.removed["online_feature_rows"] += online
                        p.removed["offline_feature_rows"] += offline
            p.steps.add("joiner")
            self._checkpoint(p)
        if "training" not in p.steps:  # after the joiner's step: no later part holds the subject's rows
            with exclusive_lock(self.data.locks / "labels-retention.lock"):
                p.removed["training_rows"] += self.table.drop_rows(d.use_case, subject_rows(d.subject, d.request_time))
            p.steps.add("training")
            self._checkpoint(p)

    def _use_case_steps(self, p: _Progress) -> None:
        d, use_case = p.d, p.d.use_case
        if "blueprints" not in p.steps:
            hidden = self.blueprints.retire(use_case, d.deletion_id)  # done by the request; again after a crash
            p.removed["blueprint_versions"] += len(list(hidden.glob("v*.yaml")))
            p.steps.add("blueprints")
            self._checkpoint(p)
        if "index" not in p.steps:
            p.removed["index_entries"] += (self.decision_index.forget_scope(use_case)
                                           + self.outcome_index.forget_scope(use_case))
            p.steps.add("index")
            self._checkpoint(p)
        if "joiner" not in p.steps:
            with self._joiner_lock():
                erased = erase_joined(self.data.labels.joiner, use_case)
                p.removed["joined_decisions"] += erased.decisions
                p.removed["joined_outcomes"] += len(erased.event_ids)
                for view in d.details.get("views", []):
                    if self.features is not None:
                        p.removed["offline_feature_rows"] += row_count(self.features.offline_parts(view))
                        self.features.drop_view(view)
            p.steps.add("joiner")
            self._checkpoint(p)
        if "training" not in p.steps:
            with exclusive_lock(self.data.locks / "labels-retention.lock"):
                p.removed["training_rows"] += self.table.remove(use_case)
            p.steps.add("training")
            self._checkpoint(p)
        if "models" not in p.steps:
            if self.training_active(use_case):
                p.reasons.append("a training run of the use case is still running")
                return
            with exclusive_lock(self.data.locks / "experiments.lock"):
                models = self.data.models / use_case
                p.removed["models"] += len([v for v in models.glob("m*") if v.is_dir()]) if models.exists() else 0
                p.removed["training_runs"] += len(list((self.data.runs / use_case).glob("run-*.json")))
                experiments = self.data.experiments / use_case
                p.removed["experiments"] += (len(_lines(experiments / "history.jsonl"))
                                             + (experiments / "active.json").exists())
                for folder in (models, self.data.runs / use_case, experiments):
                    _remove_folder(folder)
            p.steps.add("models")
            self._checkpoint(p)

    def _personalization_views(self, use_case: str) -> list[tuple[str, str]]:
        """(view, entity) of every personalization view the use case's blueprints named (none
        once the use case itself is being deleted: its own deletion drops the views)."""
        views = {}
        try:
            latest = self.blueprints.latest_version(use_case)
        except NotFound:
            return []
        for version in range(1, latest + 1):
            blueprint = self.blueprints.get(use_case, version).blueprint
            if blueprint.personalization:
                views[blueprint.personalization.view] = blueprint.entities[0]
        return sorted(views.items())

    # --- the logs ---------------------------------------------------------------------------------
    def _guarded_logs(self, progress: list[_Progress]) -> None:
        for name in (DECISIONS, OUTCOMES):
            prefix = self._prefix(progress, name)
            todo = [p for p in prefix if f"{name}_log" not in p.steps]
            if not todo:
                continue
            try:
                self._clean_log(name, todo, max(p.d.seq for p in prefix))
            except Exception as err:  # noqa: BLE001 - retried next run
                log.exception("deleting from the %s log failed", name)
                for p in todo:
                    p.errors.append(f"{name} log: {type(err).__name__}: {err}")
                continue
            for p in todo:
                if p.open_segments[name]:
                    continue
                if self.clock() >= p.d.request_time.timestamp() + IN_FLIGHT_SECONDS:
                    p.steps.add(f"{name}_log")
                else:
                    p.reasons.append(f"{_noun(name)}s made just before the request may still be being logged")

    def _prefix(self, progress: list[_Progress], name: str) -> list[_Progress]:
        """The deletions the log can be cleaned of now, a prefix in creation order (so that how
        far a segment was cleaned is one number). Outcome events of a subject's decisions are
        known once its decisions are all found: a subject's deletion blocks the outcome log
        until then."""
        prefix = []
        for p in progress:  # in creation order
            if name == OUTCOMES and p.d.kind == DeletionKind.SUBJECT and "decisions_log" not in p.steps:
                break
            prefix.append(p)
        return prefix

    def _clean_log(self, name: str, todo: list[_Progress], seq: int) -> None:
        """Rewrites the closed segments that hold what ``todo`` covers; counts what open
        ones hold. Afterwards each closed segment is clean of every deletion up to ``seq``."""
        eraser = self.logs[name]
        cleaned = self.store.cleaned(name)
        segments = eraser.segments()
        for segment in segments:
            involved = [p for p in todo if p.d.seq > cleaned.get(segment.name, 0)]
            if not involved:
                continue
            matchers = [(p, self._matcher(p, name)) for p in involved]
            if eraser.is_closed(segment):
                self._clean_segment(name, eraser, segment, matchers, seq)
            else:
                self._count_open(name, segment, matchers)
        present = {s.name for s in eraser.segments()}
        self.store.forget_segments(name, present)
        self._open_scans = {k: v for k, v in self._open_scans.items() if k[1] in present}

    def _count_open(self, name: str, segment: Path, matchers: list) -> None:
        """What an open segment holds of each deletion: read from where the last run stopped
        (an open segment only grows), never changed."""
        for p, covers in matchers:
            key = (name, segment.name, p.d.deletion_id)
            offset, matched = self._open_scans.get(key, (0, []))
            matched = list(matched)
            for record, position in iter_records(segment, offset):
                offset = position.offset
                if covers(record):
                    matched.append(_ids(record, name))
            self._open_scans[key] = (offset, matched)
            if matched:
                p.waiting[f"{_noun(name)}_records"] += len(matched)
                p.waiting["segments"] += 1
                p.open_segments[name].add(segment.name)
                if name == DECISIONS:
                    self.store.add_ids(p.d.deletion_id, DECISIONS, matched)

    def _clean_segment(self, name: str, eraser: LogEraser, segment: Path, matchers: list, seq: int) -> None:
        found: dict[str, list[dict]] = {}
        for record, _ in iter_records(segment):
            for p, covers in matchers:
                if covers(record):
                    found.setdefault(p.d.deletion_id, []).append(record)
        if not found:
            self.store.mark_cleaned(name, segment.name, seq)
            return
        for p, _ in matchers:  # the ids first: a crash after the rewrite still knows them
            self.store.add_ids(p.d.deletion_id, name, [_ids(r, name) for r in found.get(p.d.deletion_id, [])])
        drop = lambda record: any(covers(record) for _, covers in matchers)  # noqa: E731
        retention = "decision-retention.lock" if name == DECISIONS else "labels-retention.lock"
        with self._joiner_lock(), exclusive_lock(self.data.locks / retention):
            if not segment.exists():  # retention deleted it meanwhile
                return
            rewrite = eraser.rewrite(segment, drop)
        if rewrite is None:
            return
        if rewrite.new:
            self.store.mark_cleaned(name, rewrite.new, seq, replaced=segment.name)
        forgotten = set(rewrite.forgotten)
        for p, _ in matchers:
            if found.get(p.d.deletion_id):
                p.removed[f"{_noun(name)}_records"] += len(found[p.d.deletion_id])
                p.removed["segments"] += 1
                p.removed["index_entries"] += len({_ids(r, name) for r in found[p.d.deletion_id]} & forgotten)
                self._checkpoint(p)

    def _matcher(self, p: _Progress, name: str) -> Callable[[dict], bool]:
        d = p.d
        if d.kind == DeletionKind.USE_CASE:
            return lambda record: record.get("use_case") == d.use_case
        if name == DECISIONS:
            def covers_decision(record: dict) -> bool:
                subject = record.get("subject") or {}
                return (record.get("use_case") == d.use_case and bool(d.subject)
                        and all(subject.get(k) == v for k, v in d.subject.items())
                        and datetime.fromisoformat(record["decide_time"]) <= d.request_time)

            return covers_decision
        decisions = self.store.ids(d.deletion_id, DECISIONS)
        return lambda record: (record.get("use_case"), record.get("decision_id")) in decisions

    # --- the end ------------------------------------------------------------------------------------
    def _complete(self, p: _Progress) -> bool:
        first = {"joiner", "training"} | ({"blueprints", "index", "models"} if p.d.kind == DeletionKind.USE_CASE
                                          else set())
        return first | {"decisions_log", "outcomes_log"} <= p.steps

    def _finish(self, p: _Progress) -> None:
        d = p.d
        if d.kind == DeletionKind.USE_CASE:
            p.removed["index_entries"] += (self.decision_index.forget_scope(d.use_case)
                                           + self.outcome_index.forget_scope(d.use_case))
            _remove_folder(self.data.blueprints / f".deleted-{d.deletion_id}")
        else:
            decisions, events = self.store.ids(d.deletion_id, DECISIONS), self.store.ids(d.deletion_id, OUTCOMES)
            with self._joiner_lock():  # outcome events that came in for deleted decisions since
                late = erase_joined(self.data.labels.joiner, d.use_case, d.subject, d.request_time,
                                    {key for _, key in decisions})
            p.removed["joined_outcomes"] += len(late.event_ids)
            p.removed["index_entries"] += len(self.decision_index.forget(sorted(decisions))) + len(
                self.outcome_index.forget(sorted(events | {(d.use_case, e) for e in late.event_ids})))
        p.steps.add("finished")

    def _checkpoint(self, p: _Progress) -> None:
        """Saves what a step removed as soon as it is removed: a run cut short loses no count."""
        removed = Counter(p.d.removed)
        removed.update(p.removed)
        p.deletion = self.store.save(replace(p.d, removed=dict(removed), steps=frozenset(p.steps),
                                             state=DeletionState.RUNNING))
        p.removed = Counter()

    def _save(self, p: _Progress) -> int:
        d = p.d
        removed = Counter(d.removed)
        removed.update(p.removed)
        changes = dict(removed=dict(removed), waiting=dict(p.waiting), steps=frozenset(p.steps),
                       waiting_reason=_reason(p), state=DeletionState.RUNNING)
        if p.errors:
            attempts = d.attempts + 1
            changes.update(error="; ".join(p.errors)[:2000], attempts=attempts)
            if attempts >= MAX_FAILED_RUNS:
                changes.update(state=DeletionState.FAILED, end_time=datetime.now(timezone.utc))
        else:
            changes.update(error="", attempts=0)
            if "finished" in p.steps:
                changes.update(state=DeletionState.DONE, end_time=datetime.now(timezone.utc), subject={}, waiting={},
                               waiting_reason="")
        saved = self.store.save(replace(d, **changes))
        if saved.finished and self.audit is not None:
            self.audit.record(f"deletion_{saved.state.name.lower()}", saved.use_case, deletion_id=saved.deletion_id,
                              kind=saved.kind.name.lower(), removed=saved.removed, error=saved.error,
                              by="the deletion job")
        return int(saved.finished)

    def _joiner_lock(self):
        """The label joiner's pass lock: no pass runs while it is held."""
        return exclusive_lock(self.data.locks / JOINER_LOCK)


def _reason(p: _Progress) -> str:
    reasons = list(p.reasons)
    if p.waiting["segments"]:
        reasons.insert(0, f"{p.waiting['segments']} log segments that hold its records are still open; they are "
                          f"rewritten once closed (no write for LOOPER_SEGMENT_SECONDS)")
    return "; ".join(dict.fromkeys(reasons))


def _noun(name: str) -> str:
    return "decision" if name == DECISIONS else "outcome"


def _ids(record: dict, name: str) -> tuple[str, str]:
    return record["use_case"], record["decision_id"] if name == DECISIONS else record["event_id"]


def _lines(path: Path) -> list[str]:
    try:
        return [line for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return []


def _remove_folder(folder: Path) -> None:
    if folder.exists():
        shutil.rmtree(folder)
        fsync_dir(folder.parent)
