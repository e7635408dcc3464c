// The SDK's retries, deadlines, trace propagation and credentials against the real services
// (client.test.mjs checks them against an in-process fake). tests/clients/harness.py runs these
// with the services traced, the administrator's token in LOOPER_TOKEN, and answers the restart
// handshake in LOOPER_RESTART_DIR; without the harness's environment they skip.
import assert from "node:assert/strict";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { test } from "node:test";
import { Metadata } from "@grpc/grpc-js";
import { ROOT_CONTEXT, TraceFlags, context, trace } from "@opentelemetry/api";
import {
  DeadlineExceededError,
  LooperClient,
  NotFoundError,
  PermissionDeniedError,
  UnauthenticatedError,
} from "../dist/index.js";
import { CreateCredentialRequest, Role } from "../dist/gen/looper/v1/access.js";

// The OTel API alone keeps no active context; a minimal synchronous manager for the test.
class StackContextManager {
  stack = [ROOT_CONTEXT];
  active() { return this.stack.at(-1); }
  with(ctx, fn, thisArg, ...args) {
    this.stack.push(ctx);
    try { return fn.call(thisArg, ...args); } finally { this.stack.pop(); }
  }
  bind(_ctx, target) { return target; }
  enable() { return this; }
  disable() { this.stack = [ROOT_CONTEXT]; return this; }
}
context.setGlobalContextManager(new StackContextManager());

const skip = process.env.LOOPER_DECISION_ADDR ? false : "LOOPER_DECISION_ADDR is not set; the harness in tests/clients sets it";

function env(name) {
  const value = process.env[name];
  assert.ok(value, `${name} is not set`);
  return value;
}

const targets = () => ({
  decision: env("LOOPER_DECISION_ADDR"), feedback: env("LOOPER_FEEDBACK_ADDR"), trainer: env("LOOPER_TRAINER_ADDR"),
});
// A client of the harness's services, with the administrator's token (LOOPER_TOKEN).
const client = (options = {}) => new LooperClient({ ...targets(), token: env("LOOPER_TOKEN"), ...options });

async function awaitFile(dir, name) {
  const deadline = Date.now() + 120_000;
  while (!existsSync(join(dir, name))) {
    assert.ok(Date.now() < deadline, `the harness did not create ${name} within 2 minutes`);
    await sleep(50);
  }
}

test("retries UNAVAILABLE across a restart",
  { skip: skip || (process.env.LOOPER_RESTART_DIR ? false : "LOOPER_RESTART_DIR is not set") }, async () => {
    const dir = env("LOOPER_RESTART_DIR");
    const useCase = env("LOOPER_USE_CASE");
    const decisionId = `${env("LOOPER_RUN_ID")}-ts-restart`;
    const input = { useCase, decisionId, subject: { user_id: "u-ts" }, context: { hour_of_day: 4 } };
    const outcome = { useCase, decisionId, outcome: "clicked", value: 1, eventId: `${decisionId}-ev` };
    // A retry budget far beyond a restart (seconds): ~1s between attempts once backed off.
    const c = client({ maxAttempts: 100, timeoutMs: 90_000 });
    try {
      // Connected first, so the calls below meet services that went away, not ones never reached.
      await assert.rejects(c.getDecision(useCase, decisionId), NotFoundError);
      await assert.rejects(c.getLabel(useCase, decisionId), NotFoundError);
      writeFileSync(join(dir, "ready"), "");
      await awaitFile(dir, "stopped");

      // Both calls are started on their channels before the promises are returned.
      const decided = c.decideResponse(input);
      const logged = c.logFeedback(outcome);
      writeFileSync(join(dir, "calling"), "");

      const response = await decided;
      assert.equal(response.decision.decisionId, decisionId);
      assert.equal(response.replayed, false, "an earlier attempt had written the decision");
      assert.equal(await logged, true, "the event was accepted");
      // Written once: the decision reads back and replays, the event is a duplicate when resent.
      assert.equal((await c.getDecision(useCase, decisionId)).decision.action, response.decision.action);
      assert.equal((await c.decideResponse(input)).replayed, true);
      assert.equal(await c.logFeedback(outcome), false, "a resent event is a duplicate");
    } finally { c.close(); }
  });

