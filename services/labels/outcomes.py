"""Outcome events: what happened after a decision, as reported by the product. The recorder
takes them validated, deduplicated by event id and durable before the ack; the stream hands
them, in order, to the label joiner.

Deduplication goes through the shared index of event ids, so every Feedback process on the
data directory agrees, and memory does not grow with the events ever stored. An id being
written by a concurrent call is claimed: a duplicate waits for that write and is never
reported as stored before it is durable.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterator

from services.blueprints.store import BlueprintStore
from services.platform import telemetry as otel
from services.platform.data_dir import LabelPaths
from services.platform.durable_log import (SPARE_AFTER_BYTES, Durability, DurableLog, LogConsumer, LogPosition,
                                          deletable_segments, iter_records, list_segments)
from services.platform.errors import Unavailable
from services.platform.id_index import IdempotencyIndex
from services.platform.log_rewrite import LogEraser, pending_rewrites
from services.platform.telemetry import Telemetry, current_traceparent
from services.platform.validation import Violations

PREFIX = "feedback"
CONSUMERS = ("label-joiner",)
MAX_FUTURE_SKEW = timedelta(minutes=5)
CLAIM_WAIT_SECONDS = 5.0


@dataclass(frozen=True)
class OutcomeEvent:
    """Something that happened after a decision (a click, a purchase, a crash) and its value.
    ``action_id`` names the item it concerns when a decision showed several (ranking)."""

    event_id: str
    use_case: str
    decision_id: str
    outcome: str
    value: float
    event_time: datetime
    receive_time: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    action_id: str = ""
    traceparent: str = ""

    def to_dict(self) -> dict:
        data = asdict(self)
        data["event_time"] = self.event_time.isoformat()
        data["receive_time"] = self.receive_time.isoformat()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "OutcomeEvent":
        data = dict(data)
        data["event_time"] = datetime.fromisoformat(data["event_time"])
        data["receive_time"] = datetime.fromisoformat(data["receive_time"])
        return cls(**data)


class OutcomeRecorder:
    """Appends new events to this process's outcome segment; a resent event id is a no-op."""

    def __init__(self, blueprints: BlueprintStore, paths: LabelPaths, telemetry: Telemetry | None = None,
                 decision_traces: Callable[[str, list[str]], dict[str, str]] = lambda use_case, ids: {},
                 window: Callable[[], timedelta] = lambda: timedelta(days=1), segment_seconds: float = 3600.0,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 decisions: Callable[[str, str], object | None] = lambda use_case, decision_id: None,
                 durability: Durability = Durability.FSYNC, spare_after_bytes: int = SPARE_AFTER_BYTES):
        self.blueprints = blueprints
        self.paths = paths
        self.telemetry = telemetry or Telemetry()
        self.decision_traces = decision_traces  # the traceparents decisions were made under
        self.window, self.segment_seconds, self.clock = window, segment_seconds, clock
        self.decisions = decisions  # (use case, decision id) -> the logged decision, when it is known
        self._index = IdempotencyIndex(paths.outcome_index)
        self._log = DurableLog(paths.outcome_log, PREFIX, segment_seconds=segment_seconds, durability=durability,
                               spare_after_bytes=spare_after_bytes)

    @property
    def writable(self) -> bool:
        """Whether outcomes can be stored now (False after a failed write, until there is room)."""
        return self._log.check_space() and self._index.health.check()

    def record(self, events: list[OutcomeEvent], field_prefix: str = "events") -> list[bool]:
        """Stores the events; returns, per event, True if new and False if a duplicate."""
        self.validate(events, field_prefix)
        with self.telemetry.tracer.start_as_current_span(
                "looper.feedback.record", attributes={"looper.events": len(events), otel.USE_CASE: events[0].use_case,
                                                      otel.DECISION_ID: events[0].decision_id}) as span:
            self._link_decisions(events)
            traceparent = current_traceparent()
            accepted = self._store([replace(e, traceparent=traceparent) for e in events])
            span.set_attribute("looper.accepted", sum(accepted))
        for event, new in zip(events, accepted):
            self.telemetry.outcomes.add(1, {otel.USE_CASE: event.use_case, "looper.status":
                                            "accepted" if new else "duplicate"})
        return accepted

    def validate(self, events: list[OutcomeEvent], field_prefix: str) -> None:
        v = Violations()
        now = self.clock()
        for i, event in enumerate(events):
            at = f"{field_prefix}[{i}]" if len(events) > 1 or field_prefix == "events" else field_prefix
            v.require_id(f"{at}.event_id", event.event_id)
            v.require_name(f"{at}.use_case", event.use_case)
            v.require_id(f"{at}.decision_id", event.decision_id)
            v.require_name(f"{at}.outcome", event.outcome)
            v.require_finite(f"{at}.value", event.value)
            if event.action_id:
                v.require_id(f"{at}.action_id", event.action_id)
            if event.event_time > now + MAX_FUTURE_SKEW:
                v.add(f"{at}.event_time", "is more than 5 minutes in the future")
        v.raise_if_any()
        for event in events:  # NOT_FOUND for an unknown use case, after the syntax checks
            self.blueprints.latest_version(event.use_case)
        self._check_items(events, field_prefix)

    def _check_items(self, events: list[OutcomeEvent], field_prefix: str) -> None:
        """An outcome that names an item must name one its decision showed (a decision not
        logged yet cannot be checked; its outcome waits as an orphan)."""
        v = Violations()
        for i, event in enumerate(events):
            if not event.action_id:
                continue
            decision = self.decisions(event.use_case, event.decision_id)
            shown = [item.action_id for item in decision.ranking] if decision is not None else None
            if shown is not None and event.action_id not in shown:
                at = f"{field_prefix}[{i}]" if len(events) > 1 or field_prefix == "events" else field_prefix
                v.add(f"{at}.action_id", f"is not one of the decision's items {shown[:20]}")
        v.raise_if_any()

    def retention(self) -> int:
        """Deletes read segments older than the window and forgets event ids older than twice
        the window; returns the number of segments deleted."""
        window = self.window()
        now = self.clock().timestamp()
        segments = deletable_segments(self.paths.outcome_log, PREFIX, self.paths.outcome_consumers,
                                      list(CONSUMERS), older_than=now - window.total_seconds(),
                                      segment_seconds=self.segment_seconds)
        for segment in segments:
            segment.unlink(missing_ok=True)
        self._index.prune(before=now - 2 * window.total_seconds())
        return len(segments)

    def close(self) -> None:
        self._log.close()
        self._index.close()

    # --- storing -----------------------------------------------------------------------
    def _store(self, events: list[OutcomeEvent]) -> list[bool]:
        """Claims the new ids (grouped by use case), appends their events in one durable
        write, then completes the claims; waits for ids that another call is writing."""
        fresh, accepted = self._claim(events)
        try:
            self._log.append_many([e.to_dict() for e in fresh])
        except BaseException:
            self._release(fresh)
            raise
        for use_case, group in _by_use_case(fresh).items():
            self._index.complete(use_case, [(e.event_id, None, e.receive_time.timestamp()) for e in group])
        return accepted

    def _claim(self, events: list[OutcomeEvent]) -> tuple[list[OutcomeEvent], list[bool]]:
        deadline = time.monotonic() + CLAIM_WAIT_SECONDS
        mine: set[tuple[str, str]] = set()
        fresh: list[OutcomeEvent] = []
        decided: dict[tuple[str, str], bool] = {}
        pending = list(dict.fromkeys((e.use_case, e.event_id) for e in events))
        by_key = {(e.use_case, e.event_id): e for e in reversed(events)}  # the first of each id
        while pending:
            waiting = []
            for use_case, ids in _group(pending).items():
                taken = self._index.claim(use_case, ids, self.clock().timestamp())
                for event_id in ids:
                    entry, key = taken.get(event_id), (use_case, event_id)
                    if entry is None:
                        mine.add(key)
                        fresh.append(by_key[key])
                        decided[key] = True
                    elif entry.done:
                        decided[key] = False
                    elif not entry.owner_alive() and self._index.take_over(use_case, event_id, entry.owner,
                                                                          self.clock().timestamp()):
                        # its writer died before completing: the event may or may not be in
                        # its segment; storing it again is safe, the joiner ignores repeats
                        mine.add(key)
                        fresh.append(by_key[key])
                        decided[key] = True
                    else:
                        waiting.append(key)
            if waiting and time.monotonic() > deadline:
                self._release(fresh)
                raise Unavailable("an event id is still being stored by another call; retry")
            pending = waiting
            if waiting:
                time.sleep(0.002)
        accepted, seen = [], set()
        for event in events:  # a repeat inside one call is a plain duplicate
            key = (event.use_case, event.event_id)
            accepted.append(decided[key] and key not in seen)
            seen.add(key)
        return fresh, accepted

    def _release(self, events: list[OutcomeEvent]) -> None:
        for use_case, group in _by_use_case(events).items():
            self._index.release(use_case, [e.event_id for e in group])

    def _link_decisions(self, events: list[OutcomeEvent]) -> None:
        """One small span per decision (at most 100 a call), each linked to the decision's
        trace, so the feedback of a decision is found by searching for the link."""
        if not self.telemetry.enabled:
            return
        use_case = events[0].use_case
        decision_ids = list(dict.fromkeys(e.decision_id for e in events if e.use_case == use_case))[:100]
        traceparents = self.decision_traces(use_case, decision_ids)
        for decision_id in decision_ids:
            links = otel.link_to(traceparents.get(decision_id, ""), **{otel.DECISION_ID: decision_id})
            with self.telemetry.tracer.start_as_current_span("looper.feedback.decision", links=links, attributes={
                    otel.USE_CASE: use_case, otel.DECISION_ID: decision_id}):
                pass


