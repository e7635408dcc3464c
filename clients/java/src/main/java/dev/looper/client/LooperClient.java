package dev.looper.client;

import com.google.common.util.concurrent.FutureCallback;
import com.google.common.util.concurrent.Futures;
import com.google.common.util.concurrent.ListenableFuture;
import com.google.common.util.concurrent.MoreExecutors;
import dev.looper.v1.ApplyBlueprintRequest;
import dev.looper.v1.ApplyBlueprintResponse;
import dev.looper.v1.DecideBatchRequest;
import dev.looper.v1.DecideBatchResult;
import dev.looper.v1.DecideRequest;
import dev.looper.v1.DecideResponse;
import dev.looper.v1.Decision;
import dev.looper.v1.DecisionServiceGrpc;
import dev.looper.v1.FeedbackServiceGrpc;
import dev.looper.v1.FeedbackStatus;
import dev.looper.v1.GetDecisionRequest;
import dev.looper.v1.GetDecisionResponse;
import dev.looper.v1.GetLabelRequest;
import dev.looper.v1.GetLabelResponse;
import dev.looper.v1.LogFeedbackBatchRequest;
import dev.looper.v1.LogFeedbackRequest;
import dev.looper.v1.OutcomeEvent;
import dev.looper.v1.TrainerServiceGrpc;
import io.grpc.ChannelCredentials;
import io.grpc.ClientInterceptor;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.TlsChannelCredentials;
import io.grpc.stub.AbstractStub;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;

/**
 * The Looper client: {@code decide} at a decision point, {@code logFeedback} when you learn
 * what happened. Create it once with {@link #builder()} and reuse it: it holds one channel per
 * service and is thread-safe. Every call has a deadline, is retried with backoff on
 * UNAVAILABLE (safe: each request carries its idempotency id), carries the current
 * OpenTelemetry trace as W3C traceparent when the OpenTelemetry API is present, carries the
 * bearer token ({@link Builder#token}, else the LOOPER_TOKEN environment variable), and fails
 * with a typed {@link LooperException}; one for a service that cannot be reached names the
 * service and its target.
 *
 * <p>Each call comes in two forms: {@code xAsync} returns a {@link CompletableFuture} that
 * completes exceptionally with a {@link LooperException}; {@code x} blocks and throws it.
 */
public final class LooperClient implements AutoCloseable {
  private final Duration timeout;
  private final String decisionTarget;
  private final String feedbackTarget;
  private final String trainerTarget;
  private final List<ManagedChannel> channels = new ArrayList<>();
  private final DecisionServiceGrpc.DecisionServiceFutureStub decision;
  private final FeedbackServiceGrpc.FeedbackServiceFutureStub feedback;
  private final TrainerServiceGrpc.TrainerServiceFutureStub trainer;
  private final BearerToken bearerToken;

  private LooperClient(Builder b) {
    String token = b.token != null && !b.token.isBlank() ? b.token : b.environment.apply(BearerToken.ENV);
    if (token != null && !token.isBlank()) {
      BearerToken.checkTransport(b.credentials, b.decisionTarget, b.feedbackTarget, b.trainerTarget);
      this.bearerToken = new BearerToken(token);
    } else {
      this.bearerToken = null;
    }
    this.timeout = b.timeout;
    this.decisionTarget = b.decisionTarget;
    this.feedbackTarget = b.feedbackTarget;
    this.trainerTarget = b.trainerTarget;
    decision = DecisionServiceGrpc.newFutureStub(channel(b, b.decisionTarget));
    feedback = FeedbackServiceGrpc.newFutureStub(channel(b, b.feedbackTarget));
    trainer = TrainerServiceGrpc.newFutureStub(channel(b, b.trainerTarget));
  }

  public static Builder builder() {
    return new Builder();
  }

  private ManagedChannel channel(Builder b, String target) {
    ManagedChannelBuilder<?> builder = Grpc.newChannelBuilder(target, b.credentials)
        .defaultServiceConfig(retryServiceConfig(b.maxAttempts));
    if (b.maxAttempts > 1) {
      // gRPC caps a retry policy at 5 attempts unless the channel allows more.
      builder.enableRetry().maxRetryAttempts(b.maxAttempts);
    } else {
      builder.disableRetry();
    }
    List<ClientInterceptor> interceptors = new ArrayList<>(b.interceptors);
    if (bearerToken != null) {
      interceptors.add(bearerToken);
    }
    if (b.tracePropagation && TraceContextInterceptor.available()) {
      interceptors.add(new TraceContextInterceptor());
    }
    builder.intercept(interceptors);
    ManagedChannel channel = builder.build();
    channels.add(channel);
    return channel;
  }