test("the deadline fails a call the server cannot answer in time", { skip }, async () => {
  // The client's timeout of 1ms is every call's gRPC deadline; no server decides 200 times in
  // 1ms, so the call fails with the typed error, while the caller's own deadline wins.
  const useCase = env("LOOPER_USE_CASE");
  const runId = env("LOOPER_RUN_ID");
  const batch = (prefix) => Array.from({ length: 200 }, (_, i) => ({
    useCase, decisionId: `${runId}${prefix}${String(i).padStart(3, "0")}`, subject: { user_id: "u-ts" }, context: { hour_of_day: 5 },
  }));
  const c = client({ timeoutMs: 1, maxAttempts: 1 });
  try {
    const results = await c.decideBatch(batch("-ts-in-time-"), { timeoutMs: 60_000 });
    assert.equal(results.filter((r) => r.response).length, 200);
    await assert.rejects(c.decideBatch(batch("-ts-too-late-")), DeadlineExceededError);
  } finally { c.close(); }
});

test("the caller's trace reaches the decision log",
  { skip: skip || (process.env.LOOPER_TRACE_ID ? false : "LOOPER_TRACE_ID is not set") }, async () => {
    // A Decide made under the caller's trace is logged with a traceparent of that trace: the
    // Decision service's own span, a child of the caller's.
    const traceId = env("LOOPER_TRACE_ID");
    const spanId = "00f067aa0ba902b7";
    const useCase = env("LOOPER_USE_CASE");
    const decisionId = `${env("LOOPER_RUN_ID")}-ts-traced`;
    const c = client();
    try {
      const parent = trace.setSpanContext(ROOT_CONTEXT, { traceId, spanId, traceFlags: TraceFlags.SAMPLED });
      await context.with(parent, () => c.decide({ useCase, decisionId, subject: { user_id: "u-ts" }, context: { hour_of_day: 6 } }));
      const [, loggedTrace, loggedSpan] = (await c.getDecision(useCase, decisionId)).traceparent.split("-");
      assert.equal(loggedTrace, traceId, "the caller's trace");
      assert.notEqual(loggedSpan, spanId, "the service's own span");
    } finally { c.close(); }
  });

test("calls without the right credential fail with typed errors", { skip }, async () => {
  // Without a token, or with one Looper does not know, a call is UnauthenticatedError; with a
  // credential that may only read the use case (created through the Access service), a Decide
  // is PermissionDeniedError while a read goes through.
  const useCase = env("LOOPER_USE_CASE");
  const runId = env("LOOPER_RUN_ID");
  const input = { useCase, decisionId: `${runId}-ts-denied`, subject: { user_id: "u-ts" } };
  const admin = client();
  // The Trainer (and Access) service starts last after a restart: wait for it to be ready.
  const unary = (method, request) => new Promise((resolve, reject) => method.call(admin.access, request,
    new Metadata({ waitForReady: true }), { deadline: new Date(Date.now() + 60_000) }, (e, r) => (e ? reject(e) : resolve(r))));
  const reader = await unary(admin.access.createCredential, CreateCredentialRequest.fromPartial({
    name: `${runId}-ts-reader`, grants: [{ useCase, roles: [Role.ROLE_READ] }],
  }));
  const unknown = client({ token: "lpr_not-a-token", maxAttempts: 1 });
  const readOnly = client({ token: reader.token, maxAttempts: 1 });
  const saved = env("LOOPER_TOKEN");
  delete process.env.LOOPER_TOKEN; // and no token at all
  let anonymous;
  try {
    anonymous = new LooperClient({ ...targets(), maxAttempts: 1 });
  } finally { process.env.LOOPER_TOKEN = saved; }
  try {
    await assert.rejects(anonymous.decide(input), UnauthenticatedError);
    await assert.rejects(unknown.decide(input), UnauthenticatedError);
    await assert.rejects(readOnly.decide(input), PermissionDeniedError);
    await assert.rejects(readOnly.getDecision(useCase, input.decisionId), NotFoundError,
      "a reader may read; the decision was never made");
  } finally {
    [anonymous, unknown, readOnly].forEach((c) => c.close());
    await unary(admin.access.revokeCredential, { credentialId: reader.credential.credentialId });
    admin.close();
  }
});
