package dev.looper.client;

import com.google.protobuf.Timestamp;
import dev.looper.v1.Candidate;
import dev.looper.v1.DecideRequest;
import dev.looper.v1.OutcomeEvent;
import java.time.Instant;
import java.util.Map;
import java.util.UUID;

/** Fluent builders of the requests a product engineer sends. */
public final class Requests {
  private Requests() {}

  /** A decision request; {@code decisionId} is yours: the idempotency key feedback refers to. */
  public static DecideBuilder decide(String useCase, String decisionId) {
    return new DecideBuilder(useCase, decisionId);
  }

  /** An outcome of a decision; the event id is generated once, at build time, unless set. */
  public static OutcomeBuilder outcome(String useCase, String decisionId, String outcome) {
    return new OutcomeBuilder(useCase, decisionId, outcome);
  }

  /** A fresh random id, usable as a decision or event id. */
  public static String newId() {
    return UUID.randomUUID().toString().replace("-", "");
  }

  /** Builds a {@link DecideRequest}. */
  public static final class DecideBuilder {
    private final DecideRequest.Builder request = DecideRequest.newBuilder();

    private DecideBuilder(String useCase, String decisionId) {
      request.setUseCase(useCase).setDecisionId(decisionId);
    }

    public DecideBuilder subject(String entity, String key) {
      request.putSubject(entity, key);
      return this;
    }

    public DecideBuilder context(String feature, Object value) {
      request.putContext(feature, Features.of(value));
      return this;
    }

    public DecideBuilder context(Map<String, ?> features) {
      request.putAllContext(Features.of(features));
      return this;
    }

    public DecideBuilder candidate(String actionId, Map<String, ?> features) {
      request.addCandidates(Candidate.newBuilder().setActionId(actionId).putAllFeatures(Features.of(features)));
      return this;
    }

    public DecideRequest build() {
      return request.build();
    }
  }

  /** Builds an {@link OutcomeEvent}. */
  public static final class OutcomeBuilder {
    private final OutcomeEvent.Builder event = OutcomeEvent.newBuilder().setValue(1.0);

    private OutcomeBuilder(String useCase, String decisionId, String outcome) {
      event.setUseCase(useCase).setDecisionId(decisionId).setOutcome(outcome);
    }

    public OutcomeBuilder value(double value) {
      event.setValue(value);
      return this;
    }

    public OutcomeBuilder eventId(String eventId) {
      event.setEventId(eventId);
      return this;
    }

    public OutcomeBuilder eventTime(Instant time) {
      event.setEventTime(Timestamp.newBuilder().setSeconds(time.getEpochSecond()).setNanos(time.getNano()));
      return this;
    }

    public OutcomeEvent build() {
      if (event.getEventId().isEmpty()) {
        event.setEventId(newId());
      }
      return event.build();
    }
  }
}
