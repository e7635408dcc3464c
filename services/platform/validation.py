"""Small request checks that collect every violation before failing, so a caller sees all
bad fields at once rather than one per round trip."""

from __future__ import annotations

import math
import re

from services.platform.errors import FieldViolation, InvalidArgument

_ID_PATTERN = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,62}")


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

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidArgument(self.items)


def is_valid_name(value: str) -> bool:
    return bool(_NAME_PATTERN.fullmatch(value))
