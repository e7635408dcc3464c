"""The OTLP-to-Zipkin bridge: span kinds, parents, errors and links (kept as tags) survive
the conversion, and metrics keep their last value per series."""

from __future__ import annotations

from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1 import trace_pb2

from services.tracing.otlp_to_zipkin import MetricsSnapshot, zipkin_spans

TRACE = bytes(range(16))
LINKED_TRACE = bytes(range(16, 32))


def attribute(key: str, **value) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(**value))


def export(*spans: trace_pb2.Span, service: str = "looper-decision") -> trace_service_pb2.ExportTraceServiceRequest:
    request = trace_service_pb2.ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(attribute("service.name", string_value=service))
    resource_spans.scope_spans.add().spans.extend(spans)
    return request


def span(span_id: int, **fields) -> trace_pb2.Span:
    return trace_pb2.Span(trace_id=TRACE, span_id=span_id.to_bytes(8, "big"), start_time_unix_nano=2_000_000,
                          end_time_unix_nano=5_500_000, **fields)


def test_a_server_span_keeps_its_kind_parent_timing_and_attributes():
    (converted,) = zipkin_spans(export(span(1, name="looper.decide", kind=trace_pb2.Span.SPAN_KIND_SERVER,
                                            parent_span_id=(9).to_bytes(8, "big"),
                                            attributes=[attribute("looper.use_case", string_value="uc"),
                                                        attribute("looper.is_default", bool_value=True),
                                                        attribute("looper.rows", int_value=3)])))
    assert converted == {
        "traceId": TRACE.hex(), "id": (1).to_bytes(8, "big").hex(), "parentId": (9).to_bytes(8, "big").hex(),
        "name": "looper.decide", "kind": "SERVER", "timestamp": 2_000, "duration": 3_500,
        "localEndpoint": {"serviceName": "looper-decision"},
        "tags": {"looper.use_case": "uc", "looper.is_default": "true", "looper.rows": "3"},
    }


def test_client_span_kind_and_internal_spans_without_kind_or_parent():
    client, internal = zipkin_spans(export(span(1, name="call", kind=trace_pb2.Span.SPAN_KIND_CLIENT),
                                           span(2, name="step", kind=trace_pb2.Span.SPAN_KIND_INTERNAL)))
    assert client["kind"] == "CLIENT"
    assert "kind" not in internal and "parentId" not in internal


def test_links_become_numbered_tags_with_their_attributes():
    link = trace_pb2.Span.Link(trace_id=LINKED_TRACE, span_id=(7).to_bytes(8, "big"),
                               attributes=[attribute("looper.decision_id", string_value="d-1")])
    second = trace_pb2.Span.Link(trace_id=TRACE, span_id=(8).to_bytes(8, "big"))
    (converted,) = zipkin_spans(export(span(1, name="looper.feedback.decision", links=[link, second])))
    tags = converted["tags"]
    assert tags["otel.link.0.trace_id"] == LINKED_TRACE.hex()
    assert tags["otel.link.0.span_id"] == (7).to_bytes(8, "big").hex()
    assert tags["otel.link.0.looper.decision_id"] == "d-1"
    assert tags["otel.link.1.trace_id"] == TRACE.hex() and "otel.link.1.looper.decision_id" not in tags


def test_an_error_status_becomes_the_error_tag():
    failed = span(1, name="run", status=trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_ERROR, message="boom"))
    unnamed = span(2, name="run2", status=trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_ERROR))
    ok = span(3, name="run3", status=trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_OK))
    tags = [s["tags"] for s in zipkin_spans(export(failed, unnamed, ok))]
    assert tags[0]["error"] == "boom" and tags[1]["error"] == "error" and "error" not in tags[2]


def test_a_zero_length_span_lasts_one_microsecond_for_zipkin():
    instant = trace_pb2.Span(trace_id=TRACE, span_id=b"\x01" * 8, name="x", start_time_unix_nano=10_000,
                             end_time_unix_nano=10_000)
    assert zipkin_spans(export(instant))[0]["duration"] == 1


def test_metrics_keep_the_last_value_of_each_series():
    snapshot = MetricsSnapshot()

    def gauge(value: int) -> metrics_service_pb2.ExportMetricsServiceRequest:
        request = metrics_service_pb2.ExportMetricsServiceRequest()
        resource = request.resource_metrics.add()
        resource.resource.attributes.append(attribute("service.name", string_value="looper-feedback"))
        metric = resource.scope_metrics.add().metrics.add(name="looper.join.outcomes")
        point = metric.gauge.data_points.add(as_int=value)
        point.attributes.append(attribute("looper.status", string_value="late"))
        return request

    snapshot.update(gauge(3))
    snapshot.update(gauge(5))
    assert snapshot.text() == "looper.join.outcomes{service=looper-feedback,looper.status=late} 5\n"
