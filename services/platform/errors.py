"""Domain errors. The gRPC adapters map them to status codes; the domain never sees gRPC."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldViolation:
    """One bad field: its path in the request (``event.decision_id``) and why it is bad."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class LooperError(Exception):
    """Base of the errors a caller can act on."""


class InvalidArgument(LooperError):
    """The request is malformed; ``violations`` names each bad field."""

    def __init__(self, violations: list[FieldViolation]):
        self.violations = list(violations)
        super().__init__("; ".join(str(v) for v in self.violations))

    @classmethod
    def single(cls, field: str, reason: str) -> "InvalidArgument":
        return cls([FieldViolation(field, reason)])


class NotFound(LooperError):
    """A named thing (use case, decision, run, model version) does not exist."""


class FailedPrecondition(LooperError):
    """The request is well formed but the system is not in a state to do it."""


class ResourceExhausted(LooperError):
    """A size or rate limit was exceeded."""


class Unavailable(LooperError):
    """The call could not be served now but may succeed if retried."""


class DeadlineExceeded(LooperError):
    """The caller's deadline passed before the work was done; nothing was stored."""
