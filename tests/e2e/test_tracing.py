"""Trace-based tests through real servers and a real tracing backend (Zipkin fed over
OTLP), read back through its HTTP query API: one decision is one trace from the client
through Decision to the Feast fetch, inference and the log append; its feedback links to
it; a training run's trace reaches the Decision service's model reload."""

from __future__ import annotations


import pytest
from looperpb.v1 import trainer_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

from examples.notifications.population import make_population
from examples.notifications.prepare import prepare
from examples.notifications.simulator import NotificationSimulator, PhaseResult
from services.launcher import start_looper
from services.tracing.backend import start_tracing_backend
from tests.e2e.test_closed_loop import small_blueprint, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    work = tmp_path_factory.mktemp("traced")
    backend = start_tracing_backend(work / "tracing")
    data = work / "data"
    data.mkdir()
    users = make_population(200, seed=5)
    prepare(data, users)
    looper = start_looper(data, env=backend.otel_env())
    provider = TracerProvider(resource=Resource.create({"service.name": "test-product"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{backend.otlp_endpoint}/v1/traces")))
    client = looper.client(timeout=10, tracer_provider=provider)
    client.apply_blueprint(small_blueprint())
    NotificationSimulator(client, users, seed=5).run(PhaseResult("warm-up"), 450, concurrency=6)
    model = wait_for(lambda: next((m for m in client.list_models("notification_send")
                                   if m.stage == trainer_pb2.MODEL_STAGE_LIVE), None), 120, "a live model")
    yield backend, client, model
    client.close()
    looper.stop()
    provider.shutdown()
    backend.stop()


def spans_of(backend, tag, value, names=(), kinds=(), timeout=30):
    """The spans of the traces tagged ``tag=value``, once Zipkin has indexed a span of each
    of ``names`` and of each of ``kinds``: a service exports its spans in batches every half
    second, so a parent that ends after its child may arrive in the next one."""
    wanted = {name.lower() for name in names}  # Zipkin lower-cases span names

    def found():
        spans = [s for t in backend.find_traces(tag, value) for s in t]
        complete = wanted <= {s["name"] for s in spans} and set(kinds) <= {s.get("kind") for s in spans}
        return spans if spans and complete else None
    return wait_for(found, timeout, f"a trace with {tag}={value} and spans {sorted(wanted)} {sorted(kinds)}")


def by_name(spans, name):
    matches = [s for s in spans if s["name"] == name.lower()]  # Zipkin lower-cases span names
    assert matches, f"no span {name} in {[s['name'] for s in spans]}"
    return matches[0]


def test_one_decision_is_one_trace_from_client_to_log_append(traced):
    backend, client, model = traced
    live = next(m for m in client.list_models("notification_send") if m.stage == trainer_pb2.MODEL_STAGE_LIVE)
    decision = client.decide("notification_send", "traced-1", {"user_id": "user-00007"},
                             {"hour_of_day": 20, "platform": "ios"})
    assert decision.model_version == live.version
    steps = ("looper.feature_fetch", "looper.inference", "looper.policy", "looper.decision_log.append")
    spans = spans_of(backend, "looper.decision_id", "traced-1", names=("looper.decide", *steps),
                     kinds=("CLIENT", "SERVER"))
    assert len({s["traceId"] for s in spans}) == 1
    traceparent = client.get_decision("notification_send", "traced-1").traceparent
    assert traceparent.split("-")[1] == spans[0]["traceId"]  # from a decision id to its trace
    client_span = [s for s in spans if s.get("kind") == "CLIENT"][0]
    server_span = [s for s in spans if s.get("kind") == "SERVER"][0]
    decide = by_name(spans, "looper.decide")
    assert client_span["localEndpoint"]["serviceName"] == "test-product"
    assert server_span["parentId"] == client_span["id"] and decide["parentId"] == server_span["id"]
    for step in steps:
        assert by_name(spans, step)["parentId"] == decide["id"]
    tags = decide["tags"]
    assert tags["looper.use_case"] == "notification_send" and tags["looper.model_version"] == live.version
    assert tags["looper.is_default"] == "false" and int(tags["looper.feature_count"]) > 5
    assert not any(k.startswith("user_profile") for s in spans for k in s.get("tags", {})), "no raw features"


def test_feedback_span_links_to_the_decision_trace(traced):
    backend, client, model = traced
    client.decide("notification_send", "traced-2", {"user_id": "user-00008"}, {"hour_of_day": 9, "platform": "web"})
    decision_trace = spans_of(backend, "looper.decision_id", "traced-2", names=("looper.decide",))[0]["traceId"]
    wait_for(lambda: client.get_label("notification_send", "traced-2"), 10, "the joiner to see the decision")
    client.log_feedback("notification_send", "traced-2", "opened", 1.0, event_id="traced-2-open")
    spans = spans_of(backend, "otel.link.0.trace_id", decision_trace,
                     names=("looper.feedback.decision", "looper.feedback.record"))
    linked = by_name(spans, "looper.feedback.decision")
    assert linked["tags"]["looper.decision_id"] == "traced-2"
    assert linked["traceId"] != decision_trace
    assert by_name(spans, "looper.feedback.record")["id"] == linked["parentId"]


def test_training_run_trace_reaches_the_decision_reload(traced):
    backend, client, model = traced
    run = client.start_training_run("notification_send", force_promote=True)
    run = wait_for(lambda: (r := client.get_training_run(run.run_id)).state == trainer_pb2.TRAINING_RUN_STATE_SUCCEEDED
                   and r, 120, "the forced training run")
    client.decide("notification_send", "traced-3", {"user_id": "user-00009"}, {"hour_of_day": 9, "platform": "web"})
    run_steps = {"looper.training_set.build", "looper.fit", "looper.evaluate", "looper.register"}
    run_spans = spans_of(backend, "looper.run_id", run.run_id, names=("looper.training_run", *run_steps))
    training = by_name(run_spans, "looper.training_run")
    assert training["tags"]["looper.model_version"] == run.model_version
    assert run_steps <= {s["name"] for s in run_spans}
    assert run.traceparent.split("-")[1] == training["traceId"]
    reload_spans = spans_of(backend, "otel.link.0.trace_id", training["traceId"], names=("looper.model_reload",))
    reload = by_name(reload_spans, "looper.model_reload")
    assert reload["localEndpoint"]["serviceName"] == "looper-decision"
    assert reload["tags"]["looper.model_version"] == run.model_version


def test_metrics_reach_the_backend(traced):
    backend, client, model = traced
    client.decide("notification_send", "metered-1", {"user_id": "user-00010"}, {"hour_of_day": 9, "platform": "web"})
    expected = {"looper.decision.duration", "looper.decisions", "looper.model.age", "looper.decision_log.backlog",
                "looper.training.duration", "looper.join.outcomes", "looper.feedback.outcomes"}

    def exported():
        text = backend.metrics_text()
        return text if expected <= {line.split("{")[0] for line in text.splitlines()} else None
    text = wait_for(exported, 30, f"exported metrics {sorted(expected)}")
    decided = [line for line in text.splitlines() if line.startswith("looper.decisions{service=looper-decision")]
    assert any("looper.result=model" in line or "looper.result=exploration" in line for line in decided), decided
