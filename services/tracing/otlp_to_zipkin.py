"""An OTLP/HTTP receiver that forwards traces to Zipkin.

Looper exports standard OTLP, so any OTLP backend can take its telemetry. The embedded
default is Zipkin, for its UI, but Zipkin neither speaks OTLP nor has span links: this
bridge converts each span to Zipkin's v2 JSON and turns every link into tags
(``otel.link.<i>.trace_id``, ``.span_id`` and the link's attributes), so "which feedback
links to this decision" is a tag search. Metrics are kept in memory, last value per series,
and served as text at ``GET /metrics``.

Run: ``python -m services.tracing.otlp_to_zipkin --listen 127.0.0.1:4318 --zipkin http://127.0.0.1:9411``
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

log = logging.getLogger("looper.tracing")

_KINDS = {2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}


def _value(any_value) -> str:
    kind = any_value.WhichOneof("value")
    if kind is None:
        return ""
    value = getattr(any_value, kind)
    if kind in ("array_value", "kvlist_value"):
        return str(value).replace("\n", " ")
    if kind == "bool_value":
        return "true" if value else "false"
    return str(value)


def zipkin_spans(request: trace_service_pb2.ExportTraceServiceRequest) -> list[dict]:
    """OTLP spans as Zipkin v2 spans, links kept as tags."""
    spans = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        service = resource.get("service.name", "unknown")
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(_zipkin_span(span, service))
    return spans


def _zipkin_span(span, service: str) -> dict:
    tags = {a.key: _value(a.value) for a in span.attributes}
    for i, link in enumerate(span.links):
        tags[f"otel.link.{i}.trace_id"] = link.trace_id.hex()
        tags[f"otel.link.{i}.span_id"] = link.span_id.hex()
        for attribute in link.attributes:
            tags[f"otel.link.{i}.{attribute.key}"] = _value(attribute.value)
    if span.status.code == 2:  # ERROR
        tags["error"] = span.status.message or "error"
    zipkin = {
        "traceId": span.trace_id.hex(), "id": span.span_id.hex(), "name": span.name,
        "timestamp": span.start_time_unix_nano // 1000,
        "duration": max(1, (span.end_time_unix_nano - span.start_time_unix_nano) // 1000),
        "localEndpoint": {"serviceName": service}, "tags": tags,
    }
    if span.parent_span_id:
        zipkin["parentId"] = span.parent_span_id.hex()
    if span.kind in _KINDS:
        zipkin["kind"] = _KINDS[span.kind]
    return zipkin


class MetricsSnapshot:
    """The last exported value of every metric series, as text lines."""

    def __init__(self) -> None:
        self._series: dict[str, str] = {}
        self._lock = threading.Lock()

    def update(self, request: metrics_service_pb2.ExportMetricsServiceRequest) -> None:
        with self._lock:
            for resource_metrics in request.resource_metrics:
                service = next((_value(a.value) for a in resource_metrics.resource.attributes
                                if a.key == "service.name"), "unknown")
                for scope in resource_metrics.scope_metrics:
                    for metric in scope.metrics:
                        for key, value in _points(metric):
                            self._series[f"{metric.name}{{service={service}{key}}}"] = value

    def text(self) -> str:
        with self._lock:
            return "".join(f"{k} {v}\n" for k, v in sorted(self._series.items()))


def _points(metric):
    kind = metric.WhichOneof("data")
    data = getattr(metric, kind)
    for point in data.data_points:
        labels = "".join(f",{a.key}={_value(a.value)}" for a in point.attributes)
        if kind == "histogram":
            mean = point.sum / point.count if point.count else 0.0
            yield labels, f"count={point.count} sum={point.sum:.3f} mean={mean:.3f}"
        else:
            yield labels, str(point.as_double if point.HasField("as_double") else point.as_int)


def make_handler(zipkin_url: str, metrics: MetricsSnapshot):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path == "/v1/traces":
                request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
                self._forward(zipkin_spans(request))
                reply = trace_service_pb2.ExportTraceServiceResponse()
            elif self.path == "/v1/metrics":
                request = metrics_service_pb2.ExportMetricsServiceRequest.FromString(body)
                metrics.update(request)
                reply = metrics_service_pb2.ExportMetricsServiceResponse()
            else:
                self.send_error(404)
                return
            self._reply(200, reply.SerializeToString(), "application/x-protobuf")

        def do_GET(self):  # noqa: N802
            if self.path == "/metrics":
                self._reply(200, metrics.text().encode(), "text/plain")
            else:
                self._reply(200, b"ok\n", "text/plain") if self.path == "/health" else self.send_error(404)

        def _forward(self, spans: list[dict]) -> None:
            if not spans:
                return
            request = urllib.request.Request(f"{zipkin_url}/api/v2/spans", data=json.dumps(spans).encode(),
                                             headers={"Content-Type": "application/json"})
            urllib.request.urlopen(request, timeout=10).read()

        def _reply(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="OTLP/HTTP to Zipkin bridge")
    parser.add_argument("--listen", default="127.0.0.1:4318")
    parser.add_argument("--zipkin", default="http://127.0.0.1:9411")
    args = parser.parse_args(argv)
    host, port = args.listen.rsplit(":", 1)
    server = ThreadingHTTPServer((host, int(port)), make_handler(args.zipkin.rstrip("/"), MetricsSnapshot()))
    print(f"otlp bridge listening on {host}:{server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
