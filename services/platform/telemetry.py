"""Each service's OpenTelemetry: one tracer, one meter and the instruments that matter on
call, created once per service (after any fork) and handed to the domain code.

When tracing is off the tracer and meter are the API's no-op ones: our spans then cost a
function call, and no gRPC interceptor is installed. Span attributes live in the
``looper.`` namespace and never carry raw feature values.
"""

from __future__ import annotations

import functools
from contextlib import nullcontext
from dataclasses import dataclass, field

from opentelemetry import metrics, trace
from opentelemetry.sdk.trace.sampling import ParentBased
from opentelemetry.trace import Link, SpanContext, TraceFlags

from looper.tracing import meter_provider_from_env, tracer_provider_from_env

USE_CASE = "looper.use_case"
DECISION_ID = "looper.decision_id"
MODEL_VERSION = "looper.model_version"
BLUEPRINT_VERSION = "looper.blueprint_version"
RUN_ID = "looper.run_id"


class _NoSpan:
    """What ``start_as_current_span`` gives when tracing is off: the API's invalid span,
    without attaching a context (the API's no-op tracer costs about 10 us a span)."""

    def __enter__(self) -> trace.Span:
        return trace.INVALID_SPAN

    def __exit__(self, *exc) -> None:
        return None


class OffTracer(trace.NoOpTracer):
    _no_span = _NoSpan()

    def start_as_current_span(self, *args, **kwargs):
        return self._no_span


@dataclass
class Telemetry:
    tracer: trace.Tracer = field(default_factory=OffTracer)
    meter: metrics.Meter = field(default_factory=lambda: metrics.NoOpMeter("looper"))
    enabled: bool = False
    providers: tuple = ()

    def __post_init__(self) -> None:
        m = self.meter
        self.decision_latency = m.create_histogram(
            "looper.decision.duration", unit="ms",
            description="A new decision's latency inside the service: from its call reaching the Decider to its durable write")
        self.decisions = m.create_counter("looper.decisions", description="Decisions by use case and result")
        self.outcomes = m.create_counter("looper.feedback.outcomes", description="Outcome events by join status")
        self.training_duration = m.create_histogram("looper.training.duration", unit="s",
                                                    description="Training run duration")
        self.feature_fetch_failures = m.create_counter(
            "looper.feature_fetch.failures", description="Decisions whose feature read failed or timed out")

    def span_below(self, name: str, attributes: dict):
        """A span for ``name`` as the current one, below the current span; or, when the
        current span was not sampled and the sampler follows the parent (as a production
        user's parent-based one does), the current span itself: a span below it would record
        nothing, and starting one costs a sampling and a context switch for each call."""
        current = trace.get_current_span()
        context = current.get_span_context()
        if context.is_valid and not context.trace_flags.sampled and self.follows_parent:
            return nullcontext(current)
        return self.tracer.start_as_current_span(name, attributes=attributes)

    @functools.cached_property
    def follows_parent(self) -> bool:
        """Whether the sampler drops every span whose parent was dropped."""
        sampler = getattr(self.providers[0], "sampler", None) if self.providers else None
        if not isinstance(sampler, ParentBased):
            return False
        description = sampler.get_description()
        return ("remoteParentNotSampled:AlwaysOffSampler" in description
                and "localParentNotSampled:AlwaysOffSampler" in description)

    def server_interceptors(self, asynchronous: bool = False) -> tuple:
        """The tracing interceptor for a thread-pool server, or for an asyncio one."""
        if not self.enabled:
            return ()
        from services.platform.server_tracing import AsyncSampledServerTracing, SampledServerTracing

        return ((AsyncSampledServerTracing if asynchronous else SampledServerTracing)(self.providers[0]),)

    def observe(self, name: str, callback, description: str, unit: str = "1") -> None:
        """A gauge read when metrics are exported (model age, decision-log backlog)."""
        self.meter.create_observable_gauge(
            name, callbacks=[lambda options: [metrics.Observation(v, a) for v, a in callback()]],
            description=description, unit=unit)

    def shutdown(self) -> None:
        for provider in self.providers:
            provider.shutdown()


def telemetry_for(service_name: str) -> Telemetry:
    """The service's telemetry from the OTEL_* environment (off when no endpoint is set)."""
    tracer_provider = tracer_provider_from_env(service_name)
    if tracer_provider is None:
        return Telemetry()
    meter_provider = meter_provider_from_env(service_name)
    return Telemetry(tracer=tracer_provider.get_tracer("looper"), meter=meter_provider.get_meter("looper"),
                     enabled=True, providers=(tracer_provider, meter_provider))


def current_traceparent() -> str:
    """The W3C traceparent of the current span ("" when not recording)."""
    return traceparent_of(trace.get_current_span())


def traceparent_of(span: trace.Span) -> str:
    """The W3C traceparent of a span ("" for the invalid span of tracing that is off)."""
    context = span.get_span_context()
    if not context.is_valid:
        return ""
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def link_to(traceparent: str, **attributes) -> list[Link]:
    """A span link to the span a stored traceparent names (none when it is empty)."""
    parts = traceparent.split("-") if traceparent else []
    if len(parts) != 4:
        return []
    context = SpanContext(trace_id=int(parts[1], 16), span_id=int(parts[2], 16), is_remote=True,
                          trace_flags=TraceFlags(int(parts[3], 16)))
    return [Link(context, attributes)]
