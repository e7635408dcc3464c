package dev.looper.client;

import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.rpc.BadRequest;
import io.grpc.Status;
import io.grpc.protobuf.StatusProto;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;

/**
 * A failed Looper call: the gRPC status code, the server's message and, for INVALID_ARGUMENT,
 * the field violations decoded from the grpc-status-details-bin trailer. Catch a subclass to
 * handle one kind.
 */
public class LooperException extends RuntimeException {
  private final Status.Code code;
  private final List<FieldViolation> violations;

  public LooperException(Status.Code code, String message, List<FieldViolation> violations, Throwable cause) {
    this(code, violations, cause, code + ": " + message);
  }

  private LooperException(Status.Code code, List<FieldViolation> violations, Throwable cause, String fullMessage) {
    super(fullMessage, cause);
    this.code = code;
    this.violations = List.copyOf(violations);
  }

  /** The gRPC status code. */
  public Status.Code code() {
    return code;
  }

  /** The bad fields of the request (empty unless the server sent a BadRequest detail). */
  public List<FieldViolation> violations() {
    return violations;
  }

  /** The violation of one field, if there is one. */
  public Optional<FieldViolation> violation(String field) {
    return violations.stream().filter(v -> v.field().equals(field)).findFirst();
  }

  /** The request had bad fields; see {@link #violations()}. */
  public static final class InvalidArgumentException extends LooperException {
    InvalidArgumentException(String m, List<FieldViolation> v, Throwable c) {
      super(Status.Code.INVALID_ARGUMENT, m, v, c);
    }
  }

  /** The use case, decision, run or model does not exist. */
  public static final class NotFoundException extends LooperException {
    NotFoundException(String m, List<FieldViolation> v, Throwable c) {
      super(Status.Code.NOT_FOUND, m, v, c);
    }
  }

  /** The system is not in a state to do this. */
  public static final class FailedPreconditionException extends LooperException {
    FailedPreconditionException(String m, List<FieldViolation> v, Throwable c) {
      super(Status.Code.FAILED_PRECONDITION, m, v, c);
    }
  }

  /** A size or rate limit was exceeded. */
  public static final class ResourceExhaustedException extends LooperException {
    ResourceExhaustedException(String m, List<FieldViolation> v, Throwable c) {
      super(Status.Code.RESOURCE_EXHAUSTED, m, v, c);
    }
  }

  /** The service could not be reached, even after retries; the message names it and its target. */
  public static final class UnavailableException extends LooperException {
    UnavailableException(String m, List<FieldViolation> v, Throwable c) {
      super(Status.Code.UNAVAILABLE, m, v, c);
    }

    UnavailableException(String service, String target, String m, List<FieldViolation> v, Throwable c) {
      super(Status.Code.UNAVAILABLE, v, c, service + " service at " + target + " is unavailable: " + m);
    }
  }

  /** The call carried no credential, or one Looper does not know (unknown, rotated or revoked). */
  public static final class UnauthenticatedException extends LooperException {
    UnauthenticatedException(String m, List<FieldViolation> v, Throwable c) {
      super(Status.Code.UNAUTHENTICATED, m, v, c);
    }
  }

  /** The credential lacks the role the call needs in its use case. */
  public static final class PermissionDeniedException extends LooperException {
    PermissionDeniedException(String m, List<FieldViolation> v, Throwable c) {
      super(Status.Code.PERMISSION_DENIED, m, v, c);
    }
  }

  /** The call did not finish within its deadline. */
  public static final class DeadlineExceededException extends LooperException {
    DeadlineExceededException(String m, List<FieldViolation> v, Throwable c) {
      super(Status.Code.DEADLINE_EXCEEDED, m, v, c);
    }
  }

  /** Maps any failure of a call to its typed LooperException. */
  public static LooperException from(Throwable error) {
    return from(error, null, null);
  }

  /**
   * Maps a failure of a call to {@code service} (e.g. "Decision") at {@code target} to its
   * typed LooperException; an UNAVAILABLE one names the service and the target.
   */
  public static LooperException from(Throwable error, String service, String target) {
    while ((error instanceof CompletionException || error instanceof ExecutionException) && error.getCause() != null) {
      error = error.getCause();
    }
    if (error instanceof LooperException looper) {
      return looper;
    }
    Status status = Status.fromThrowable(error);
    String message = status.getDescription() == null ? "" : status.getDescription();
    List<FieldViolation> violations = new ArrayList<>();
    com.google.rpc.Status details = StatusProto.fromThrowable(error);
    if (details != null) {
      for (Any any : details.getDetailsList()) {
        if (any.is(BadRequest.class)) {
          try {
            for (BadRequest.FieldViolation v : any.unpack(BadRequest.class).getFieldViolationsList()) {
              violations.add(new FieldViolation(v.getField(), v.getDescription()));
            }
          } catch (InvalidProtocolBufferException ignored) {
            // a malformed detail leaves the violations it had
          }
        }
      }
    }
    return switch (status.getCode()) {
      case INVALID_ARGUMENT -> new InvalidArgumentException(message, violations, error);
      case NOT_FOUND -> new NotFoundException(message, violations, error);
      case FAILED_PRECONDITION -> new FailedPreconditionException(message, violations, error);
      case RESOURCE_EXHAUSTED -> new ResourceExhaustedException(message, violations, error);
      case UNAVAILABLE -> service == null ? new UnavailableException(message, violations, error)
          : new UnavailableException(service, target, unavailableReason(message, error), violations, error);
      case DEADLINE_EXCEEDED -> new DeadlineExceededException(message, violations, error);
      case UNAUTHENTICATED -> new UnauthenticatedException(message, violations, error);
      case PERMISSION_DENIED -> new PermissionDeniedException(message, violations, error);
      default -> new LooperException(status.getCode(), message, violations, error);
    };
  }

  /** gRPC-Java says only "io exception" when a connection fails; its cause says why. */
  private static String unavailableReason(String message, Throwable error) {
    Throwable cause = error.getCause();
    if (cause != null && cause.getMessage() != null && !message.contains(cause.getMessage())) {
      return message + " (" + cause.getMessage() + ")";
    }
    return message;
  }
}
