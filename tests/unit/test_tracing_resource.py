"""The OpenTelemetry resource Looper's processes export spans under (``looper.tracing``)."""

from opentelemetry.sdk.resources import Resource

from looper.tracing import service_resource


def test_the_resource_is_the_sdks_with_the_service_name():
    resource = service_resource("looper-decision")
    sdk = Resource.create({"service.name": "looper-decision"})
    assert resource == sdk
    assert hash(resource) == hash(sdk)
    assert resource.attributes["service.name"] == "looper-decision"


def test_the_resource_is_hashed_once(monkeypatch):
    # The OTLP exporter hashes the resource of every span it sends; the SDK serializes the
    # attributes to JSON each time.
    sdk_hash, calls = Resource.__hash__, []
    monkeypatch.setattr(Resource, "__hash__", lambda self: calls.append(1) or sdk_hash(self))
    resource = service_resource("looper-decision")
    assert len({hash(resource) for _ in range(100)}) == 1
    assert len(calls) == 1


def test_spans_group_under_one_resource():
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=service_resource("looper-decision"))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    for name in ("a", "b", "c"):
        with provider.get_tracer("test").start_as_current_span(name):
            pass
    [resource_spans] = encode_spans(exporter.get_finished_spans()).resource_spans
    assert [span.name for span in resource_spans.scope_spans[0].spans] == ["a", "b", "c"]
    assert {kv.key: kv.value.string_value for kv in resource_spans.resource.attributes}["service.name"] == \
        "looper-decision"
