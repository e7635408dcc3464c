"""Takes outcome events: validated, deduplicated by event id, durable before the ack."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

from services.core.blueprint_store import BlueprintStore
from services.core.durable_log import DurableLog, iter_records, list_segments
from services.core.records import OutcomeEvent
from services.core import telemetry as otel
from services.core.telemetry import Telemetry, current_traceparent
from services.core.validation import Violations

PREFIX = "feedback"
MAX_FUTURE_SKEW = timedelta(minutes=5)


class FeedbackRecorder:
    """Appends new events to this process's feedback segment; a resent event id is a no-op.

    The set of seen ids is rebuilt from every segment at start. An id being written by a
    concurrent call is "in flight": a duplicate waits for that write, so it is never
    reported as stored before it is durable.
    """

    def __init__(self, blueprints: BlueprintStore, folder: Path, telemetry: Telemetry | None = None,
                 decision_traces: Callable[[str, list[str]], dict[str, str]] = lambda use_case, ids: {}):
        self.blueprints = blueprints
        self.telemetry = telemetry or Telemetry()
        self.decision_traces = decision_traces  # the traceparents decisions were made under
        self._seen: set[tuple[str, str]] = set()
        for segment in list_segments(folder, PREFIX):
            for data, _ in iter_records(segment):
                self._seen.add((data["use_case"], data["event_id"]))
        self._inflight: dict[tuple[str, str], threading.Event] = {}
        self._lock = threading.Lock()
        self._log = DurableLog(folder, PREFIX)

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

    def _store(self, events: list[OutcomeEvent]) -> list[bool]:
        while True:
            fresh, waits, accepted = self._claim(events)
            for done in waits:
                done.wait()
            if not waits:
                break
            self._release(fresh, stored=False)  # re-decide once the in-flight writes settle
        try:
            self._log.append_many([e.to_dict() for e in fresh])
        except BaseException:
            self._release(fresh, stored=False)
            raise
        self._release(fresh, stored=True)
        return accepted

    def validate(self, events: list[OutcomeEvent], field_prefix: str) -> None:
        v = Violations()
        now = datetime.now(timezone.utc)
        for i, event in enumerate(events):
            at = f"{field_prefix}[{i}]" if len(events) > 1 or field_prefix == "events" else field_prefix
            v.require_id(f"{at}.event_id", event.event_id)
            v.require_name(f"{at}.use_case", event.use_case)
            v.require_id(f"{at}.decision_id", event.decision_id)
            v.require_name(f"{at}.outcome", event.outcome)
            v.require_finite(f"{at}.value", event.value)
            if event.event_time > now + MAX_FUTURE_SKEW:
                v.add(f"{at}.event_time", "is more than 5 minutes in the future")
        v.raise_if_any()
        for event in events:  # NOT_FOUND for an unknown use case, after the syntax checks
            self.blueprints.latest_version(event.use_case)

    def _claim(self, events: list[OutcomeEvent]):
        fresh: list[OutcomeEvent] = []
        waits: list[threading.Event] = []
        accepted: list[bool] = []
        mine: set[tuple[str, str]] = set()  # a repeat inside one batch is a plain duplicate
        with self._lock:
            for event in events:
                key = (event.use_case, event.event_id)
                if key in self._inflight and key not in mine:
                    waits.append(self._inflight[key])
                is_new = key not in self._seen and key not in self._inflight
                if is_new:
                    self._inflight[key] = threading.Event()
                    mine.add(key)
                    fresh.append(event)
                accepted.append(is_new)
        return fresh, waits, accepted

    def _release(self, events: list[OutcomeEvent], stored: bool) -> None:
        with self._lock:
            for event in events:
                key = (event.use_case, event.event_id)
                if stored:
                    self._seen.add(key)
                done = self._inflight.pop(key, None)
                if done:
                    done.set()

    def close(self) -> None:
        self._log.close()
