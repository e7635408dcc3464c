import { randomUUID } from "node:crypto";
import {
  credentials as grpcCredentials,
  type CallOptions as GrpcCallOptions,
  type ChannelCredentials,
  type Client,
  type ClientOptions,
  type ClientUnaryCall,
  type Metadata,
  type ServiceError,
} from "@grpc/grpc-js";
import { fromServiceError, type CallTarget } from "./errors.js";
import {
  DecisionServiceClient,
  type DecideBatchResult,
  type DecideRequest,
  type DecideResponse,
  type Decision,
  type GetDecisionResponse,
} from "./gen/looper/v1/decision.js";
import {
  FeedbackServiceClient,
  FeedbackStatus,
  type GetLabelResponse,
  type OutcomeEvent,
} from "./gen/looper/v1/feedback.js";
import { AccessServiceClient } from "./gen/looper/v1/access.js";
import { TrainerServiceClient, type ApplyBlueprintResponse } from "./gen/looper/v1/trainer.js";
import type { FeatureValue } from "./gen/looper/v1/types.js";
import { bearerTokenInterceptor, checkTokenTransport, resolveToken } from "./token.js";
import { traceMetadata } from "./tracing.js";

/** A feature value: integers become int64, other numbers double; wrap with `double()` to force. */
export type Scalar = number | bigint | string | boolean | null | undefined | FeatureValue;
export type Features = Record<string, Scalar>;

/** Forces a number to be sent as a double feature, e.g. `double(1)`. */
export function double(value: number): FeatureValue {
  return { doubleValue: value };
}

/** A number as an int64 feature. */
export function int64(value: number | bigint): FeatureValue {
  return { int64Value: Number(value) };
}

/** A JavaScript value as a typed FeatureValue. */
export function featureValue(value: Scalar): FeatureValue {
  if (value === null || value === undefined) return {};
  switch (typeof value) {
    case "boolean":
      return { boolValue: value };
    case "bigint":
      return { int64Value: Number(value) };
    case "number":
      return Number.isInteger(value) ? { int64Value: value } : { doubleValue: value };
    case "string":
      return { stringValue: value };
    case "object":
      return value;
  }
  throw new TypeError(`feature values must be number, bigint, string, boolean or null, not ${typeof value}`);
}

function features(values: Features | undefined): Record<string, FeatureValue> {
  const out: Record<string, FeatureValue> = {};
  for (const [name, value] of Object.entries(values ?? {})) out[name] = featureValue(value);
  return out;
}

/** One decision to make. `decisionId` is yours: the idempotency key that feedback refers to. */
export interface DecideInput {
  useCase: string;
  decisionId: string;
  subject: Record<string, string>;
  context?: Features;
  candidates?: Array<string | { actionId: string; features?: Features }>;
}

/** An outcome of a decision. A missing `eventId` gets a fresh one, fixed across retries. */
export interface OutcomeInput {
  useCase: string;
  decisionId: string;
  outcome: string;
  value?: number;
  eventId?: string;
  eventTime?: Date;
  /** The item of a ranking the outcome concerns (empty: the decision as a whole). */
  actionId?: string;
}

/** The wire DecideRequest of a DecideInput. */
export function decideRequest(input: DecideInput): DecideRequest {
  return {
    useCase: input.useCase,
    decisionId: input.decisionId,
    subject: { ...input.subject },
    context: features(input.context),
    candidates: (input.candidates ?? []).map((c) =>
      typeof c === "string" ? { actionId: c, features: {} } : { actionId: c.actionId, features: features(c.features) },
    ),
  };
}

/** The wire OutcomeEvent of an OutcomeInput, with its event id generated when missing. */
export function outcomeEvent(input: OutcomeInput): OutcomeEvent {
  return {
    eventId: input.eventId ?? randomUUID().replaceAll("-", ""),
    useCase: input.useCase,
    decisionId: input.decisionId,
    outcome: input.outcome,
    value: input.value ?? 1,
    eventTime: input.eventTime,
    actionId: input.actionId ?? "",
  };
}

