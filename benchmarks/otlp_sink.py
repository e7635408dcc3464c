"""A minimal OTLP/HTTP receiver for the bench: the traced Decision service exports to it as
it would to a collector, and the bench reads the server-side span durations back (the
handler time of a Decide, and of its stages) without a tracing backend competing for the
two cores. It keeps spans in memory and acknowledges metrics without keeping them."""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2


@dataclass(frozen=True)
class Span:
    trace_id: str
    name: str
    duration_ms: float
    attributes: dict


class OtlpSink:
    def __init__(self, max_spans: int = 500_000):
        self.spans: list[Span] = []
        self.max_spans = max_spans
        self.exports = 0
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path.endswith("/v1/traces"):
                    sink._traces(body)
                    reply = trace_service_pb2.ExportTraceServiceResponse()
                elif self.path.endswith("/v1/metrics"):
                    reply = metrics_service_pb2.ExportMetricsServiceResponse()
                else:
                    self.send_error(404)
                    return
                payload = reply.SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-sink", daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def _traces(self, body: bytes) -> None:
        request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
        spans = []
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                for span in scope.spans:
                    attributes = {a.key: _value(a.value) for a in span.attributes}
                    spans.append(Span(span.trace_id.hex(), span.name,
                                      (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6, attributes))
        with self._lock:
            self.exports += 1
            self.spans.extend(spans[: max(0, self.max_spans - len(self.spans))])

    def snapshot(self) -> list[Span]:
        with self._lock:
            return list(self.spans)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _value(value):
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind in ("string_value", "int_value", "double_value", "bool_value") else None
