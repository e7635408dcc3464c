"""The outcome recorder's contract with a caller: bad events named field by field, the
future-skew limit, events linked to the traces of their decisions, counted as accepted or
duplicate, claims left by dead processes, and retention of segments and event ids."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta, timezone

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.blueprints.store import BlueprintStore
from services.labels import outcomes as outcomes_module
from services.labels.outcomes import CONSUMERS, OutcomeEvent, OutcomeRecorder, OutcomeStream, iter_outcomes
from services.platform.data_dir import DataDir
from services.platform.errors import InvalidArgument, Unavailable
from services.platform.id_index import IdempotencyIndex
from services.platform.telemetry import Telemetry
from tests.conftest import SIMPLE_BLUEPRINT
from tests.unit.test_decision_log import dead_owner

NOW = datetime(2026, 7, 1, 12, 0, tzinfo=timezone.utc)
TRACE = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"


def event(event_id, decision_id="d1", at=NOW, **changes):
    fields = dict(event_id=event_id, use_case="contract_test", decision_id=decision_id, outcome="clicked",
                  value=1.0, event_time=at, receive_time=NOW)
    fields.update(changes)
    return OutcomeEvent(**fields)


class Recorded:
    def __init__(self, tmp_path, **options):
        self.data = DataDir(tmp_path).ensure()
        blueprints = BlueprintStore(self.data.blueprints)
        blueprints.apply(SIMPLE_BLUEPRINT)
        self.spans, self.metrics = InMemorySpanExporter(), InMemoryMetricReader()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.asked = []
        telemetry = Telemetry(tracer=provider.get_tracer("test"),
                              meter=MeterProvider(metric_readers=[self.metrics]).get_meter("test"), enabled=True)
        self.recorder = OutcomeRecorder(blueprints, self.data.labels, telemetry=telemetry,
                                        decision_traces=self.traces, **options)

    def traces(self, use_case, ids):
        self.asked.append((use_case, list(ids)))
        return {"d1": TRACE}

    def counted(self):
        data = self.metrics.get_metrics_data()
        return {p.attributes["looper.status"]: p.value for rm in data.resource_metrics for sm in rm.scope_metrics
                for m in sm.metrics if m.name == "looper.feedback.outcomes" for p in m.data.data_points}


@pytest.fixture()
def recorded(tmp_path):
    world = Recorded(tmp_path, clock=lambda: NOW)
    yield world
    world.recorder.close()


def refused(recorder, events, prefix="events"):
    with pytest.raises(InvalidArgument) as raised:
        recorder.record(events, prefix)
    return [(v.field, v.reason) for v in raised.value.violations]


def test_each_bad_field_is_named_by_its_event(recorded):
    bad = event("e 1", decision_id="", outcome="Clicked", value=float("nan"), action_id="a b", use_case="Bad")
    assert refused(recorded.recorder, [event("ok"), bad]) == [
        ("events[1].event_id", "must be 1-128 characters of [A-Za-z0-9._:-]"),
        ("events[1].use_case", "must be lower_snake_case: a letter, then letters, digits or _ (max 63)"),
        ("events[1].decision_id", "is required"),
        ("events[1].outcome", "must be lower_snake_case: a letter, then letters, digits or _ (max 63)"),
        ("events[1].value", "must be a finite number"),
        ("events[1].action_id", "must be 1-128 characters of [A-Za-z0-9._:-]"),
    ]
    assert refused(recorded.recorder, [event("e 1")], prefix="event") == [
        ("event.event_id", "must be 1-128 characters of [A-Za-z0-9._:-]")]
    assert refused(recorded.recorder, [event("e 1")]) == [
        ("events[0].event_id", "must be 1-128 characters of [A-Za-z0-9._:-]")]


def test_an_event_may_be_up_to_five_minutes_ahead_of_the_recorders_clock(recorded):
    assert recorded.recorder.record([event("e1", at=NOW + timedelta(minutes=5))]) == [True]
    assert refused(recorded.recorder, [event("e2", at=NOW + timedelta(minutes=5, seconds=1))]) == [
        ("events[0].event_time", "is more than 5 minutes in the future")]


def test_a_stored_event_keeps_every_field_and_the_trace_it_was_recorded_in(recorded):
    recorded.recorder.record([event("e1", action_id="item-3", value=2.5)])
    (span,) = [s for s in recorded.spans.get_finished_spans() if s.name == "looper.feedback.record"]
    (stored,) = iter_outcomes(recorded.data.labels)
    expected_trace = f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-{int(span.context.trace_flags):02x}"
    assert stored == event("e1", action_id="item-3", value=2.5, traceparent=expected_trace)
    assert dict(span.attributes) == {"looper.events": 1, "looper.use_case": "contract_test",
                                     "looper.decision_id": "d1", "looper.accepted": 1}


def test_feedback_links_to_each_decisions_trace_once(recorded):
    recorded.recorder.record([event("e1", "d1"), event("e2", "d2"), event("e3", "d1")])
    assert recorded.asked == [("contract_test", ["d1", "d2"])]
    linked = [s for s in recorded.spans.get_finished_spans() if s.name == "looper.feedback.decision"]
    assert [dict(s.attributes) for s in linked] == [
        {"looper.use_case": "contract_test", "looper.decision_id": "d1"},
        {"looper.use_case": "contract_test", "looper.decision_id": "d2"}]
    (link,) = linked[0].links
    assert (f"{link.context.trace_id:032x}", f"{link.context.span_id:016x}") == ("1" * 32, "2" * 16)
    assert list(linked[1].links) == []  # d2's trace is unknown


def test_events_are_counted_as_accepted_or_duplicate(recorded):
    assert recorded.recorder.record([event("e1"), event("e2")]) == [True, True]
    assert recorded.recorder.record([event("e1"), event("e3"), event("e3")]) == [False, True, False]
    assert recorded.counted() == {"accepted": 3, "duplicate": 2}


def test_without_tracing_no_decision_trace_is_looked_up(tmp_path):
    data = DataDir(tmp_path).ensure()
    blueprints = BlueprintStore(data.blueprints)
    blueprints.apply(SIMPLE_BLUEPRINT)
    asked = []
    recorder = OutcomeRecorder(blueprints, data.labels, decision_traces=lambda u, ids: asked.append(ids) or {},
                               clock=lambda: NOW)
    try:
        assert recorder.record([event("e1")]) == [True]
        assert asked == []
        (stored,) = iter_outcomes(data.labels)
        assert stored.traceparent == ""
    finally:
        recorder.close()


def test_an_event_claimed_by_a_process_that_died_is_stored(recorded):
    index = IdempotencyIndex(recorded.data.labels.outcome_index)
    index.owner = dead_owner()
    index.claim("contract_test", ["e1"], NOW.timestamp())
    index.close()
    assert recorded.recorder.record([event("e1"), event("e2")]) == [True, True]
    assert sorted(e.event_id for e in iter_outcomes(recorded.data.labels)) == ["e1", "e2"]
    assert recorded.recorder.record([event("e1")]) == [False]


def test_an_event_still_being_stored_by_a_live_call_times_out_and_frees_the_others(recorded, monkeypatch):
    index = IdempotencyIndex(recorded.data.labels.outcome_index)
    index.owner = f"{socket.gethostname()}-{os.getpid()}"  # alive: this very process
    index.claim("contract_test", ["busy"], NOW.timestamp())
    monkeypatch.setattr(outcomes_module, "CLAIM_WAIT_SECONDS", 0.05)
    with pytest.raises(Unavailable, match="still being stored by another call"):
        recorded.recorder.record([event("free"), event("busy")])
    index.close()
    assert recorded.recorder.record([event("free")]) == [True]  # its claim was released


def test_retention_deletes_read_segments_and_forgets_event_ids_after_two_windows(tmp_path):
    now = [NOW]
    world = Recorded(tmp_path, clock=lambda: now[0], window=lambda: timedelta(hours=1), segment_seconds=1)
    recorder = world.recorder
    try:
        recorder.record([event("e1")])
        segment = next(world.data.labels.outcome_log.glob("feedback-*.log"))
        os.utime(segment, (NOW.timestamp(), NOW.timestamp()))
        now[0] = NOW + timedelta(minutes=61)
        assert recorder.retention() == 0  # the joiner has not read it
        stream = OutcomeStream(world.data.labels, CONSUMERS[0])
        for _, position in stream.pending():
            stream.advance(position)
        stream.commit()
        now[0] = NOW + timedelta(minutes=59)
        assert recorder.retention() == 0  # inside the window
        now[0] = NOW + timedelta(minutes=61)
        assert recorder.retention() == 1 and not segment.exists()
        now[0] = NOW + timedelta(minutes=119)
        recorder.retention()
        assert recorder.record([event("e1", at=now[0])]) == [False]  # still remembered
        now[0] = NOW + timedelta(minutes=121)
        recorder.retention()
        assert recorder.record([event("e1", at=now[0])]) == [True]  # forgotten after two windows
    finally:
        recorder.close()


def test_an_outcome_log_rewrite_cut_short_is_finished_once_and_forgets_the_dropped_event_ids(tmp_path, monkeypatch):
    from services.labels.outcomes import finish_interrupted_rewrites, outcome_log_eraser
    from services.platform.durable_log import list_segments
    from tests.unit.test_log_rewrite import Crash, crash_at

    recorded = Recorded(tmp_path)
    recorded.recorder.record([event(f"e{i:02d}", decision_id=f"d{i % 3}") for i in range(12)])
    recorded.recorder.close()
    paths = recorded.data.labels
    assert finish_interrupted_rewrites(paths) == 0, "nothing was cut short"
    (segment,) = list_segments(paths.outcome_log, "feedback")
    old = segment.stat().st_mtime - 3600
    os.utime(segment, (old, old))  # closed
    index = IdempotencyIndex(paths.outcome_index)
    with monkeypatch.context() as patched:
        crash_at(patched, "rename", paths)
        with pytest.raises(Crash):
            outcome_log_eraser(paths, 60, index).rewrite(segment, lambda data: data["decision_id"] == "d0")
    index.close()
    assert finish_interrupted_rewrites(paths) == 1
    assert finish_interrupted_rewrites(paths) == 0
    kept = [e.event_id for e in iter_outcomes(paths)]
    assert kept == [f"e{i:02d}" for i in range(12) if i % 3]
    index = IdempotencyIndex(paths.outcome_index)
    try:
        assert index.get("contract_test", "e00") is None and index.get("contract_test", "e01") is not None
    finally:
        index.close()
