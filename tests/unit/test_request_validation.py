"""Request checks: every bad field is collected, each with the reason a caller can act on,
and ids and names are held to their documented alphabets and lengths."""

from __future__ import annotations

import math

import pytest

from services.platform.errors import FieldViolation, InvalidArgument
from services.platform.validation import Violations, is_valid_name


def violations_of(check) -> list[FieldViolation]:
    v = Violations()
    check(v)
    with pytest.raises(InvalidArgument) as raised:
        v.raise_if_any()
    return raised.value.violations


def test_every_violation_is_reported_at_once_with_its_reason():
    def check(v):
        v.require_id("decision_id", "")
        v.require_name("use_case", "Bad-Name")
        v.require_finite("value", math.inf)
        v.add("subject.team", "is not an entity")
    found = violations_of(check)
    assert found == [
        FieldViolation("decision_id", "is required"),
        FieldViolation("use_case", "must be lower_snake_case: a letter, then letters, digits or _ (max 63)"),
        FieldViolation("value", "must be a finite number"),
        FieldViolation("subject.team", "is not an entity"),
    ]
    assert str(InvalidArgument(found)).startswith("decision_id: is required; use_case: must be")


@pytest.mark.parametrize("value, ok", [
    ("a", True), ("A.b_c:d-9", True), ("x" * 128, True), ("x" * 129, False),
    ("has space", False), ("slash/", False), ("ünïcode", False),
])
def test_ids_are_1_to_128_file_name_safe_characters(value, ok):
    v = Violations()
    v.require_id("decision_id", value)
    assert (v.items == []) == ok
    if not ok:
        assert v.items == [FieldViolation("decision_id", "must be 1-128 characters of [A-Za-z0-9._:-]")]


@pytest.mark.parametrize("value, ok", [
    ("a", True), ("notification_send", True), ("a" + "b" * 62, True), ("a" + "b" * 63, False),
    ("_a", False), ("9a", False), ("Aa", False), ("a-b", False),
])
def test_names_are_lower_snake_case_of_at_most_63_characters(value, ok):
    assert is_valid_name(value) == ok
    v = Violations()
    v.require_name("use_case", value)
    assert (v.items == []) == ok


def test_nothing_is_raised_when_every_field_is_valid():
    v = Violations()
    v.require_id("decision_id", "d-1")
    v.require_name("use_case", "ok")
    v.require_finite("value", -2.5)
    v.raise_if_any()
    assert v.items == []
    assert violations_of(lambda v: v.require_finite("value", math.nan))[0].field == "value"


@pytest.mark.parametrize("value, reason", [
    (1.5, None), (7, None), (True, None), ("x" * 1024, None), (None, None),
    (math.nan, "must be a finite number"), (-math.inf, "must be a finite number"),
    ("x" * 1025, "must be at most 1024 characters, got 1025"),
])
def test_a_feature_value_is_a_finite_number_or_a_bounded_string(value, reason):
    v = Violations()
    v.check_value("context.platform", value, max_length=1024)
    assert v.items == ([] if reason is None else [FieldViolation("context.platform", reason)])
