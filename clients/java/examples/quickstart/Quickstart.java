import dev.looper.client.LooperClient;
import dev.looper.client.LooperException;
import dev.looper.client.Requests;
import dev.looper.v1.Decision;
import java.time.Duration;
import java.time.LocalTime;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;

/**
 * Asks Looper whether to send a notification and reports that it was opened. Start the
 * services and apply the notification_send blueprint (see the top-level README), then, from
 * clients/java, with the token `make run` wrote:
 *   mvn -q compile dependency:build-classpath -Dmdep.outputFile=target/cp.txt
 *   export LOOPER_TOKEN=$(cat ../../data/run/looper-token)
 *   java -cp target/classes:$(cat target/cp.txt) examples/quickstart/Quickstart.java
 * LOOPER_DECISION_ADDR and LOOPER_FEEDBACK_ADDR override the services' default addresses.
 */
public class Quickstart {
  public static void main(String[] args) {
    // One client for the whole program: it keeps a channel per service.
    try (LooperClient client = LooperClient.builder()
        .decisionTarget(env("LOOPER_DECISION_ADDR", "127.0.0.1:50051"))
        .feedbackTarget(env("LOOPER_FEEDBACK_ADDR", "127.0.0.1:50052"))
        // Every call's credential; without this option the client reads LOOPER_TOKEN itself.
        .token(System.getenv("LOOPER_TOKEN"))
        .timeout(Duration.ofSeconds(2)) // each call's deadline; add .useTls() for TLS
        .build()) {
      String decisionId = Requests.newId(); // yours: the idempotency key that feedback refers to
      client.decideAsync(Requests.decide("notification_send", decisionId).subject("user_id", "42")
              .context("hour_of_day", LocalTime.now().getHour()).context("platform", "ios").build())
          .thenCompose(response -> {
            Decision decision = response.getDecision();
            System.out.printf("decision %s: action=%s%n", decisionId, decision.getAction());
            if (!decision.getAction().equals("true")) {
              return CompletableFuture.completedFuture(null);
            }
            // we sent the notification; later, the user opened it
            return client.logFeedbackAsync(Requests.outcome("notification_send", decisionId, "opened").value(1).build())
                .thenRun(() -> System.out.println("feedback logged"));
          })
          .join();
    } catch (CompletionException failed) {
      LooperException error = LooperException.from(failed); // typed: InvalidArgumentException, ...
      if (error instanceof LooperException.InvalidArgumentException) {
        System.err.println("bad request: " + error.violations());
      }
      throw error; // e.g. UnavailableException: the message names the service and its address
    }
  }

  static String env(String name, String fallback) {
    String value = System.getenv(name);
    return value == null || value.isEmpty() ? fallback : value;
  }
}