  /** gRPC's retry policy for the Looper services: UNAVAILABLE, backoff from 50ms doubling to 1s. */
  public static Map<String, ?> retryServiceConfig(int maxAttempts) {
    List<Map<String, String>> names = List.of(
        Map.of("service", "looper.v1.DecisionService"),
        Map.of("service", "looper.v1.FeedbackService"),
        Map.of("service", "looper.v1.TrainerService"));
    if (maxAttempts < 2) {
      return Map.of("methodConfig", List.of(Map.of("name", names)));
    }
    Map<String, Object> retry = Map.of(
        "maxAttempts", (double) maxAttempts, "initialBackoff", "0.05s", "maxBackoff", "1s",
        "backoffMultiplier", 2.0, "retryableStatusCodes", List.of("UNAVAILABLE"));
    return Map.of("methodConfig", List.of(Map.of("name", names, "retryPolicy", retry)));
  }

  private <S extends AbstractStub<S>> S deadline(S stub) {
    return stub.withDeadlineAfter(timeout.toMillis(), TimeUnit.MILLISECONDS);
  }

  private static <T, R> CompletableFuture<R> adapt(
      ListenableFuture<T> future, Function<T, R> map, String service, String target) {
    CompletableFuture<R> out = new CompletableFuture<>() {
      @Override
      public boolean cancel(boolean mayInterruptIfRunning) {
        future.cancel(mayInterruptIfRunning);
        return super.cancel(mayInterruptIfRunning);
      }
    };
    Futures.addCallback(future, new FutureCallback<T>() {
      @Override
      public void onSuccess(T value) {
        try {
          out.complete(map.apply(value));
        } catch (RuntimeException e) {
          out.completeExceptionally(e);
        }
      }

      @Override
      public void onFailure(Throwable error) {
        out.completeExceptionally(LooperException.from(error, service, target));
      }
    }, MoreExecutors.directExecutor());
    return out;
  }

  private static <T> T await(CompletableFuture<T> future) {
    try {
      return future.join();
    } catch (CompletionException e) {
      throw LooperException.from(e);
    }
  }

  // --- decisions ------------------------------------------------------------------------

  /** Makes one decision; the whole response tells whether it was replayed. */
  public CompletableFuture<DecideResponse> decideAsync(DecideRequest request) {
    return adapt(deadline(decision).decide(request), r -> r, "Decision", decisionTarget);
  }

  /** Makes one decision (blocking); build the request with {@link Requests#decide}. */
  public Decision decide(DecideRequest request) {
    return await(decideAsync(request)).getDecision();
  }

  /** Makes many decisions in one call; each result holds a response or an error. */
  public CompletableFuture<List<DecideBatchResult>> decideBatchAsync(List<DecideRequest> requests) {
    return adapt(deadline(decision).decideBatch(DecideBatchRequest.newBuilder().addAllRequests(requests).build()),
        r -> r.getResultsList(), "Decision", decisionTarget);
  }

  public List<DecideBatchResult> decideBatch(List<DecideRequest> requests) {
    return await(decideBatchAsync(requests));
  }

  /** Reads back a logged decision with the features it used. */
  public CompletableFuture<GetDecisionResponse> getDecisionAsync(String useCase, String decisionId) {
    return adapt(deadline(decision).getDecision(
        GetDecisionRequest.newBuilder().setUseCase(useCase).setDecisionId(decisionId).build()), r -> r,
        "Decision", decisionTarget);
  }

  public GetDecisionResponse getDecision(String useCase, String decisionId) {
    return await(getDecisionAsync(useCase, decisionId));
  }

  // --- feedback -------------------------------------------------------------------------

  /** Logs an outcome; completes with false when its event id had been logged before. */
  public CompletableFuture<Boolean> logFeedbackAsync(OutcomeEvent event) {
    return adapt(deadline(feedback).logFeedback(LogFeedbackRequest.newBuilder().setEvent(event).build()),
        r -> r.getStatus() == FeedbackStatus.FEEDBACK_STATUS_ACCEPTED, "Feedback", feedbackTarget);
  }

  /** Logs an outcome (blocking); build the event with {@link Requests#outcome}. */
  public boolean logFeedback(OutcomeEvent event) {
    return await(logFeedbackAsync(event));
  }

  /** Logs many outcomes in one call; one accepted flag per event. */
  public CompletableFuture<List<Boolean>> logFeedbackBatchAsync(List<OutcomeEvent> events) {
    return adapt(deadline(feedback).logFeedbackBatch(LogFeedbackBatchRequest.newBuilder().addAllEvents(events).build()),
        r -> r.getStatusesList().stream().map(s -> s == FeedbackStatus.FEEDBACK_STATUS_ACCEPTED).toList(),
        "Feedback", feedbackTarget);
  }

