"""The server's tracing interceptor: a call the sampler keeps gets OpenTelemetry's server
span (continuing the caller's trace, or starting one), a call it drops gets no span, and in
neither case does a span below the handler start a trace of its own."""

from __future__ import annotations

import asyncio
from collections import namedtuple

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import StatusCode

from services.platform.server_tracing import AsyncSampledServerTracing, SampledServerTracing

Details = namedtuple("Details", "method invocation_metadata")
Metadatum = namedtuple("Metadatum", "key value")
METHOD = "/looper.v1.DecisionService/Decide"
PARENT_TRACE = 0x0AF7651916CD43DD8448EB211C80319C
PARENT_SPAN = 0xB7AD6B7169203331


class FakeContext:  # the boundary: what the interceptors read from a call
    def __init__(self, metadata):
        self.metadata = metadata
        self.status = None, None

    def invocation_metadata(self):
        return self.metadata

    def peer(self):
        return "ipv4:127.0.0.1:50000"

    def abort(self, code, details):  # as gRPC's: the call's status, then an exception
        self.status = code, details
        raise Exception()

    def code(self):
        return self.status[0]

    def details(self):
        return self.status[1]


def traceparent(sampled: bool) -> Metadatum:
    return Metadatum("traceparent", f"00-{PARENT_TRACE:032x}-{PARENT_SPAN:016x}-{'01' if sampled else '00'}")


@pytest.fixture(params=["thread-pool", "asyncio"])
def runtime(request) -> str:
    """Each test runs against the interceptor of either kind of server."""
    return request.param


def served(runtime: str, ratio: float, metadata: list, fail: grpc.StatusCode | Exception | None = None
           ) -> tuple[list, trace.SpanContext, trace.Span]:
    """One call through the interceptor, whose handler starts a span as the Decider does
    (then aborts with ``fail``, a status or an exception, when given); the finished spans,
    the span context the handler ran under, and its own span."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(ratio)))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    seen = {}

    def behavior(request, context):
        seen["context"] = trace.get_current_span().get_span_context()
        with provider.get_tracer("looper").start_as_current_span("looper.decide") as span:
            seen["span"] = span
        if isinstance(fail, Exception):
            raise fail
        if fail is not None:
            context.abort(fail, "it went wrong")
        return request * 2

    async def async_behavior(request, context):
        return behavior(request, context)

    details = Details(METHOD, tuple(metadata))
    if runtime == "thread-pool":
        handler = SampledServerTracing(provider).intercept_service(
            lambda details: grpc.unary_unary_rpc_method_handler(behavior), details)
        assert _answer(lambda: handler.unary_unary(21, FakeContext(metadata)), fail) == 42
    else:
        async def call():
            async def continuation(details):
                return grpc.unary_unary_rpc_method_handler(async_behavior)

            handler = await AsyncSampledServerTracing(provider).intercept_service(continuation, details)
            return await handler.unary_unary(21, FakeContext(metadata))

        assert _answer(lambda: asyncio.run(call()), fail) == 42
    return exporter.get_finished_spans(), seen["context"], seen["span"]


def _answer(call, fail):
    """The call's answer; 42 when it failed as it was told to."""
    if fail is None:
        return call()
    with pytest.raises(Exception):
        call()
    return 42


def test_a_call_whose_caller_sampled_its_trace_continues_it_with_a_server_span(runtime):
    spans, _, _ = served(runtime, 0.0, [traceparent(sampled=True)])
    by_name = {s.name: s for s in spans}
    assert set(by_name) == {METHOD, "looper.decide"}
    server = by_name[METHOD]
    assert server.kind == trace.SpanKind.SERVER and server.context.trace_id == PARENT_TRACE
    assert server.parent.span_id == PARENT_SPAN and by_name["looper.decide"].parent.span_id == server.context.span_id


def test_a_call_whose_caller_dropped_its_trace_records_nothing_below_it(runtime):
    spans, context, span = served(runtime, 1.0, [traceparent(sampled=False)])
    assert spans == () or list(spans) == []
    assert context.trace_id == PARENT_TRACE and not context.trace_flags.sampled
    assert not span.is_recording()


def test_a_new_call_the_sampler_keeps_starts_one_trace_with_a_server_span(runtime):
    spans, _, _ = served(runtime, 1.0, [])
    by_name = {s.name: s for s in spans}
    assert set(by_name) == {METHOD, "looper.decide"}
    assert by_name[METHOD].parent is None, "the server span is the root"
    assert by_name["looper.decide"].context.trace_id == by_name[METHOD].context.trace_id


@pytest.mark.parametrize("metadata", [[], [Metadatum("user-agent", "grpc-go")]])
def test_a_new_call_the_sampler_drops_leaves_no_span_and_starts_no_trace_below(runtime, metadata):
    spans, context, span = served(runtime, 0.0, metadata)
    assert list(spans) == [], "a span below a dropped call started a trace of its own"
    assert context.is_valid and not context.trace_flags.sampled and not span.is_recording()


def test_the_sampled_share_of_new_calls_is_traced_whole_and_the_rest_not_at_all(runtime):
    names = [sorted(s.name for s in served(runtime, 0.25, [])[0]) for _ in range(400)]
    traced = sum(bool(n) for n in names)
    assert 60 <= traced <= 140, f"{traced} of 400 calls traced at a 25% ratio (drawn once, not twice)"
    assert all(n in ([], sorted([METHOD, "looper.decide"])) for n in names), "a call was traced in part"


def test_a_server_span_carries_what_opentelemetrys_grpc_instrumentation_records(runtime):
    spans, _, _ = served(runtime, 1.0, [traceparent(sampled=True), Metadatum("user-agent", "grpc-go/1.7")])
    server = next(s for s in spans if s.kind == trace.SpanKind.SERVER)
    assert dict(server.attributes) == {
        "rpc.system": "grpc", "rpc.service": "looper.v1.DecisionService", "rpc.method": "Decide",
        "rpc.grpc.status_code": 0, "rpc.user_agent": "grpc-go/1.7", "net.peer.ip": "127.0.0.1",
        "net.peer.port": "50000"}
    assert server.status.status_code == StatusCode.UNSET


@pytest.mark.parametrize("fail, code, failed", [
    (grpc.StatusCode.INVALID_ARGUMENT, 3, False),  # the caller's mistake: not the server's error
    (grpc.StatusCode.INTERNAL, 13, True),
    (RuntimeError("no status"), 2, True),  # gRPC answers UNKNOWN
])
def test_a_server_span_ends_with_the_status_its_call_was_given(runtime, fail, code, failed):
    spans, _, _ = served(runtime, 1.0, [traceparent(sampled=True)], fail=fail)
    server = next(s for s in spans if s.kind == trace.SpanKind.SERVER)
    assert server.attributes["rpc.grpc.status_code"] == code
    assert server.status.status_code == (StatusCode.ERROR if failed else StatusCode.UNSET)
    assert ("it went wrong" in (server.status.description or "")) == (failed and code == 13)
    assert [e.name for e in server.events] == (["exception"] if isinstance(fail, Exception) else [])