class OutcomeStream:
    """A consumer's ordered view of the outcome log (the label joiner's input)."""

    def __init__(self, paths: LabelPaths, consumer: str):
        self._paths = paths
        self._consumer = LogConsumer(paths.outcome_log, PREFIX, paths.outcome_consumers, consumer)

    def pending(self) -> Iterator[tuple[OutcomeEvent, LogPosition]]:
        for data, position in self._consumer.pending():
            yield OutcomeEvent.from_dict(data), position

    def advance(self, position: LogPosition) -> None:
        self._consumer.advance(position)

    def commit(self) -> None:
        self._consumer.save()

    def reload(self) -> None:
        """Picks up the progress another process saved, after finishing a rewrite of the log
        that was cut short (the caller holds the consumers' lock, as the rewrite did)."""
        finish_interrupted_rewrites(self._paths)
        self._consumer.reload()


def _group(keys: list[tuple[str, str]]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for use_case, event_id in keys:
        groups.setdefault(use_case, []).append(event_id)
    return groups


def _by_use_case(events: list[OutcomeEvent]) -> dict[str, list[OutcomeEvent]]:
    groups: dict[str, list[OutcomeEvent]] = {}
    for event in events:
        groups.setdefault(event.use_case, []).append(event)
    return groups


def iter_outcomes(paths: LabelPaths) -> Iterator[OutcomeEvent]:
    """Every outcome event in the log (for tools and the demo)."""
    for segment in list_segments(paths.outcome_log, PREFIX):
        for data, _ in iter_records(segment):
            yield OutcomeEvent.from_dict(data)


# --- deletion: the outcome log's side (services.deletions) -------------------------------
def event_key(data: dict) -> tuple[str, str]:
    """What identifies a stored outcome event in the index: its use case and event id."""
    return data["use_case"], data["event_id"]


def outcome_log_eraser(paths: LabelPaths, segment_seconds: float, index: IdempotencyIndex) -> LogEraser:
    """The outcome log as a deletion rewrites it: the event ids of dropped events are
    forgotten (the index keeps no addresses of events)."""

    def reindex(old: str, new: str | None, kept: list, dropped: list[dict]) -> list[tuple[str, str]]:
        return index.forget([event_key(record) for record in dropped]) if dropped else []

    return LogEraser(paths.outcome_log, PREFIX, paths.outcome_consumers, segment_seconds, event_key, reindex)


def finish_interrupted_rewrites(paths: LabelPaths) -> int:
    """Finishes a rewrite of the outcome log that a crash cut short (see log_rewrite)."""
    if not pending_rewrites(paths.outcome_log):
        return 0
    index = IdempotencyIndex(paths.outcome_index)
    try:
        return outcome_log_eraser(paths, 0.0, index).finish()
    finally:
        index.close()
