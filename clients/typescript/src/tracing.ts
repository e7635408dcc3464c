import { Metadata } from "@grpc/grpc-js";

type OtelApi = typeof import("@opentelemetry/api");

// The OpenTelemetry API is an optional peer dependency: use it when the application has it.
let otel: OtelApi | undefined;
try {
  otel = await import("@opentelemetry/api");
} catch {
  otel = undefined;
}

/**
 * Metadata carrying the active OpenTelemetry context: whatever the global propagator
 * injects, and at least the W3C traceparent (and tracestate) of the active span.
 */
export function traceMetadata(): Metadata {
  const metadata = new Metadata();
  if (!otel) return metadata;
  const active = otel.context.active();
  const carrier: Record<string, string> = {};
  otel.propagation.inject(active, carrier);
  if (!carrier.traceparent) {
    const span = otel.trace.getSpanContext(active);
    if (span && otel.isSpanContextValid(span)) {
      carrier.traceparent = `00-${span.traceId}-${span.spanId}-${(span.traceFlags & 0xff).toString(16).padStart(2, "0")}`;
      const state = span.traceState?.serialize();
      if (state) carrier.tracestate = state;
    }
  }
  for (const [key, value] of Object.entries(carrier)) metadata.set(key, value);
  return metadata;
}
