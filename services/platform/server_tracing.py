"""The gRPC server side of tracing: a server span for each call the sampler keeps.

OpenTelemetry's interceptor reads the peer and the metadata and starts a server span for
every call, sampled or not; with the 1% sampler a production user runs, that was about 8%
of a Decide's CPU for spans nobody keeps. Here the sampler is asked first, as the SDK would
ask it (the caller's ``traceparent`` as parent, else a fresh trace id). A call it keeps gets
a server span like the one OpenTelemetry's interceptor makes (its name, kind, ``rpc.*`` and
``net.peer.*`` attributes, status), continuing the caller's trace, or starting one on a twin
of the provider that samples everything, so that the decision already made is not drawn a
second time. (OpenTelemetry's own interceptor parsed the call's metadata and peer again
and proxied the servicer context: with every call sampled, on an asyncio echo server it
added about 0.18 ms to a call and this one 0.13, the span itself being most of that; a
traced ranking's handler span shrank by about 0.05 ms.) A call it drops runs under an
unsampled span context carrying the trace id, so that no span below it records either, and
nothing is left to start new traces of its own. Streams (health checking's Watch) are never
traced.
"""

from __future__ import annotations

from typing import Callable

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

TRACER_NAME = "looper.grpc.server"
# The codes that mark a server span as failed, as OpenTelemetry's gRPC semantic conventions
# have it: a caller's mistake (INVALID_ARGUMENT, NOT_FOUND...) is not the server's error.
SERVER_ERRORS = frozenset({grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNIMPLEMENTED,
                           grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DATA_LOSS})


class _Sampling:
    """The sampler's verdict on a call, before any span exists, and the call's server span."""

    def __init__(self, provider: TracerProvider):
        self.sampler, self.ids = provider.sampler, provider.id_generator
        self.headers = frozenset(propagate.get_global_textmap().fields)  # what the propagators read
        twin = TracerProvider(sampler=ALWAYS_ON, resource=provider.resource, shutdown_on_exit=False,
                              active_span_processor=provider._active_span_processor, id_generator=provider.id_generator)
        self.continued = provider.get_tracer(TRACER_NAME)  # the caller's trace, sampled
        self.started = twin.get_tracer(TRACER_NAME)  # a new trace the sampler kept

    def verdict(self, details) -> tuple[Callable[[grpc.ServicerContext], trace.Span] | None, otel_context.Context]:
        """For a call the sampler keeps, what starts its server span (given the call's
        servicer context), and the context to start it in; else None, and the unsampled
        context to run the call under."""
        metadata = dict(details.invocation_metadata or ())
        # Most calls carry no trace: nothing to extract (the propagators' parsing is most of it)
        traced = any(key in metadata for key in self.headers)
        parent_context = propagate.extract(metadata) if traced else otel_context.Context()
        parent = trace.get_current_span(parent_context).get_span_context()
        trace_id = parent.trace_id if parent.is_valid else self.ids.generate_trace_id()
        sampled = self.sampler.should_sample(parent_context, trace_id, details.method, SpanKind.SERVER)
        if sampled.decision.is_sampled():
            tracer = self.continued if parent.is_valid else self.started
            return lambda servicer_context: tracer.start_span(
                details.method, context=parent_context, kind=SpanKind.SERVER,
                attributes=_call_attributes(details.method, metadata, servicer_context.peer())), parent_context
        return None, trace.set_span_in_context(NonRecordingSpan(SpanContext(
            trace_id, self.ids.generate_span_id(), is_remote=False, trace_flags=TraceFlags(TraceFlags.DEFAULT),
            trace_state=parent.trace_state if parent.is_valid else None)), parent_context)


def _call_attributes(method: str, metadata: dict, peer: str) -> dict:
    """A server span's attributes, named as OpenTelemetry's gRPC instrumentation names them."""
    service, _, name = method.lstrip("/").partition("/")
    attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name,
                  "rpc.grpc.status_code": grpc.StatusCode.OK.value[0]}
    if "user-agent" in metadata:
        attributes["rpc.user_agent"] = metadata["user-agent"]
    kind, _, address = peer.split(",")[0].partition(":")  # ipv4:127.0.0.1:57284, ipv6:[::1]:57284
    if kind in ("ipv4", "ipv6") and ":" in address:
        ip, port = address.rsplit(":", 1)
        attributes.update({"net.peer.ip": ip, "net.peer.port": port})
    return attributes


def _end(span: trace.Span, context, error: BaseException | None) -> None:
    """Ends a call's server span with the status the call was given."""
    code = context.code()
    if code is not None and code != grpc.StatusCode.OK:
        span.set_attribute("rpc.grpc.status_code", code.value[0])
        if code in SERVER_ERRORS:
            details = context.details()
            details = details.decode("utf-8", "replace") if isinstance(details, bytes) else details
            span.set_status(Status(StatusCode.ERROR, f"{code}:{details}"))
    elif error is not None:  # failed without a status: gRPC answers UNKNOWN
        span.set_attribute("rpc.grpc.status_code", grpc.StatusCode.UNKNOWN.value[0])
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, f"{grpc.StatusCode.UNKNOWN}:{type(error).__name__}"))
    span.end()


def _unary(handler) -> Callable | None:
    """The behavior of a unary call's handler; None for streams and unknown methods."""
    return handler.unary_unary if handler is not None else None


class SampledServerTracing(grpc.ServerInterceptor):
    """For a thread-pool server."""

    def __init__(self, provider: TracerProvider):
        self.sampling = _Sampling(provider)

    def intercept_service(self, continuation, details):
        start, run_under = self.sampling.verdict(details)
        handler = continuation(details)
        inner = _unary(handler)
        if inner is None:
            return handler

        def call(request, context):
            span = start(context) if start is not None else None
            token = otel_context.attach(trace.set_span_in_context(span, run_under) if span else run_under)
            error = None
            try:
                return inner(request, context)
            except BaseException as err:
                error = err
                raise
            finally:
                otel_context.detach(token)
                if span is not None:
                    _end(span, context, error)

        return grpc.unary_unary_rpc_method_handler(call, request_deserializer=handler.request_deserializer,
                                                   response_serializer=handler.response_serializer)


class AsyncSampledServerTracing(grpc.aio.ServerInterceptor):
    """For an asyncio server (the Decision service's)."""

    def __init__(self, provider: TracerProvider):
        self.sampling = _Sampling(provider)

    async def intercept_service(self, continuation, details):
        start, run_under = self.sampling.verdict(details)
        if start is None:
            # The interceptors and the handler of a call run in the call's own task: the
            # unsampled context attached here is the handler's, and ends with the call's task
            # (wrapping the handler to attach and detach it cost several times more per call).
            otel_context.attach(run_under)
            return await continuation(details)
        handler = await continuation(details)
        inner = _unary(handler)
        if inner is None:
            return handler

        async def call(request, context):
            span = start(context)
            otel_context.attach(trace.set_span_in_context(span, run_under))  # the call's task, as above
            error = None
            try:
                return await inner(request, context)
            except BaseException as err:
                error = err
                raise
            finally:
                _end(span, context, error)

        return grpc.unary_unary_rpc_method_handler(call, request_deserializer=handler.request_deserializer,
                                                   response_serializer=handler.response_serializer)
