import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { BadRequest } from "./gen/google/rpc/error_details.js";
import { Status } from "./gen/google/rpc/status.js";

/** A bad field of a request, from the server's google.rpc.BadRequest detail. */
export interface FieldViolation {
  field: string;
  description: string;
}

/** The service a call went to, as errors name it, and the address the client was given. */
export interface CallTarget {
  service: "Decision" | "Feedback" | "Trainer" | "Access";
  address: string;
}

/**
 * A failed Looper call: the gRPC status code, the server's message and, for
 * INVALID_ARGUMENT, the field violations decoded from the grpc-status-details-bin trailer.
 * An UNAVAILABLE one names the service and the address it tried.
 * Test the kind with `instanceof InvalidArgumentError` (and friends) or by `code`.
 */
export class LooperError extends Error {
  readonly code: status;
  readonly violations: FieldViolation[];
  readonly metadata?: Metadata;
  readonly target?: CallTarget;

  constructor(code: status, message: string, violations: FieldViolation[] = [], metadata?: Metadata, target?: CallTarget) {
    super(code === status.UNAVAILABLE && target
      ? `${target.service} service at ${target.address} is unavailable: ${message}`
      : `${status[code] ?? code}: ${message}`);
    this.name = new.target.name;
    this.code = code;
    this.violations = violations;
    this.metadata = metadata;
    this.target = target;
  }

  /** The violation of one field, if there is one. */
  violation(field: string): FieldViolation | undefined {
    return this.violations.find((v) => v.field === field);
  }
}

/** The request had bad fields; see `violations`. */
export class InvalidArgumentError extends LooperError {}
/** The use case, decision, run or model does not exist. */
export class NotFoundError extends LooperError {}
/** The system is not in a state to do this. */
export class FailedPreconditionError extends LooperError {}
/** A size or rate limit was exceeded. */
export class ResourceExhaustedError extends LooperError {}
/** The service could not be reached, even after retries. */
export class UnavailableError extends LooperError {}
/** The call did not finish within its deadline. */
export class DeadlineExceededError extends LooperError {}
/** The call carried no credential, or one Looper does not know (unknown, rotated or revoked). */
export class UnauthenticatedError extends LooperError {}
/** The credential lacks the role the call needs in its use case. */
export class PermissionDeniedError extends LooperError {}

const BY_CODE: Partial<Record<status, typeof LooperError>> = {
  [status.INVALID_ARGUMENT]: InvalidArgumentError,
  [status.NOT_FOUND]: NotFoundError,
  [status.FAILED_PRECONDITION]: FailedPreconditionError,
  [status.RESOURCE_EXHAUSTED]: ResourceExhaustedError,
  [status.UNAVAILABLE]: UnavailableError,
  [status.DEADLINE_EXCEEDED]: DeadlineExceededError,
  [status.UNAUTHENTICATED]: UnauthenticatedError,
  [status.PERMISSION_DENIED]: PermissionDeniedError,
};

const BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest";

/** The field violations in a call's grpc-status-details-bin trailer. */
export function fieldViolations(metadata: Metadata | undefined): FieldViolation[] {
  const raw = metadata?.get("grpc-status-details-bin")[0];
  if (!raw || typeof raw === "string") return [];
  const violations: FieldViolation[] = [];
  try {
    for (const detail of Status.decode(raw).details) {
      if (detail.typeUrl === BAD_REQUEST_TYPE) {
        for (const v of BadRequest.decode(detail.value).fieldViolations) {
          violations.push({ field: v.field, description: v.description });
        }
      }
    }
  } catch {
    // a malformed trailer leaves the violations found so far
  }
  return violations;
}

/** Maps a gRPC error (of a call to `target`, when given) to its typed LooperError. */
export function fromServiceError(error: unknown, target?: CallTarget): LooperError | unknown {
  if (error instanceof LooperError) return error;
  const e = error as Partial<ServiceError>;
  if (typeof e?.code !== "number") return error;
  const Kind = BY_CODE[e.code as status] ?? LooperError;
  return new Kind(e.code, e.details ?? e.message ?? "", fieldViolations(e.metadata), e.metadata, target);
}
