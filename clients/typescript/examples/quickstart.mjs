// Asks Looper whether to send a notification and reports that it was opened. Start the
// services and apply the notification_send blueprint (see the top-level README), then, from
// clients/typescript, with the token `make run` wrote:
//   npm run build && LOOPER_TOKEN=$(cat ../../data/run/looper-token) node examples/quickstart.mjs
// LOOPER_DECISION_ADDR and LOOPER_FEEDBACK_ADDR override the services' default addresses.
import { randomUUID } from "node:crypto";
import { InvalidArgumentError, LooperClient } from "@looper-ml/client";

// One client for the whole program: it keeps a channel per service.
const client = new LooperClient({
  decision: process.env.LOOPER_DECISION_ADDR || "127.0.0.1:50051",
  feedback: process.env.LOOPER_FEEDBACK_ADDR || "127.0.0.1:50052",
  // Every call's credential; without this option the client reads LOOPER_TOKEN itself.
  token: process.env.LOOPER_TOKEN,
  timeoutMs: 2000, // each call's deadline; add `tls: true` for TLS
});
const decisionId = randomUUID(); // yours: the idempotency key that feedback refers to
try {
  const decision = await client.decide({
    useCase: "notification_send",
    decisionId,
    subject: { user_id: "42" },
    context: { hour_of_day: new Date().getHours(), platform: "ios" },
  });
  console.log(`decision ${decisionId}: action=${decision.action}`);
  if (decision.action === "true") { // we sent the notification; later, the user opened it
    await client.logFeedback({ useCase: "notification_send", decisionId, outcome: "opened", value: 1 });
    console.log("feedback logged");
  }
} catch (error) {
  // Typed: InvalidArgumentError, UnavailableError (naming the service and its address), ...
  if (error instanceof InvalidArgumentError) console.error("bad request:", error.violations);
  throw error;
} finally {
  client.close();
}
