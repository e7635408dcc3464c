package dev.looper.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.looper.v1.AccessServiceGrpc;
import dev.looper.v1.CreateCredentialRequest;
import dev.looper.v1.CreateCredentialResponse;
import dev.looper.v1.DecideBatchResult;
import dev.looper.v1.DecideRequest;
import dev.looper.v1.DecideResponse;
import dev.looper.v1.Grant;
import dev.looper.v1.OutcomeEvent;
import dev.looper.v1.RevokeCredentialRequest;
import dev.looper.v1.Role;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.opentelemetry.api.trace.Span;
import io.opentelemetry.api.trace.SpanContext;
import io.opentelemetry.api.trace.TraceFlags;
import io.opentelemetry.api.trace.TraceState;
import io.opentelemetry.context.Scope;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The SDK's retries, deadlines, trace propagation and credentials against the real services
 * (ClientTest checks them against an in-process fake). tests/clients/harness.py runs these with
 * the services traced, the administrator's token in LOOPER_TOKEN, and answers the restart
 * handshake in LOOPER_RESTART_DIR; without the harness's environment they are skipped.
 */
class RealServerTest {
  static String env(String name) {
    String value = System.getenv(name);
    if (value == null || value.isEmpty()) {
      fail(name + " is not set");
    }
    return value;
  }

  static void requireServices() {
    assumeTrue(System.getenv("LOOPER_DECISION_ADDR") != null, "LOOPER_DECISION_ADDR is not set");
  }

  /** A client of the harness's services, with the administrator's token (LOOPER_TOKEN). */
  static LooperClient.Builder builder() {
    return withoutToken().token(env("LOOPER_TOKEN"));
  }

  /** A client of the harness's services that sends no token. */
  static LooperClient.Builder withoutToken() {
    return LooperClient.builder().decisionTarget(env("LOOPER_DECISION_ADDR"))
        .feedbackTarget(env("LOOPER_FEEDBACK_ADDR")).trainerTarget(env("LOOPER_TRAINER_ADDR"))
        .environment(name -> null);
  }

  static void signal(Path dir, String name) throws Exception {
    Files.createFile(dir.resolve(name));
  }

  static void await(Path dir, String name) throws InterruptedException {
    long deadline = System.nanoTime() + Duration.ofMinutes(2).toNanos();
    while (!Files.exists(dir.resolve(name))) {
      if (System.nanoTime() > deadline) {
        fail("the harness did not create " + name + " within 2 minutes");
      }
      Thread.sleep(50);
    }
  }

  /**
   * A Decide and a LogFeedback issued while the services are down succeed once the harness
   * has started them again on the same ports, each written exactly once.
   */
  @Test
  void retriesUnavailableAcrossARestart() throws Exception {
    String restartDir = System.getenv("LOOPER_RESTART_DIR");
    assumeTrue(restartDir != null && !restartDir.isEmpty(), "LOOPER_RESTART_DIR is not set");
    Path dir = Path.of(restartDir);
    String useCase = env("LOOPER_USE_CASE");
    String id = env("LOOPER_RUN_ID") + "-java-restart";
    DecideRequest request = Requests.decide(useCase, id).subject("user_id", "u-java").context("hour_of_day", 4).build();
    OutcomeEvent event = Requests.outcome(useCase, id, "clicked").value(1).eventId(id + "-ev").build();
    // A retry budget far beyond a restart (seconds): gRPC-Java waits up to 1s between attempts.
    try (LooperClient client = builder().maxAttempts(200).timeout(Duration.ofSeconds(90)).build()) {
      // Connected first, so the calls below meet services that went away, not ones never reached.
      assertThrows(LooperException.NotFoundException.class, () -> client.getDecision(useCase, id));
      assertThrows(LooperException.NotFoundException.class, () -> client.getLabel(useCase, id));
      signal(dir, "ready");
      await(dir, "stopped");

      // Each future is returned once its call has been started on the channel.
      CompletableFuture<DecideResponse> decided = client.decideAsync(request);
      CompletableFuture<Boolean> logged = client.logFeedbackAsync(event);
      signal(dir, "calling");

      DecideResponse response = decided.get();
      assertEquals(id, response.getDecision().getDecisionId());
      assertFalse(response.getReplayed(), "an earlier attempt had written the decision");
      assertTrue(logged.get(), "the event was accepted");
      // Written once: the decision reads back and replays, the event is a duplicate when resent.
      assertEquals(response.getDecision().getAction(), client.getDecision(useCase, id).getDecision().getAction());
      assertTrue(client.decideAsync(request).get().getReplayed());
      assertFalse(client.logFeedback(event), "a resent event is a duplicate");
    }
  }