export interface LooperClientOptions {
  /** DecisionService address, host:port (default 127.0.0.1:50051). */
  decision?: string;
  /** FeedbackService address (default 127.0.0.1:50052). */
  feedback?: string;
  /** TrainerService address (default 127.0.0.1:50053). */
  trainer?: string;
  /** Deadline of each call in milliseconds (default 5000). */
  timeoutMs?: number;
  /**
   * Attempts per call on UNAVAILABLE (default 4; 1 disables retries). The waits between
   * attempts grow from 50ms to 1s and no attempt outlives the call's deadline, so this is the
   * retry budget: the default rides out a blip of well under a second; riding out a service
   * restart, which takes seconds, needs more attempts and a `timeoutMs` to match.
   */
  maxAttempts?: number;
  /**
   * The bearer token every call carries as `authorization: Bearer <token>`; without it the
   * client uses the LOOPER_TOKEN environment variable, and sends no token when that is unset
   * too. Without TLS the constructor refuses to send a token to an address that is not
   * loopback: it would cross the network in the clear.
   */
  token?: string;
  /**
   * TLS: true for the system roots, or PEM buffers (`privateKey` and `certChain` for mutual
   * TLS, where the client certificate is the credential). Ignored when `credentials` is given.
   */
  tls?: boolean | { rootCerts?: Buffer; privateKey?: Buffer; certChain?: Buffer };
  /** Any channel credentials. */
  credentials?: ChannelCredentials;
  /** Extra grpc-js client options (e.g. interceptors, which run before the client's own). */
  clientOptions?: Partial<ClientOptions>;
}

/** Per-call options. */
export interface CallOptions {
  /** This call's deadline in milliseconds, instead of the client's. */
  timeoutMs?: number;
  /** Cancels the call when aborted. */
  signal?: AbortSignal;
}

/** gRPC's retry policy for the Looper services: UNAVAILABLE, backoff from 50ms doubling to 1s. */
export function retryServiceConfig(maxAttempts: number): string {
  const name = ["DecisionService", "FeedbackService", "TrainerService"].map((s) => ({ service: `looper.v1.${s}` }));
  const method: Record<string, unknown> = { name };
  if (maxAttempts > 1) {
    method.retryPolicy = {
      maxAttempts,
      initialBackoff: "0.05s",
      maxBackoff: "1s",
      backoffMultiplier: 2,
      retryableStatusCodes: ["UNAVAILABLE"],
    };
  }
  return JSON.stringify({ methodConfig: [method] });
}

type Unary<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<GrpcCallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

/**
 * The Looper client: `decide` at a decision point, `logFeedback` when you learn what
 * happened. Create it once and reuse it: it holds one channel per service. Every call has a
 * deadline, is retried with backoff on UNAVAILABLE (safe: each request carries its
 * idempotency id), carries the active OpenTelemetry trace as W3C traceparent when
 * @opentelemetry/api is installed, carries the bearer token (`token`, else LOOPER_TOKEN), and
 * rejects with a typed LooperError, which names the service and its address when it could not
 * be reached. `access` is the Access service (credentials), hosted beside the Trainer.
 */
export class LooperClient {
  readonly decision: DecisionServiceClient;
  readonly feedback: FeedbackServiceClient;
  readonly trainer: TrainerServiceClient;
  readonly access: AccessServiceClient;
  private readonly timeoutMs: number;
  private readonly targets: Map<Client, CallTarget>;

