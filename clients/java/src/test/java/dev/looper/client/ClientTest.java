package dev.looper.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.Any;
import com.google.rpc.BadRequest;
import com.google.rpc.Code;
import dev.looper.v1.DecideRequest;
import dev.looper.v1.DecideResponse;
import dev.looper.v1.Decision;
import dev.looper.v1.DecisionServiceGrpc;
import dev.looper.v1.FeedbackServiceGrpc;
import dev.looper.v1.FeedbackStatus;
import dev.looper.v1.LogFeedbackRequest;
import dev.looper.v1.LogFeedbackResponse;
import io.grpc.Context;
import io.grpc.Contexts;
import io.grpc.Grpc;
import io.grpc.InsecureServerCredentials;
import io.grpc.Metadata;
import io.grpc.Server;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.ServerInterceptors;
import io.grpc.Status;
import io.grpc.protobuf.StatusProto;
import io.grpc.stub.StreamObserver;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.SpanContext;
import io.opentelemetry.api.trace.TraceFlags;
import io.opentelemetry.api.trace.TraceState;
import io.opentelemetry.context.Scope;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The SDK against an in-process fake of the services that records what it receives. */
class ClientTest {
  static final Metadata.Key<String> TRACEPARENT = Metadata.Key.of("traceparent", Metadata.ASCII_STRING_MARSHALLER);
  static final Context.Key<String> SEEN_TRACEPARENT = Context.key("traceparent");
  static final Metadata.Key<String> AUTHORIZATION = Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);

  final AtomicInteger unavailable = new AtomicInteger();
  final List<String> eventIds = new CopyOnWriteArrayList<>();
  final List<String> traceparents = new CopyOnWriteArrayList<>();
  final List<Long> deadlinesMillis = new CopyOnWriteArrayList<>();
  final List<String> authorizations = new CopyOnWriteArrayList<>(); // per attempt; "" for none
  volatile long blockMillis;
  Server server;

  class Decisions extends DecisionServiceGrpc.DecisionServiceImplBase {
    @Override
    public void decide(DecideRequest request, StreamObserver<DecideResponse> out) {
      record();
      if (fail(out)) {
        return;
      }
      if (request.getDecisionId().isEmpty()) {
        out.onError(StatusProto.toStatusRuntimeException(com.google.rpc.Status.newBuilder()
            .setCode(Code.INVALID_ARGUMENT_VALUE).setMessage("decision_id: is required")
            .addDetails(Any.pack(BadRequest.newBuilder().addFieldViolations(BadRequest.FieldViolation.newBuilder()
                .setField("decision_id").setDescription("is required")).build()))
            .build()));
        return;
      }
      try {
        Thread.sleep(blockMillis);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
      out.onNext(DecideResponse.newBuilder()
          .setDecision(Decision.newBuilder().setDecisionId(request.getDecisionId()).setAction("true")).build());
      out.onCompleted();
    }
  }

  class Feedback extends FeedbackServiceGrpc.FeedbackServiceImplBase {
    @Override
    public void logFeedback(LogFeedbackRequest request, StreamObserver<LogFeedbackResponse> out) {
      eventIds.add(request.getEvent().getEventId());
      record();
      if (fail(out)) {
        return;
      }
      out.onNext(LogFeedbackResponse.newBuilder().setStatus(FeedbackStatus.FEEDBACK_STATUS_ACCEPTED).build());
      out.onCompleted();
    }
  }

  void record() {
    String seen = SEEN_TRACEPARENT.get();
    traceparents.add(seen == null ? "" : seen);
    io.grpc.Deadline deadline = Context.current().getDeadline();
    deadlinesMillis.add(deadline == null ? -1 : deadline.timeRemaining(TimeUnit.MILLISECONDS));
  }

  boolean fail(StreamObserver<?> out) {
    if (unavailable.getAndDecrement() > 0) {
      out.onError(Status.UNAVAILABLE.withDescription("try again").asRuntimeException());
      return true;
    }
    return false;
  }

  LooperClient client(int maxAttempts, Duration timeout) {
    return builder().maxAttempts(maxAttempts).timeout(timeout).build();
  }

  LooperClient.Builder builder() {
    String target = "127.0.0.1:" + server.getPort();
    return LooperClient.builder().decisionTarget(target).feedbackTarget(target).trainerTarget(target);
  }

  @BeforeEach
  void start() throws Exception {
    ServerInterceptor headers = new ServerInterceptor() {
      @Override
      public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata md, ServerCallHandler<Q, R> next) {
        String value = md.get(TRACEPARENT);
        String authorization = md.get(AUTHORIZATION);
        authorizations.add(authorization == null ? "" : authorization);
        return Contexts.interceptCall(Context.current().withValue(SEEN_TRACEPARENT, value), call, md, next);
      }
    };
    server = Grpc.newServerBuilderForPort(0, InsecureServerCredentials.create())
        .addService(ServerInterceptors.intercept(new Decisions(), headers))
        .addService(ServerInterceptors.intercept(new Feedback(), headers))
        .build().start();
  }

  @AfterEach
  void stop() throws Exception {
    server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
  }

  @Test
  void retriesUnavailableWithTheSameEventId() {
    unavailable.set(2);
    try (LooperClient client = client(4, Duration.ofSeconds(5))) {
      assertTrue(client.logFeedback(Requests.outcome("u", "d", "clicked").build()));
    }
    assertEquals(3, eventIds.size(), "attempts");
    assertFalse(eventIds.get(0).isEmpty());
    assertEquals(1, eventIds.stream().distinct().count(), "one event id across retries: " + eventIds);
  }

  @Test
  void maxAttemptsMayExceedGrpcsDefaultCapOfFive() {
    unavailable.set(5);
    try (LooperClient client = client(6, Duration.ofSeconds(10))) {
      assertTrue(client.logFeedback(Requests.outcome("u", "d", "clicked").build()));
    }
    assertEquals(6, eventIds.size(), "attempts");
  }

  @Test
  void unavailableNamesTheServiceAndItsTarget() throws Exception {
    String target;
    try (ServerSocket socket = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      target = "127.0.0.1:" + socket.getLocalPort(); // free now; nothing listens once it is closed
    }
    try (LooperClient client = LooperClient.builder().decisionTarget(target).feedbackTarget(target)
        .maxAttempts(1).build()) {
      LooperException.UnavailableException decide = assertThrows(LooperException.UnavailableException.class,
          () -> client.decide(Requests.decide("u", "d").build()));
      assertTrue(decide.getMessage().startsWith("Decision service at " + target + " is unavailable: "),
          decide.getMessage());
      assertEquals(Status.Code.UNAVAILABLE, decide.code());
      ExecutionException feedback = assertThrows(ExecutionException.class,
          () -> client.logFeedbackAsync(Requests.outcome("u", "d", "clicked").build()).get());
      assertInstanceOf(LooperException.UnavailableException.class, feedback.getCause());
      assertTrue(feedback.getCause().getMessage().startsWith("Feedback service at " + target + " is unavailable: "),
          feedback.getCause().getMessage());
    }
  }

  @Test
  void givesUpAfterMaxAttemptsWithATypedException() {
    unavailable.set(100);
    try (LooperClient client = client(2, Duration.ofSeconds(5))) {
      CompletableFuture<DecideResponse> future = client.decideAsync(Requests.decide("u", "d").build());
      ExecutionException e = assertThrows(ExecutionException.class, future::get);
      assertInstanceOf(LooperException.UnavailableException.class, e.getCause());
    }
    assertEquals(2, traceparents.size(), "attempts");
  }

  @Test
  void invalidArgumentCarriesFieldViolations() {
    try (LooperClient client = client(4, Duration.ofSeconds(5))) {
      LooperException.InvalidArgumentException e = assertThrows(LooperException.InvalidArgumentException.class,
          () -> client.decide(Requests.decide("u", "").subject("user_id", "1").build()));
      assertEquals(Status.Code.INVALID_ARGUMENT, e.code());
      assertEquals(List.of(new FieldViolation("decision_id", "is required")), e.violations());
    }
  }

  @Test
  void propagatesTheCurrentTraceAsTraceparent() {
    SpanContext parent = SpanContext.create("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7",
        TraceFlags.getSampled(), TraceState.getDefault());
    try (LooperClient client = client(4, Duration.ofSeconds(5))) {
      try (Scope ignored = Span.wrap(parent).makeCurrent()) {
        client.decide(Requests.decide("u", "d").build());
      }
      client.decide(Requests.decide("u", "d").build());
    }
    assertEquals("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", traceparents.get(0));
    assertEquals("", traceparents.get(1), "no trace, no traceparent");
  }

  @Test
  void everyCallHasTheDefaultDeadline() {
    blockMillis = 1000;
    try (LooperClient client = client(1, Duration.ofMillis(150))) {
      long began = System.nanoTime();
      assertThrows(LooperException.DeadlineExceededException.class,
          () -> client.decide(Requests.decide("u", "d").build()));
      assertTrue(System.nanoTime() - began < 900_000_000L, "the deadline was not applied");
    }
    assertTrue(deadlinesMillis.get(0) > 0 && deadlinesMillis.get(0) <= 150, "server saw " + deadlinesMillis);
  }

  @Test
  void featureValuesAreTyped() {
    DecideRequest r = Requests.decide("u", "d").context("i", 3).context("f", 0.5).context("s", "x")
        .context("b", true).build();
    assertEquals(3, r.getContextOrThrow("i").getInt64Value());
    assertEquals(0.5, r.getContextOrThrow("f").getDoubleValue());
    assertEquals("x", r.getContextOrThrow("s").getStringValue());
    assertTrue(r.getContextOrThrow("b").getBoolValue());
    assertThrows(IllegalArgumentException.class, () -> Features.of(List.of(1)));
  }

  @Test
  void everyAttemptCarriesTheBearerToken() {
    unavailable.set(1);
    try (LooperClient client = builder().token("lpr_secret").build()) {
      client.decide(Requests.decide("u", "d").build());
      client.logFeedback(Requests.outcome("u", "d", "clicked").build());
    }
    assertEquals(List.of("Bearer lpr_secret", "Bearer lpr_secret", "Bearer lpr_secret"), authorizations);
  }

  @Test
  void theTokenFallsBackToLooperToken() {
    Function<String, String> environment = name -> name.equals("LOOPER_TOKEN") ? "lpr_from_env\n" : null;
    try (LooperClient fromEnv = builder().environment(environment).build();
        LooperClient withToken = builder().environment(environment).token("lpr_from_option").build();
        LooperClient without = builder().environment(name -> null).build()) {
      for (LooperClient client : List.of(fromEnv, withToken, without)) {
        client.decide(Requests.decide("u", "d").build());
      }
    }
    assertEquals(List.of("Bearer lpr_from_env", "Bearer lpr_from_option", ""), authorizations);
  }

  @Test
  void refusesToSendATokenInTheClearToAnotherHost() {
    Function<String, String> none = name -> null;
    for (String remote : List.of("10.1.2.3:50051", "looper.example.com:50051", "[2001:db8::1]:50051")) {
      IllegalArgumentException refused = assertThrows(IllegalArgumentException.class,
          () -> LooperClient.builder().environment(none).trainerTarget(remote).token("lpr_secret").build());
      assertTrue(refused.getMessage().contains("refusing to send a bearer token without TLS to " + remote),
          refused.getMessage());
      assertThrows(IllegalArgumentException.class, () -> LooperClient.builder().trainerTarget(remote)
          .environment(name -> "lpr_from_env").build(), "LOOPER_TOKEN is refused the same way");
      // With TLS, or without a token, the same target is fine.
      LooperClient.builder().environment(none).trainerTarget(remote).token("lpr_secret").useTls().build().close();
      LooperClient.builder().environment(none).trainerTarget(remote).build().close();
    }
    LooperClient.builder().decisionTarget("localhost:50051").feedbackTarget("[::1]:50052")
        .trainerTarget("127.0.0.2:50053").token("lpr_secret").build().close();
  }
}
