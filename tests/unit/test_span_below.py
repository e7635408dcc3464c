"""Telemetry.span_below: a span below the current one, except under a dropped call when the
sampler follows the parent (then the call's own span stands in: one below would record
nothing)."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from services.platform.telemetry import Telemetry

DROPPED = NonRecordingSpan(SpanContext(0x1234, 0x5678, is_remote=False, trace_flags=TraceFlags(TraceFlags.DEFAULT)))
KEPT = NonRecordingSpan(SpanContext(0x1234, 0x5678, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED)))


def telemetry(sampler) -> Telemetry:
    provider = TracerProvider(sampler=sampler)
    return Telemetry(tracer=provider.get_tracer("looper"), enabled=True, providers=(provider,))


def below(t: Telemetry, parent) -> trace.Span:
    with trace.use_span(parent):
        with t.span_below("looper.decide", {"looper.use_case": "u"}) as span:
            return span


def test_under_a_dropped_call_with_a_parent_based_sampler_the_calls_span_stands_in():
    t = telemetry(ParentBased(TraceIdRatioBased(0.01)))
    assert t.follows_parent and below(t, DROPPED) is DROPPED


@pytest.mark.parametrize("sampler", [ALWAYS_ON, TraceIdRatioBased(1.0),
                                     ParentBased(ALWAYS_ON, local_parent_not_sampled=ALWAYS_ON)])
def test_a_sampler_that_may_keep_a_child_of_a_dropped_call_gets_its_own_span(sampler):
    t = telemetry(sampler)
    span = below(t, DROPPED)
    assert not t.follows_parent and span is not DROPPED and span.get_span_context().trace_flags.sampled


def test_under_a_kept_call_or_none_a_span_of_its_own_is_started():
    t = telemetry(ParentBased(ALWAYS_ON))
    kept = below(t, KEPT)
    assert kept is not KEPT and kept.get_span_context().trace_flags.sampled and kept.get_span_context().trace_id == 0x1234
    root = below(t, trace.INVALID_SPAN)
    assert root.get_span_context().trace_flags.sampled and root.parent is None
