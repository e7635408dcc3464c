export {
  LooperClient,
  decideRequest,
  double,
  featureValue,
  int64,
  outcomeEvent,
  retryServiceConfig,
  type CallOptions,
  type DecideInput,
  type Features,
  type LooperClientOptions,
  type OutcomeInput,
  type Scalar,
} from "./client.js";
export {
  DeadlineExceededError,
  FailedPreconditionError,
  InvalidArgumentError,
  LooperError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnauthenticatedError,
  UnavailableError,
  fieldViolations,
  fromServiceError,
  type CallTarget,
  type FieldViolation,
} from "./errors.js";
export { TOKEN_ENV, bearerTokenInterceptor } from "./token.js";
export { traceMetadata } from "./tracing.js";
export type { DecideBatchResult, DecideResponse, Decision, GetDecisionResponse } from "./gen/looper/v1/decision.js";
export { FeedbackStatus, LabelState, type GetLabelResponse, type OutcomeEvent } from "./gen/looper/v1/feedback.js";
export { DecisionType, type FeatureValue } from "./gen/looper/v1/types.js";
