"""What a caller is told beyond test_request_validation: an empty name is required by its
field, and at most MAX_REPORTED violations are listed, the rest counted from the first
unlisted field."""

from __future__ import annotations

import pytest

from services.platform.errors import InvalidArgument
from services.platform.validation import MAX_REPORTED, Violations


def reported(violations: Violations) -> list[tuple[str, str]]:
    with pytest.raises(InvalidArgument) as raised:
        violations.raise_if_any()
    return [(v.field, v.reason) for v in raised.value.violations]


def test_a_missing_name_is_required_by_field():
    violations = Violations()
    violations.require_name("use_case", "")
    assert reported(violations) == [("use_case", "is required")]


def test_exactly_max_reported_violations_are_all_listed():
    violations = Violations()
    for i in range(MAX_REPORTED):
        violations.add(f"f{i}", "bad")
    assert reported(violations) == [(f"f{i}", "bad") for i in range(MAX_REPORTED)]


def test_beyond_max_reported_the_rest_are_counted_from_the_first_unlisted_field():
    violations = Violations()
    for i in range(MAX_REPORTED + 3):
        violations.add(f"f{i}", "bad")
    listed = reported(violations)
    assert listed[:MAX_REPORTED] == [(f"f{i}", "bad") for i in range(MAX_REPORTED)]
    assert listed[MAX_REPORTED:] == [(f"f{MAX_REPORTED}", "and 3 more violations not listed")]
