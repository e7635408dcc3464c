package dev.looper.client;

import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ForwardingClientCall;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.opentelemetry.api.GlobalOpenTelemetry;
import io.opentelemetry.api.trace.propagation.W3CTraceContextPropagator;
import io.opentelemetry.context.Context;
import io.opentelemetry.context.propagation.TextMapSetter;

/**
 * Puts the current OpenTelemetry context on each call as W3C {@code traceparent} (and
 * whatever else the global propagators add, e.g. baggage). Loaded only when the application
 * has the OpenTelemetry API on its class path.
 */
final class TraceContextInterceptor implements ClientInterceptor {
  private static final Metadata.Key<String> TRACEPARENT =
      Metadata.Key.of("traceparent", Metadata.ASCII_STRING_MARSHALLER);
  private static final TextMapSetter<Metadata> SETTER =
      (headers, key, value) -> headers.put(Metadata.Key.of(key, Metadata.ASCII_STRING_MARSHALLER), value);

  static boolean available() {
    try {
      Class.forName("io.opentelemetry.api.trace.propagation.W3CTraceContextPropagator", false,
          TraceContextInterceptor.class.getClassLoader());
      return true;
    } catch (ClassNotFoundException | LinkageError e) {
      return false;
    }
  }

  @Override
  public <ReqT, RespT> ClientCall<ReqT, RespT> interceptCall(
      MethodDescriptor<ReqT, RespT> method, CallOptions options, Channel next) {
    return new ForwardingClientCall.SimpleForwardingClientCall<>(next.newCall(method, options)) {
      @Override
      public void start(Listener<RespT> listener, Metadata headers) {
        Context current = Context.current();
        GlobalOpenTelemetry.getPropagators().getTextMapPropagator().inject(current, headers, SETTER);
        if (!headers.containsKey(TRACEPARENT)) { // no global propagator: W3C trace context anyway
          W3CTraceContextPropagator.getInstance().inject(current, headers, SETTER);
        }
        super.start(listener, headers);
      }
    };
  }
}
