"""Looper's Python client: ``LooperClient().decide(...)`` and ``.log_feedback(...)``."""

from looper.client import LooperClient, decide_request, feature_value, outcome_event
from looper.errors import (DeadlineExceededError, FailedPreconditionError, FieldViolation, InvalidArgumentError,
                           LooperError, NotFoundError, ResourceExhaustedError, UnavailableError)

__all__ = [
    "LooperClient", "decide_request", "feature_value", "outcome_event", "LooperError", "FieldViolation",
    "InvalidArgumentError", "NotFoundError", "FailedPreconditionError", "ResourceExhaustedError",
    "UnavailableError", "DeadlineExceededError",
]