  public List<Boolean> logFeedbackBatch(List<OutcomeEvent> events) {
    return await(logFeedbackBatchAsync(events));
  }

  /** Reads the label joined for a decision so far. */
  public CompletableFuture<GetLabelResponse> getLabelAsync(String useCase, String decisionId) {
    return adapt(deadline(feedback).getLabel(
        GetLabelRequest.newBuilder().setUseCase(useCase).setDecisionId(decisionId).build()), r -> r,
        "Feedback", feedbackTarget);
  }

  public GetLabelResponse getLabel(String useCase, String decisionId) {
    return await(getLabelAsync(useCase, decisionId));
  }

  // --- blueprints -----------------------------------------------------------------------

  /** Applies a blueprint YAML document. */
  public CompletableFuture<ApplyBlueprintResponse> applyBlueprintAsync(String specYaml) {
    return adapt(deadline(trainer).applyBlueprint(ApplyBlueprintRequest.newBuilder().setSpecYaml(specYaml).build()),
        r -> r, "Trainer", trainerTarget);
  }

  @Override
  public void close() {
    for (ManagedChannel channel : channels) {
      channel.shutdown();
    }
    for (ManagedChannel channel : channels) {
      try {
        if (!channel.awaitTermination(5, TimeUnit.SECONDS)) {
          channel.shutdownNow();
        }
      } catch (InterruptedException e) {
        channel.shutdownNow();
        Thread.currentThread().interrupt();
      }
    }
  }

  /** Configures a {@link LooperClient}. */
  public static final class Builder {
    private String decisionTarget = "127.0.0.1:50051";
    private String feedbackTarget = "127.0.0.1:50052";
    private String trainerTarget = "127.0.0.1:50053";
    private Duration timeout = Duration.ofSeconds(5);
    private int maxAttempts = 4;
    private ChannelCredentials credentials = InsecureChannelCredentials.create();
    private boolean tracePropagation = true;
    private String token;
    private Function<String, String> environment = System::getenv;
    private final List<ClientInterceptor> interceptors = new ArrayList<>();

    private Builder() {}

    /** The DecisionService target, e.g. "host:port". */
    public Builder decisionTarget(String target) {
      this.decisionTarget = target;
      return this;
    }

    public Builder feedbackTarget(String target) {
      this.feedbackTarget = target;
      return this;
    }

    public Builder trainerTarget(String target) {
      this.trainerTarget = target;
      return this;
    }

    /** The deadline of every call (default 5s). */
    public Builder timeout(Duration timeout) {
      this.timeout = timeout;
      return this;
    }

    /**
     * Attempts per call on UNAVAILABLE (default 4; 1 disables retries). The waits between
     * attempts grow from 50ms to 1s (jittered) and no attempt outlives the call's deadline, so
     * this is the retry budget: the default rides out a blip of well under a second; riding out
     * a service restart, which takes seconds, needs more attempts and a timeout to match.
     */
    public Builder maxAttempts(int maxAttempts) {
      if (maxAttempts < 1) {
        throw new IllegalArgumentException("maxAttempts must be at least 1");
      }
      this.maxAttempts = maxAttempts;
      return this;
    }

    /**
     * The bearer token every call carries as {@code authorization: Bearer <token>}. Without it
     * (or with a blank one) the client uses the LOOPER_TOKEN environment variable, and sends no
     * token when that is unset too. Without TLS, {@link #build()} refuses to send a token to a
     * target that is not loopback: it would cross the network in the clear. Under mutual TLS
     * (a client certificate in {@link #credentials}) the certificate is the credential and no
     * token is needed.
     */
    public Builder token(String token) {
      this.token = token;
      return this;
    }

    /** Where LOOPER_TOKEN is looked up (the process environment); for tests. */
    Builder environment(Function<String, String> environment) {
      this.environment = environment;
      return this;
    }

    /** TLS with the JVM's default trust store. */
    public Builder useTls() {
      this.credentials = TlsChannelCredentials.create();
      return this;
    }

    /**
     * Any channel credentials, e.g. TlsChannelCredentials with a custom trust manager, or with
     * a key manager for mutual TLS.
     */
    public Builder credentials(ChannelCredentials credentials) {
      this.credentials = credentials;
      return this;
    }

    /** Whether to send the OpenTelemetry trace context (default true when the API is present). */
    public Builder tracePropagation(boolean enabled) {
      this.tracePropagation = enabled;
      return this;
    }

    /** Adds a client interceptor to every channel. */
    public Builder intercept(ClientInterceptor interceptor) {
      this.interceptors.add(interceptor);
      return this;
    }

    /**
     * The client.
     *
     * @throws IllegalArgumentException when a bearer token would go without TLS to a target
     *     that is not loopback
     */
    public LooperClient build() {
      return new LooperClient(this);
    }
  }
}
