package dev.looper.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.google.protobuf.Timestamp;
import dev.looper.v1.DecideBatchResult;
import dev.looper.v1.DecideResponse;
import dev.looper.v1.Decision;
import dev.looper.v1.GetDecisionResponse;
import dev.looper.v1.GetLabelResponse;
import dev.looper.v1.LabelState;
import dev.looper.v1.OutcomeEvent;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Looper's cross-language client contract against real services. tests/clients/
 * test_cross_language.py starts them and sets LOOPER_DECISION_ADDR, LOOPER_FEEDBACK_ADDR,
 * LOOPER_TRAINER_ADDR, LOOPER_TOKEN (an administrator's, which the client takes from the
 * environment), LOOPER_USE_CASE and LOOPER_RUN_ID; without them these tests are skipped.
 */
class ContractTest {
  LooperClient client;
  String useCase;
  String mixedUseCase;
  String runId;

  static String env(String name) {
    String value = System.getenv(name);
    if (value == null || value.isEmpty()) {
      fail(name + " is not set");
    }
    return value;
  }

  @BeforeEach
  void connect() {
    assumeTrue(System.getenv("LOOPER_DECISION_ADDR") != null, "LOOPER_DECISION_ADDR is not set");
    env("LOOPER_TOKEN"); // the client's credential, from the environment
    client = LooperClient.builder().decisionTarget(env("LOOPER_DECISION_ADDR"))
        .feedbackTarget(env("LOOPER_FEEDBACK_ADDR")).trainerTarget(env("LOOPER_TRAINER_ADDR")).build();
    useCase = env("LOOPER_USE_CASE");
    runId = env("LOOPER_RUN_ID");
    String mixed = System.getenv("LOOPER_MIXED_USE_CASE");
    mixedUseCase = mixed == null || mixed.isEmpty() ? useCase : mixed;
  }

  @AfterEach
  void close() {
    if (client != null) {
      client.close();
    }
  }

  static long millis(Timestamp t) {
    return t.getSeconds() * 1000 + t.getNanos() / 1_000_000;
  }

  GetLabelResponse waitJoined(String decisionId) throws InterruptedException {
    long deadline = System.nanoTime() + 20_000_000_000L;
    while (true) {
      GetLabelResponse label = client.getLabel(useCase, decisionId);
      if (label.getState() == LabelState.LABEL_STATE_JOINED) {
        return label;
      }
      if (System.nanoTime() > deadline) {
        fail("label of " + decisionId + " still " + label.getState() + " after 20s");
      }
      Thread.sleep(200);
    }
  }

  @Test
  void contract() throws Exception {
    String id = runId + "-java-main";
    var request = Requests.decide(useCase, id).subject("user_id", "u-java").context("hour_of_day", 21).build();

    // 1. decide
    DecideResponse first = client.decideAsync(request).get();
    Decision d = first.getDecision();
    assertFalse(first.getReplayed());
    assertEquals(id, d.getDecisionId());
    assertEquals(useCase, d.getUseCase());
    assertTrue(Set.of("true", "false").contains(d.getAction()), d.getAction());
    assertTrue(d.getBlueprintVersion() >= 1);
    // 2. the decision id is the idempotency key
    DecideResponse again = client.decideAsync(request).get();
    assertTrue(again.getReplayed());
    assertEquals(d.getAction(), again.getDecision().getAction());
    assertEquals(d.getDecideTime(), again.getDecision().getDecideTime());
    // 3. feedback, idempotent by event id
    OutcomeEvent event = Requests.outcome(useCase, id, "clicked").value(1).eventId(runId + "-java-ev1").build();
    assertTrue(client.logFeedback(event));
    assertFalse(client.logFeedback(event), "a resent event is a duplicate");
    // 4. the decision was logged with the features it used
    GetDecisionResponse logged = client.getDecision(useCase, id);
    assertEquals(id, logged.getDecision().getDecisionId());
    assertEquals("u-java", logged.getSubjectOrThrow("user_id"));
    assertEquals(21, logged.getFeaturesOrThrow("hour_of_day").getInt64Value());
    // 5. the label so far; its window closes 2s after the decision
    GetLabelResponse label = client.getLabel(useCase, id);
    assertEquals(1, label.getOutcomeCount());
    assertEquals(1.0, label.getValue());
    assertEquals(millis(d.getDecideTime()) + 2000, millis(label.getWindowEndTime()));
    // 6. a batch answers each item on its own
    List<DecideBatchResult> results = client.decideBatch(Arrays.asList(
        Requests.decide(useCase, runId + "-java-batch-0").subject("user_id", "u-java").context("hour_of_day", 3).build(),
        Requests.decide(useCase, "").subject("user_id", "u-java").build()));
    assertEquals(2, results.size());
    assertEquals(runId + "-java-batch-0", results.get(0).getResponse().getDecision().getDecisionId());
    assertEquals(3, results.get(1).getError().getCode());
    assertEquals("requests[1].decision_id", results.get(1).getError().getField());
    // 7. a bad request is a typed exception naming the field
    LooperException.InvalidArgumentException bad = assertThrows(LooperException.InvalidArgumentException.class,
        () -> client.decide(Requests.decide(useCase, "").subject("user_id", "u-java").build()));
    assertTrue(bad.violation("decision_id").isPresent(), bad.violations().toString());
    // 8. an unknown decision is NOT_FOUND
    assertThrows(LooperException.NotFoundException.class, () -> client.getDecision(useCase, runId + "-java-unknown"));
    // 9. after the window closes the label is joined
    GetLabelResponse joined = waitJoined(id);
    assertEquals(1.0, joined.getValue());
    assertEquals(1, joined.getOutcomeCount());
  }

  static List<String> ids(String name) {
    String value = System.getenv(name);
    return value == null ? List.of() : Arrays.stream(value.split(",")).map(String::trim).filter(s -> !s.isEmpty()).toList();
  }

  /** Makes the decisions that other languages give feedback to (LOOPER_MIXED_DECIDE). */
  @Test
  void mixedDecide() {
    assumeTrue(!ids("LOOPER_MIXED_DECIDE").isEmpty(), "LOOPER_MIXED_DECIDE is empty");
    for (String id : ids("LOOPER_MIXED_DECIDE")) {
      Decision d = client.decide(Requests.decide(mixedUseCase, id).subject("user_id", "mixed").context("hour_of_day", 12).build());
      assertEquals(id, d.getDecisionId());
    }
  }

  /** Gives a click to decisions made by other languages (LOOPER_MIXED_FEEDBACK). */
  @Test
  void mixedFeedback() {
    assumeTrue(!ids("LOOPER_MIXED_FEEDBACK").isEmpty(), "LOOPER_MIXED_FEEDBACK is empty");
    for (String id : ids("LOOPER_MIXED_FEEDBACK")) {
      client.getDecision(mixedUseCase, id);
      assertTrue(client.logFeedback(Requests.outcome(mixedUseCase, id, "clicked").value(1).build()));
      GetLabelResponse label = client.getLabel(mixedUseCase, id);
      assertEquals(1, label.getOutcomeCount());
      assertEquals(1.0, label.getValue());
    }
  }
}
