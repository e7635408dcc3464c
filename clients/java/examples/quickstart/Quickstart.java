import dev.looper.client.LooperClient;
import dev.looper.client.LooperException;
import dev.looper.client.Requests;
import dev.looper.v1.Decision;
import java.time.Duration;
import java.time.LocalTime;

/**
 * Asks Looper for a decision and reports its outcome. Run from clients/java:
 *   mvn -q -o package -DskipTests dependency:build-classpath -Dmdep.outputFile=target/cp.txt
 *   java -cp target/classes:$(cat target/cp.txt) examples/quickstart/Quickstart.java [decision] [feedback]
 */
public class Quickstart {
  public static void main(String[] args) {
    String decisionTarget = args.length > 0 ? args[0] : "127.0.0.1:50051";
    String feedbackTarget = args.length > 1 ? args[1] : "127.0.0.1:50052";
    try (LooperClient client = LooperClient.builder().decisionTarget(decisionTarget).feedbackTarget(feedbackTarget)
        .timeout(Duration.ofSeconds(2)).build()) {
      String useCase = "notification_send";
      String decisionId = Requests.newId(); // yours: the idempotency key and what feedback refers to
      client.decideAsync(Requests.decide(useCase, decisionId).subject("user_id", "42")
              .context("hour_of_day", LocalTime.now().getHour()).context("platform", "ios").build())
          .thenCompose(response -> {
            Decision d = response.getDecision();
            System.out.printf("decision %s: action=%s score=%.3f%n", decisionId, d.getAction(), d.getScore());
            // we sent it, and the user opened it
            return client.logFeedbackAsync(Requests.outcome(useCase, decisionId, "opened").value(1).build());
          })
          .thenAccept(accepted -> System.out.println("feedback logged: " + accepted))
          .exceptionally(error -> {
            LooperException e = LooperException.from(error);
            System.err.println("failed: " + e.getMessage() + " " + e.violations());
            return null;
          })
          .join();
    }
  }
}