  constructor(options: LooperClientOptions = {}) {
    const maxAttempts = options.maxAttempts ?? 4;
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1) throw new RangeError("maxAttempts must be at least 1");
    this.timeoutMs = options.timeoutMs ?? 5000;
    let creds = options.credentials;
    if (!creds) {
      const tls = options.tls;
      creds = !tls
        ? grpcCredentials.createInsecure()
        : tls === true
          ? grpcCredentials.createSsl()
          : grpcCredentials.createSsl(tls.rootCerts ?? null, tls.privateKey ?? null, tls.certChain ?? null);
    }
    const decision = options.decision ?? "127.0.0.1:50051";
    const feedback = options.feedback ?? "127.0.0.1:50052";
    const trainer = options.trainer ?? "127.0.0.1:50053";
    const interceptors = [...(options.clientOptions?.interceptors ?? [])];
    const token = resolveToken(options.token);
    if (token) {
      checkTokenTransport(creds, [decision, feedback, trainer]);
      interceptors.push(bearerTokenInterceptor(token));
    }
    const clientOptions: Partial<ClientOptions> = {
      "grpc.service_config": retryServiceConfig(maxAttempts),
      "grpc.enable_retries": maxAttempts > 1 ? 1 : 0,
      // grpc-js caps a retry policy at 5 attempts unless the channel allows more.
      "grpc-node.retry_max_attempts_limit": maxAttempts,
      ...options.clientOptions,
      interceptors,
    };
    this.decision = new DecisionServiceClient(decision, creds, clientOptions);
    this.feedback = new FeedbackServiceClient(feedback, creds, clientOptions);
    this.trainer = new TrainerServiceClient(trainer, creds, clientOptions);
    this.access = new AccessServiceClient(trainer, creds, clientOptions);
    this.targets = new Map<Client, CallTarget>([
      [this.decision, { service: "Decision", address: decision }],
      [this.feedback, { service: "Feedback", address: feedback }],
      [this.trainer, { service: "Trainer", address: trainer }],
      [this.access, { service: "Access", address: trainer }],
    ]);
  }

  private call<Req, Res>(client: Client, method: Unary<Req, Res>, request: Req, options?: CallOptions): Promise<Res> {
    const metadata = traceMetadata(); // the active context, captured when the call is made
    const deadline = new Date(Date.now() + (options?.timeoutMs ?? this.timeoutMs));
    return new Promise<Res>((resolve, reject) => {
      if (options?.signal?.aborted) {
        reject(options.signal.reason);
        return;
      }
      const call = method.call(client, request, metadata, { deadline }, (error, response) => {
        options?.signal?.removeEventListener("abort", cancel);
        if (error) reject(fromServiceError(error, this.targets.get(client)));
        else resolve(response);
      });
      const cancel = () => call.cancel();
      options?.signal?.addEventListener("abort", cancel, { once: true });
    });
  }

  /** Makes one decision; asking again with the same decisionId returns the logged one. */
  async decide(input: DecideInput, options?: CallOptions): Promise<Decision> {
    const response = await this.decideResponse(input, options);
    return response.decision!;
  }

  /** Like `decide`, with the whole response: `replayed` tells whether it had been decided before. */
  decideResponse(input: DecideInput, options?: CallOptions): Promise<DecideResponse> {
    return this.call(this.decision, this.decision.decide as Unary<DecideRequest, DecideResponse>, decideRequest(input), options);
  }

  /** Makes many decisions in one call; each result holds a response or an error. */
  async decideBatch(inputs: DecideInput[], options?: CallOptions): Promise<DecideBatchResult[]> {
    const response = await this.call(this.decision, this.decision.decideBatch as Unary<unknown, { results: DecideBatchResult[] }>,
      { requests: inputs.map(decideRequest) }, options);
    return response.results;
  }

  /** Reads back a logged decision with the features it used. */
  getDecision(useCase: string, decisionId: string, options?: CallOptions): Promise<GetDecisionResponse> {
    return this.call(this.decision, this.decision.getDecision as Unary<unknown, GetDecisionResponse>,
      { useCase, decisionId }, options);
  }

  /** Logs an outcome; resolves false when its event id had been logged before. */
  async logFeedback(input: OutcomeInput, options?: CallOptions): Promise<boolean> {
    const response = await this.call(this.feedback, this.feedback.logFeedback as Unary<unknown, { status: FeedbackStatus }>,
      { event: outcomeEvent(input) }, options);
    return response.status === FeedbackStatus.FEEDBACK_STATUS_ACCEPTED;
  }

  /** Logs many outcomes in one call; one accepted flag per event. */
  async logFeedbackBatch(inputs: OutcomeInput[], options?: CallOptions): Promise<boolean[]> {
    const response = await this.call(this.feedback,
      this.feedback.logFeedbackBatch as Unary<unknown, { statuses: FeedbackStatus[] }>,
      { events: inputs.map(outcomeEvent) }, options);
    return response.statuses.map((s) => s === FeedbackStatus.FEEDBACK_STATUS_ACCEPTED);
  }

  /** Reads the label joined for a decision so far. */
  getLabel(useCase: string, decisionId: string, options?: CallOptions): Promise<GetLabelResponse> {
    return this.call(this.feedback, this.feedback.getLabel as Unary<unknown, GetLabelResponse>, { useCase, decisionId }, options);
  }

  /** Applies a blueprint YAML document. */
  applyBlueprint(specYaml: string, options?: CallOptions): Promise<ApplyBlueprintResponse> {
    return this.call(this.trainer, this.trainer.applyBlueprint as Unary<unknown, ApplyBlueprintResponse>, { specYaml }, options);
  }

  /** Closes the channels. */
  close(): void {
    this.decision.close();
    this.feedback.close();
    this.trainer.close();
    this.access.close();
  }
}
