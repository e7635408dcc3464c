"""Sampling through the real (asyncio) Decision service, exported over OTLP to a real
receiver: a call the sampler keeps is one whole trace from its server span down; a call it
drops leaves no span at all, and nothing below it starts a trace of its own (had the
handler not run under the dropped call's context, its decision span would be a new root,
kept half the time at this ratio)."""

from __future__ import annotations

import time

import pytest
from benchmarks.otlp_sink import OtlpSink
from services.launcher import start_looper
from tests.conftest import SIMPLE_BLUEPRINT

pytestmark = pytest.mark.e2e
SERVER_SPAN = "/looper.v1.DecisionService/Decide"


def test_kept_calls_are_whole_traces_and_dropped_ones_leave_no_span_below(tmp_path):
    sink = OtlpSink()
    looper = start_looper(tmp_path / "data", "all", env={
        "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5",
        "OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_METRIC_EXPORT_INTERVAL": "60000"})
    try:
        with looper.client(max_attempts=1) as client:
            client.apply_blueprint(SIMPLE_BLUEPRINT)
            for i in range(40):
                client.decide("contract_test", f"s-{i}", {"user_id": f"u{i}"}, {"hour_of_day": 9, "platform": "ios"})
        deadline = time.monotonic() + 20
        while not any(s.name == SERVER_SPAN for s in sink.spans) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        looper.stop()  # flushes the exporter
        sink.stop()
    traces: dict[str, set[str]] = {}
    for span in sink.spans:
        traces.setdefault(span.trace_id, set()).add(span.name)
    kept = [names for names in traces.values() if SERVER_SPAN in names]
    assert 5 <= len(kept) <= 35, f"{len(kept)} of 40 calls kept at a ratio of 0.5"
    assert all("looper.decide" in names and "looper.decision_log.append" in names for names in kept)
    orphans = [names for names in traces.values() if "looper.decide" in names and SERVER_SPAN not in names]
    assert not orphans, "a dropped call's decision started a trace of its own"
