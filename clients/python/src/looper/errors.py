"""Typed errors for Looper calls, carrying the server's field violations."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class LooperError(Exception):
    """A failed Looper call: ``code`` is the gRPC status code, ``violations`` the bad fields."""

    def __init__(self, code: grpc.StatusCode, message: str, violations: list[FieldViolation] | None = None,
                 service: str | None = None):
        self.code = code
        self.message = message
        self.violations = violations or []
        self.service = service  # the service called and its address, e.g. "Trainer service at 127.0.0.1:50053"
        super().__init__(f"{code.name}: {message}")


class InvalidArgumentError(LooperError):
    """The request had bad fields; see ``violations``."""


class NotFoundError(LooperError):
    """The use case, decision, run or model does not exist."""


class FailedPreconditionError(LooperError):
    """The system is not in a state to do this (e.g. nothing to roll back to)."""


class ResourceExhaustedError(LooperError):
    """A size or rate limit was exceeded."""


class UnavailableError(LooperError):
    """The service could not be reached, even after retries."""


class DeadlineExceededError(LooperError):
    """The call did not finish within its deadline."""


class UnauthenticatedError(LooperError):
    """The call carried no credential, or one Looper does not know (unknown, rotated or revoked)."""


class PermissionDeniedError(LooperError):
    """The credential lacks the role the call needs in its use case."""


_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
}


# Codes that usually mean the call never reached a server: their message names the
# service and the address tried, which is what the caller has to check.
_UNREACHED = {
    grpc.StatusCode.UNAVAILABLE: "is unavailable",
    grpc.StatusCode.DEADLINE_EXCEEDED: "did not answer in time",
}


def from_rpc_error(error: grpc.RpcError, called: str | None = None) -> LooperError:
    """Maps a gRPC error to its typed LooperError, decoding BadRequest details. ``called``
    names the service and address (``Decision service at 127.0.0.1:50051``) for the message
    of a call that reached no server: ``Decision service at 127.0.0.1:50051 is unavailable: ...``."""
    violations: list[FieldViolation] = []
    status = rpc_status.from_call(error) if hasattr(error, "trailing_metadata") else None
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                violations += [FieldViolation(v.field, v.description) for v in bad.field_violations]
    message = error.details() or ""
    if called and error.code() in _UNREACHED:
        message = f"{called} {_UNREACHED[error.code()]}: {message}"
    kind = _BY_CODE.get(error.code(), LooperError)
    return kind(error.code(), message, violations, service=called)
