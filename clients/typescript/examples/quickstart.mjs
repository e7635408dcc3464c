// Asks Looper for a decision and reports its outcome.
//   npm run build && node examples/quickstart.mjs [decision host:port] [feedback host:port]
import { randomUUID } from "node:crypto";
import { InvalidArgumentError, LooperClient } from "../dist/index.js";

const [decision = "127.0.0.1:50051", feedback = "127.0.0.1:50052"] = process.argv.slice(2);
const client = new LooperClient({ decision, feedback, timeoutMs: 2000 });
const useCase = "notification_send";
const decisionId = randomUUID(); // yours: the idempotency key and what feedback refers to
try {
  const d = await client.decide({
    useCase, decisionId, subject: { user_id: "42" },
    context: { hour_of_day: new Date().getHours(), platform: "ios" },
  });
  console.log(`decision ${decisionId}: action=${d.action} score=${d.score.toFixed(3)} model=${d.modelVersion || "-"}`);
  if (d.action === "true") { // we sent it, and the user opened it
    await client.logFeedback({ useCase, decisionId, outcome: "opened", value: 1 });
    console.log("feedback logged");
  }
} catch (error) {
  if (error instanceof InvalidArgumentError) console.error("bad request:", error.violations);
  throw error;
} finally {
  client.close();
}
