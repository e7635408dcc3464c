"""The one place where what callers send is checked: identifiers, names, numbers, sizes.
Checks collect every violation before failing, so a caller sees all bad fields at once
rather than one per round trip (the first ``MAX_REPORTED``, so that the error itself stays
small whatever was sent)."""

from __future__ import annotations

import math
import re

from services.platform.errors import FieldViolation, InvalidArgument

_ID_PATTERN = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_ID_LINES = re.compile(f"(?:{_ID_PATTERN.pattern}\n)*")  # ids one a line: no id holds a newline
_NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,62}")
MAX_REPORTED = 20  # violations listed in one error
MAX_STRING = 4096  # characters of a string feature value
MAX_KEY_VALUE = 256  # characters of a subject key value


class Violations:
    """Accumulates field violations; ``raise_if_any`` ends validation."""

    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def add(self, field: str, reason: str) -> None:
        self.items.append(FieldViolation(field, reason))

    def require_id(self, field: str, value: str) -> None:
        """Ids are idempotency keys and file-name safe: 1-128 of [A-Za-z0-9._:-]."""
        if not value:
            self.add(field, "is required")
        elif not _ID_PATTERN.fullmatch(value):
            self.add(field, "must be 1-128 characters of [A-Za-z0-9._:-]")

    def require_name(self, field: str, value: str) -> None:
        """Names (use cases, outcomes, features) are lower_snake_case identifiers."""
        if not value:
            self.add(field, "is required")
        elif not _NAME_PATTERN.fullmatch(value):
            self.add(field, "must be lower_snake_case: a letter, then letters, digits or _ (max 63)")

    def require_finite(self, field: str, value: float) -> None:
        if not math.isfinite(value):
            self.add(field, "must be a finite number")

    def require_at_most(self, field: str, count: int, cap: int, what: str) -> bool:
        """Whether ``count`` is within ``cap``; records a violation naming the cap if not."""
        if count > cap:
            self.add(field, f"must hold at most {cap} {what}, got {count}")
            return False
        return True

    def check_value(self, field: str, value, max_length: int = MAX_STRING) -> None:
        """A feature value sent by a caller: finite numbers, bounded strings."""
        if isinstance(value, float) and not math.isfinite(value):
            self.add(field, "must be a finite number")
        elif isinstance(value, str) and len(value) > max_length:
            self.add(field, f"must be at most {max_length} characters, got {len(value)}")

    def raise_if_any(self) -> None:
        if len(self.items) > MAX_REPORTED:
            rest = len(self.items) - MAX_REPORTED
            self.items = self.items[:MAX_REPORTED] + [
                FieldViolation(self.items[MAX_REPORTED].field, f"and {rest} more violations not listed")]
        if self.items:
            raise InvalidArgument(self.items)


def is_valid_name(value: str) -> bool:
    return bool(_NAME_PATTERN.fullmatch(value))


def is_valid_id(value: str) -> bool:
    """What ``require_id`` accepts."""
    return bool(_ID_PATTERN.fullmatch(value))


def are_valid_ids(values: list[str]) -> bool:
    """Whether ``is_valid_id`` accepts each value, in one pass of the pattern over them all
    (a ranking's hundred candidate ids: 7 us against 19 one call each)."""
    if not values:
        return True
    lines = "\n".join(values) + "\n"
    return lines.count("\n") == len(values) and _ID_LINES.fullmatch(lines) is not None


def is_plain_value(value) -> bool:
    """A value ``check_value`` would pass without looking twice: an int or a bool, a finite
    float, a short string."""
    kind = type(value)
    return (kind is int or kind is bool or (kind is float and math.isfinite(value))
            or (kind is str and len(value) <= MAX_STRING))
