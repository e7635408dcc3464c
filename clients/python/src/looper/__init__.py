"""Looper's Python client: ``LooperClient().decide(...)`` and ``.log_feedback(...)``."""

from looper.aio import AsyncLooperClient
from looper.client import LooperClient, decide_request, feature_value, outcome_event
from looper.errors import (DeadlineExceededError, FailedPreconditionError, FieldViolation, InvalidArgumentError,
                           LooperError, NotFoundError, PermissionDeniedError, ResourceExhaustedError,
                           UnauthenticatedError, UnavailableError)

__all__ = [
    "LooperClient", "AsyncLooperClient", "decide_request", "feature_value", "outcome_event", "LooperError", "FieldViolation",
    "InvalidArgumentError", "NotFoundError", "FailedPreconditionError", "ResourceExhaustedError",
    "UnavailableError", "DeadlineExceededError", "UnauthenticatedError", "PermissionDeniedError",
]