  /**
   * The client's timeout of 1ms is every call's gRPC deadline; no server decides 200 times in
   * 1ms, so the call fails with the typed exception, while the same call succeeds with a
   * timeout it can meet.
   */
  @Test
  void theDeadlineFailsACallTheServerCannotAnswerInTime() {
    requireServices();
    String useCase = env("LOOPER_USE_CASE");
    String runId = env("LOOPER_RUN_ID");
    try (LooperClient patient = builder().timeout(Duration.ofSeconds(60)).build();
        LooperClient hasty = builder().timeout(Duration.ofMillis(1)).maxAttempts(1).build()) {
      List<DecideBatchResult> results = patient.decideBatch(batch(useCase, runId + "-java-in-time-"));
      assertEquals(200, results.size());
      assertTrue(results.stream().allMatch(DecideBatchResult::hasResponse), "every item decided");
      assertThrows(LooperException.DeadlineExceededException.class,
          () -> hasty.decideBatch(batch(useCase, runId + "-java-too-late-")));
    }
  }

  static List<DecideRequest> batch(String useCase, String prefix) {
    List<DecideRequest> requests = new ArrayList<>();
    for (int i = 0; i < 200; i++) {
      requests.add(Requests.decide(useCase, String.format("%s%03d", prefix, i)).subject("user_id", "u-java")
          .context("hour_of_day", 5).build());
    }
    return requests;
  }

  /**
   * A Decide made under the caller's trace (LOOPER_TRACE_ID) is logged with a traceparent of
   * that trace: the Decision service's own span, a child of the caller's.
   */
  @Test
  void theCallersTraceReachesTheDecisionLog() {
    String traceId = System.getenv("LOOPER_TRACE_ID");
    assumeTrue(traceId != null && !traceId.isEmpty(), "LOOPER_TRACE_ID is not set");
    String useCase = env("LOOPER_USE_CASE");
    String id = env("LOOPER_RUN_ID") + "-java-traced";
    String spanId = "00f067aa0ba902b7";
    SpanContext parent = SpanContext.create(traceId, spanId, TraceFlags.getSampled(), TraceState.getDefault());
    try (LooperClient client = builder().build()) {
      try (Scope ignored = Span.wrap(parent).makeCurrent()) {
        client.decide(Requests.decide(useCase, id).subject("user_id", "u-java").context("hour_of_day", 6).build());
      }
      String[] logged = client.getDecision(useCase, id).getTraceparent().split("-");
      assertEquals(4, logged.length, String.join("-", logged));
      assertEquals(traceId, logged[1], "the caller's trace");
      assertNotEquals(spanId, logged[2], "the service's own span");
    }
  }

  /**
   * Without a token, or with one Looper does not know, a call fails with the typed
   * UnauthenticatedException; with a credential that may only read the use case (created
   * through the Access service), a Decide fails with PermissionDeniedException while a read
   * goes through.
   */
  @Test
  void callsWithoutTheRightCredentialFailWithTypedExceptions() {
    requireServices();
    String useCase = env("LOOPER_USE_CASE");
    String id = env("LOOPER_RUN_ID") + "-java-denied";
    DecideRequest request = Requests.decide(useCase, id).subject("user_id", "u-java").build();
    ManagedChannel channel = Grpc.newChannelBuilder(env("LOOPER_TRAINER_ADDR"), InsecureChannelCredentials.create())
        .intercept(new BearerToken(env("LOOPER_TOKEN"))).build();
    try {
      // The Trainer (and Access) service starts last after a restart: wait for it to be ready.
      AccessServiceGrpc.AccessServiceBlockingStub access = AccessServiceGrpc.newBlockingStub(channel)
          .withWaitForReady().withDeadlineAfter(60, TimeUnit.SECONDS);
      CreateCredentialResponse reader = access.createCredential(CreateCredentialRequest.newBuilder()
          .setName(env("LOOPER_RUN_ID") + "-java-reader")
          .addGrants(Grant.newBuilder().setUseCase(useCase).addRoles(Role.ROLE_READ)).build());
      try (LooperClient anonymous = withoutToken().maxAttempts(1).build();
          LooperClient unknown = withoutToken().token("lpr_not-a-token").maxAttempts(1).build();
          LooperClient readOnly = withoutToken().token(reader.getToken()).maxAttempts(1).build()) {
        assertThrows(LooperException.UnauthenticatedException.class, () -> anonymous.decide(request));
        assertThrows(LooperException.UnauthenticatedException.class, () -> unknown.decide(request));
        LooperException.PermissionDeniedException denied =
            assertThrows(LooperException.PermissionDeniedException.class, () -> readOnly.decide(request));
        assertEquals(Status.Code.PERMISSION_DENIED, denied.code());
        assertThrows(LooperException.NotFoundException.class, () -> readOnly.getDecision(useCase, id),
            "a reader may read; the decision was never made");
      } finally {
        access.revokeCredential(RevokeCredentialRequest.newBuilder()
            .setCredentialId(reader.getCredential().getCredentialId()).build());
      }
    } finally {
      channel.shutdownNow();
    }
  }
}
