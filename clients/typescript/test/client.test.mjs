// The SDK against an in-process fake of the services that records what it receives.
import assert from "node:assert/strict";
import net from "node:net";
import { after, before, beforeEach, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { ROOT_CONTEXT, TraceFlags, context, trace } from "@opentelemetry/api";
import {
  DeadlineExceededError,
  InvalidArgumentError,
  LooperClient,
  LooperError,
  UnavailableError,
  bearerTokenInterceptor,
  decideRequest,
  double,
} from "../dist/index.js";
import { DecideResponse, DecisionServiceClient, DecisionServiceService } from "../dist/gen/looper/v1/decision.js";
import { FeedbackServiceService, FeedbackStatus } from "../dist/gen/looper/v1/feedback.js";
import { BadRequest } from "../dist/gen/google/rpc/error_details.js";
import { Status } from "../dist/gen/google/rpc/status.js";

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

const seen = { unavailable: 0, eventIds: [], traceparents: [], authorizations: [], deadlinesMs: [], blockMs: 0 };
let server;
let address;

function record(call) {
  seen.traceparents.push(call.metadata.get("traceparent").join(","));
  seen.authorizations.push(call.metadata.get("authorization").join(","));
  const deadline = call.getDeadline();
  const at = deadline instanceof Date ? deadline.getTime() : Number(deadline);
  seen.deadlinesMs.push(Number.isFinite(at) ? at - Date.now() : Infinity);
  if (seen.unavailable > 0) {
    seen.unavailable--;
    return { code: grpc.status.UNAVAILABLE, details: "try again" };
  }
  return null;
}

before(async () => {
  server = new grpc.Server();
  server.addService(DecisionServiceService, {
    decide(call, callback) {
      const failure = record(call);
      if (failure) return callback(failure);
      if (!call.request.decisionId) {
        const detail = BadRequest.encode({ fieldViolations: [{ field: "decision_id", description: "is required" }] }).finish();
        const metadata = new grpc.Metadata();
        metadata.set("grpc-status-details-bin", Buffer.from(Status.encode({
          code: 3, message: "decision_id: is required",
          details: [{ typeUrl: "type.googleapis.com/google.rpc.BadRequest", value: detail }],
        }).finish()));
        return callback({ code: grpc.status.INVALID_ARGUMENT, details: "decision_id: is required", metadata });
      }
      setTimeout(() => callback(null, DecideResponse.fromPartial({ decision: { decisionId: call.request.decisionId, action: "true" } })),
        seen.blockMs);
    },
  });
  server.addService(FeedbackServiceService, {
    logFeedback(call, callback) {
      seen.eventIds.push(call.request.event.eventId);
      const failure = record(call);
      if (failure) return callback(failure);
      callback(null, { status: FeedbackStatus.FEEDBACK_STATUS_ACCEPTED });
    },
  });
  const port = await new Promise((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  address = `127.0.0.1:${port}`;
});

after(() => server.forceShutdown());

beforeEach(() => Object.assign(seen, { unavailable: 0, eventIds: [], traceparents: [], authorizations: [], deadlinesMs: [], blockMs: 0 }));

const client = (options = {}) => new LooperClient({ decision: address, feedback: address, trainer: address, ...options });

test("retries UNAVAILABLE with the same event id", async () => {
  seen.unavailable = 2;
  const c = client();
  try {
    assert.equal(await c.logFeedback({ useCase: "u", decisionId: "d", outcome: "clicked" }), true);
  } finally { c.close(); }
  assert.equal(seen.eventIds.length, 3, "attempts");
  assert.ok(seen.eventIds[0].length > 0);
  assert.equal(new Set(seen.eventIds).size, 1, `one event id across retries: ${seen.eventIds}`);
});

test("maxAttempts may exceed grpc-js's default cap of 5", async () => {
  seen.unavailable = 5;
  const c = client({ maxAttempts: 6 });
  try {
    assert.equal(await c.logFeedback({ useCase: "u", decisionId: "d", outcome: "clicked" }), true);
  } finally { c.close(); }
  assert.equal(seen.eventIds.length, 6, "attempts");
});

test("UNAVAILABLE names the service and the address it tried", async () => {
  const closed = net.createServer();
  await new Promise((resolve) => closed.listen(0, "127.0.0.1", resolve));
  const target = `127.0.0.1:${closed.address().port}`;
  await new Promise((resolve) => closed.close(resolve)); // free now: nothing listens there
  const c = new LooperClient({ decision: target, feedback: target, maxAttempts: 1 });
  try {
    await assert.rejects(c.decide({ useCase: "u", decisionId: "d", subject: {} }), (error) => {
      assert.ok(error instanceof UnavailableError && error instanceof LooperError, String(error));
      assert.equal(error.code, grpc.status.UNAVAILABLE);
      assert.ok(error.message.startsWith(`Decision service at ${target} is unavailable: `), error.message);
      return true;
    });
    await assert.rejects(c.logFeedback({ useCase: "u", decisionId: "d", outcome: "clicked" }), (error) => {
      assert.ok(error instanceof UnavailableError, String(error));
      assert.ok(error.message.startsWith(`Feedback service at ${target} is unavailable: `), error.message);
      assert.deepEqual(error.target, { service: "Feedback", address: target });
      return true;
    });
  } finally { c.close(); }
});

test("gives up after maxAttempts with a typed error", async () => {
  seen.unavailable = 100;
  const c = client({ maxAttempts: 2 });
  try {
    await assert.rejects(c.decide({ useCase: "u", decisionId: "d", subject: {} }), UnavailableError);
  } finally { c.close(); }
  assert.equal(seen.traceparents.length, 2, "attempts");
});

test("INVALID_ARGUMENT carries the field violations", async () => {
  const c = client();
  try {
    const error = await c.decide({ useCase: "u", decisionId: "", subject: {} }).then(() => null, (e) => e);
    assert.ok(error instanceof InvalidArgumentError && error instanceof LooperError, String(error));
    assert.equal(error.code, grpc.status.INVALID_ARGUMENT);
    assert.deepEqual(error.violations, [{ field: "decision_id", description: "is required" }]);
    assert.deepEqual(error.violation("decision_id"), { field: "decision_id", description: "is required" });
  } finally { c.close(); }
});

test("propagates the active trace as traceparent", async () => {
  const c = client();
  try {
    const parent = trace.setSpanContext(context.active(), {
      traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: "00f067aa0ba902b7", traceFlags: TraceFlags.SAMPLED,
    });
    await context.with(parent, () => c.decide({ useCase: "u", decisionId: "d", subject: {} }));
    await c.decide({ useCase: "u", decisionId: "d", subject: {} });
  } finally { c.close(); }
  assert.equal(seen.traceparents[0], "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  assert.equal(seen.traceparents[1], "", "no trace, no traceparent");
});

test("every call has the default deadline", async () => {
  seen.blockMs = 1000;
  const c = client({ timeoutMs: 150, maxAttempts: 1 });
  try {
    const began = Date.now();
    await assert.rejects(c.decide({ useCase: "u", decisionId: "d", subject: {} }), DeadlineExceededError);
    assert.ok(Date.now() - began < 900, "the deadline was not applied");
  } finally { c.close(); }
  assert.ok(seen.deadlinesMs[0] > 0 && seen.deadlinesMs[0] <= 150, `server saw ${seen.deadlinesMs}`);
});

test("feature values are typed", () => {
  const r = decideRequest({ useCase: "u", decisionId: "d", subject: {}, context: { i: 3, f: 0.5, d: double(2), s: "x", b: true, n: null } });
  assert.deepEqual(r.context, { i: { int64Value: 3 }, f: { doubleValue: 0.5 }, d: { doubleValue: 2 }, s: { stringValue: "x" }, b: { boolValue: true }, n: {} });
});

/** Runs `fn` with LOOPER_TOKEN set to `value` (unset when undefined), then restores it. */
function withTokenEnv(value, fn) {
  const saved = process.env.LOOPER_TOKEN;
  if (value === undefined) delete process.env.LOOPER_TOKEN;
  else process.env.LOOPER_TOKEN = value;
  try { return fn(); } finally {
    if (saved === undefined) delete process.env.LOOPER_TOKEN;
    else process.env.LOOPER_TOKEN = saved;
  }
}

test("every attempt carries the bearer token", async () => {
  seen.unavailable = 1;
  const c = client({ token: "lpr_secret" });
  try {
    await c.decide({ useCase: "u", decisionId: "d", subject: {} });
    await c.logFeedback({ useCase: "u", decisionId: "d", outcome: "clicked" });
  } finally { c.close(); }
  assert.deepEqual(seen.authorizations, ["Bearer lpr_secret", "Bearer lpr_secret", "Bearer lpr_secret"]);
});

test("the token falls back to LOOPER_TOKEN", async () => {
  const clients = [
    withTokenEnv("lpr_from_env\n", () => client()),
    withTokenEnv("lpr_from_env", () => client({ token: "lpr_from_option" })),
    withTokenEnv(undefined, () => client()),
  ];
  try {
    for (const c of clients) await c.decide({ useCase: "u", decisionId: "d", subject: {} });
  } finally { clients.forEach((c) => c.close()); }
  assert.deepEqual(seen.authorizations, ["Bearer lpr_from_env", "Bearer lpr_from_option", ""]);
});

test("refuses to send a token in the clear to another host", () => {
  withTokenEnv(undefined, () => {
    for (const remote of ["10.1.2.3:50051", "looper.example.com:50051", "[2001:db8::1]:50051"]) {
      assert.throws(() => new LooperClient({ trainer: remote, token: "lpr_secret" }),
        { message: new RegExp(`^refusing to send a bearer token without TLS to ${remote.replace(/[.[\]]/g, "\\$&")}:`) });
      assert.throws(() => withTokenEnv("lpr_from_env", () => new LooperClient({ trainer: remote })), /without TLS/,
        "LOOPER_TOKEN is refused the same way");
      // With TLS, or without a token, the same target is fine.
      new LooperClient({ trainer: remote, token: "lpr_secret", tls: true }).close();
      new LooperClient({ trainer: remote }).close();
    }
    new LooperClient({ decision: "localhost:50051", feedback: "[::1]:50052", trainer: "127.0.0.2:50053", token: "lpr_secret" })
      .close();
  });
});

test("the interceptor also serves the generated clients", async () => {
  const raw = new DecisionServiceClient(address, grpc.credentials.createInsecure(),
    { interceptors: [bearerTokenInterceptor("lpr_raw")] });
  try {
    await new Promise((resolve, reject) =>
      raw.decide({ useCase: "u", decisionId: "d", subject: {}, context: {}, candidates: [] }, (e, r) => (e ? reject(e) : resolve(r))));
  } finally { raw.close(); }
  assert.deepEqual(seen.authorizations, ["Bearer lpr_raw"]);
});
