// Looper's cross-language client contract against real services. tests/clients/
// test_cross_language.py starts them and sets LOOPER_DECISION_ADDR, LOOPER_FEEDBACK_ADDR,
// LOOPER_TRAINER_ADDR, LOOPER_TOKEN (an administrator's, which the client takes from the
// environment), LOOPER_USE_CASE and LOOPER_RUN_ID; without them these tests skip.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, test } from "node:test";
import { InvalidArgumentError, LabelState, LooperClient, NotFoundError } from "../dist/index.js";

const live = Boolean(process.env.LOOPER_DECISION_ADDR);
const skip = live ? false : "LOOPER_DECISION_ADDR is not set; the harness in tests/clients sets it";

function env(name) {
  const value = process.env[name];
  assert.ok(value, `${name} is not set`);
  return value;
}

let client;
function connect() {
  env("LOOPER_TOKEN"); // the client's credential, from the environment
  client ??= new LooperClient({
    decision: env("LOOPER_DECISION_ADDR"), feedback: env("LOOPER_FEEDBACK_ADDR"), trainer: env("LOOPER_TRAINER_ADDR"),
  });
  const useCase = env("LOOPER_USE_CASE");
  return { client, useCase, mixedUseCase: process.env.LOOPER_MIXED_USE_CASE || useCase, runId: env("LOOPER_RUN_ID") };
}
after(() => client?.close());

async function waitJoined(c, useCase, decisionId) {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const label = await c.getLabel(useCase, decisionId);
    if (label.state === LabelState.LABEL_STATE_JOINED) return label;
    assert.ok(Date.now() < deadline, `label of ${decisionId} still ${LabelState[label.state]} after 20s`);
    await sleep(200);
  }
}

const ids = (name) => (process.env[name] ?? "").split(",").map((s) => s.trim()).filter(Boolean);

test("contract", { skip }, async () => {
  const { client: c, useCase, runId } = connect();
  const id = `${runId}-ts-main`;
  const input = { useCase, decisionId: id, subject: { user_id: "u-ts" }, context: { hour_of_day: 21 } };

  // 1. decide
  const first = await c.decideResponse(input);
  const d = first.decision;
  assert.equal(first.replayed, false);
  assert.equal(d.decisionId, id);
  assert.equal(d.useCase, useCase);
  assert.ok(["true", "false"].includes(d.action), d.action);
  assert.ok(d.blueprintVersion >= 1);
  // 2. the decision id is the idempotency key
  const again = await c.decideResponse(input);
  assert.equal(again.replayed, true);
  assert.equal(again.decision.action, d.action);
  assert.equal(again.decision.decideTime.getTime(), d.decideTime.getTime());
  // 3. feedback, idempotent by event id
  const outcome = { useCase, decisionId: id, outcome: "clicked", value: 1, eventId: `${runId}-ts-ev1` };
  assert.equal(await c.logFeedback(outcome), true);
  assert.equal(await c.logFeedback(outcome), false, "a resent event is a duplicate");
  // 4. the decision was logged with the features it used
  const logged = await c.getDecision(useCase, id);
  assert.equal(logged.decision.decisionId, id);
  assert.equal(logged.subject.user_id, "u-ts");
  assert.equal(logged.features.hour_of_day.int64Value, 21);
  // 5. the label so far; its window closes 2s after the decision
  const label = await c.getLabel(useCase, id);
  assert.equal(label.outcomeCount, 1);
  assert.equal(label.value, 1);
  assert.equal(label.windowEndTime.getTime(), d.decideTime.getTime() + 2000);
  // 6. a batch answers each item on its own
  const results = await c.decideBatch([
    { useCase, decisionId: `${runId}-ts-batch-0`, subject: { user_id: "u-ts" }, context: { hour_of_day: 3 } },
    { useCase, decisionId: "", subject: { user_id: "u-ts" } },
  ]);
  assert.equal(results.length, 2);
  assert.equal(results[0].response.decision.decisionId, `${runId}-ts-batch-0`);
  assert.equal(results[1].error.code, 3);
  assert.equal(results[1].error.field, "requests[1].decision_id");
  // 7. a bad request is a typed error naming the field
  await assert.rejects(c.decide({ useCase, decisionId: "", subject: { user_id: "u-ts" } }), (error) => {
    assert.ok(error instanceof InvalidArgumentError, String(error));
    assert.ok(error.violation("decision_id"), JSON.stringify(error.violations));
    return true;
  });
  // 8. an unknown decision is NOT_FOUND
  await assert.rejects(c.getDecision(useCase, `${runId}-ts-unknown`), NotFoundError);
  // 9. after the window closes the label is joined
  const joined = await waitJoined(c, useCase, id);
  assert.equal(joined.value, 1);
  assert.equal(joined.outcomeCount, 1);
});

test("mixed: decide for other languages' feedback", { skip: skip || (ids("LOOPER_MIXED_DECIDE").length ? false : "LOOPER_MIXED_DECIDE is empty") }, async () => {
  const { client: c, mixedUseCase: useCase } = connect();
  for (const id of ids("LOOPER_MIXED_DECIDE")) {
    const d = await c.decide({ useCase, decisionId: id, subject: { user_id: "mixed" }, context: { hour_of_day: 12 } });
    assert.equal(d.decisionId, id);
  }
});

test("mixed: feedback on other languages' decisions", { skip: skip || (ids("LOOPER_MIXED_FEEDBACK").length ? false : "LOOPER_MIXED_FEEDBACK is empty") }, async () => {
  const { client: c, mixedUseCase: useCase } = connect();
  for (const id of ids("LOOPER_MIXED_FEEDBACK")) {
    await c.getDecision(useCase, id);
    assert.equal(await c.logFeedback({ useCase, decisionId: id, outcome: "clicked", value: 1 }), true);
    const label = await c.getLabel(useCase, id);
    assert.equal(label.outcomeCount, 1);
    assert.equal(label.value, 1);
  }
});
