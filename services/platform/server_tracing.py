"""The gRPC server side of tracing: OpenTelemetry's server interceptor, for the calls the
sampler keeps.

OpenTelemetry's interceptor reads the peer and the metadata and starts a server span for
every call, sampled or not; with the 1% sampler a production user runs, that was about 8%
of a Decide's CPU for spans nobody keeps. Here the sampler is asked first, as the SDK would
ask it (the caller's ``traceparent`` as parent, else a fresh trace id). A call it keeps
goes through OpenTelemetry's interceptor unchanged; a root call it keeps does so on a twin of
the provider that samples everything, so that the decision already made is not drawn a
second time. A call it drops runs under an unsampled span context carrying the trace id, so
that no span below it records either (as under the span OpenTelemetry would have started),
and nothing is left to start new traces of its own.
"""

from __future__ import annotations

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.grpc import aio_server_interceptor, server_interceptor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags


class _Sampling:
    """The sampler's verdict on a call, before any span exists."""

    def __init__(self, provider: TracerProvider, interceptor):
        """``interceptor(tracer_provider=...)`` is OpenTelemetry's, for the kind of server."""
        self.sampler, self.ids = provider.sampler, provider.id_generator
        self.headers = frozenset(propagate.get_global_textmap().fields)  # what the propagators read
        self.continued = interceptor(tracer_provider=provider)  # the caller's trace, sampled
        twin = TracerProvider(sampler=ALWAYS_ON, resource=provider.resource, shutdown_on_exit=False,
                              active_span_processor=provider._active_span_processor, id_generator=provider.id_generator)
        self.started = interceptor(tracer_provider=twin)  # a new trace the sampler kept

    def verdict(self, details):
        """OpenTelemetry's interceptor to hand the call to when it is sampled; else the
        unsampled context to run it under."""
        metadata = dict(details.invocation_metadata or ())
        # Most calls carry no trace: nothing to extract (the propagators' parsing is most of it)
        traced = any(key in metadata for key in self.headers)
        parent_context = propagate.extract(metadata) if traced else otel_context.Context()
        parent = trace.get_current_span(parent_context).get_span_context()
        trace_id = parent.trace_id if parent.is_valid else self.ids.generate_trace_id()
        sampled = self.sampler.should_sample(parent_context, trace_id, details.method, SpanKind.SERVER)
        if sampled.decision.is_sampled():
            return (self.continued if parent.is_valid else self.started), None
        return None, trace.set_span_in_context(NonRecordingSpan(SpanContext(
            trace_id, self.ids.generate_span_id(), is_remote=False, trace_flags=TraceFlags(TraceFlags.DEFAULT),
            trace_state=parent.trace_state if parent.is_valid else None)), parent_context)


class SampledServerTracing(grpc.ServerInterceptor):
    """For a thread-pool server."""

    def __init__(self, provider: TracerProvider):
        self.sampling = _Sampling(provider, server_interceptor)

    def intercept_service(self, continuation, details):
        traced, dropped = self.sampling.verdict(details)
        if traced is not None:
            return traced.intercept_service(continuation, details)
        handler = continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler  # health checking's stream: nothing below it traces
        inner = handler.unary_unary

        def untraced(request, context):
            token = otel_context.attach(dropped)
            try:
                return inner(request, context)
            finally:
                otel_context.detach(token)

        return grpc.unary_unary_rpc_method_handler(untraced, request_deserializer=handler.request_deserializer,
                                                   response_serializer=handler.response_serializer)


class AsyncSampledServerTracing(grpc.aio.ServerInterceptor):
    """For an asyncio server (the Decision service's)."""

    def __init__(self, provider: TracerProvider):
        self.sampling = _Sampling(provider, aio_server_interceptor)

    async def intercept_service(self, continuation, details):
        traced, dropped = self.sampling.verdict(details)
        if traced is not None:
            return await traced.intercept_service(continuation, details)
        # The interceptors and the handler of a call run in the call's own task: the
        # unsampled context attached here is the handler's, and ends with the call's task
        # (wrapping the handler to attach and detach it cost several times more per call).
        otel_context.attach(dropped)
        return await continuation(details)
