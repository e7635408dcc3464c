"""What a product engineer reads when a numeric blueprint's range or default is refused
(each bad key by its path, with a reason they can act on), the limits of a list's length
and other pydantic refusals by path, and the use case a YAML blueprint names before it is
validated (who may apply it is decided by that name)."""

from __future__ import annotations

import pytest

from services.blueprints.spec import MAX_NUMERIC_VALUES, blueprint_name, parse_blueprint
from services.platform.errors import InvalidArgument

NUMERIC = {"name": "bitrate", "decision_type": "numeric", "entities": ["user_id"], "default_decision": 150,
           "numeric": {"min": 100, "max": 299, "step": 1}, "label": {"outcome": "watched", "window": "1h"}}
BINARY = {"name": "case", "decision_type": "binary", "entities": ["user_id"], "default_decision": False,
          "label": {"outcome": "clicked", "window": "1h"}}


def violations(spec) -> list[tuple[str, str]]:
    with pytest.raises(InvalidArgument) as raised:
        parse_blueprint(spec)
    return [(v.field, v.reason) for v in raised.value.violations]


@pytest.mark.parametrize("changes, expected", [
    ({"numeric": None},
     ("numeric", "is required for a numeric use case: the range to choose in (min, max, step)")),
    ({"numeric": {"min": 5, "max": 5, "step": 1}, "default_decision": 5},
     ("numeric.max", "must be greater than numeric.min")),
    ({"numeric": {"min": 100, "max": 300, "step": 1}},  # 201 values
     ("numeric.step", f"must leave at most {MAX_NUMERIC_VALUES} values between min and max")),
    ({"default_decision": "fast"}, ("default_decision", "must be a number for a numeric use case")),
    ({"default_decision": 99}, ("default_decision", "must be between 100.0 and 299.0")),
    ({"default_decision": 299.5}, ("default_decision", "must be between 100.0 and 299.0")),
])
def test_a_numeric_blueprint_is_refused_naming_the_key_to_fix(changes, expected):
    assert violations({**NUMERIC, **changes}) == [expected]


@pytest.mark.parametrize("changes", [
    {},  # 100 to 299 by 1: exactly MAX_NUMERIC_VALUES values
    {"default_decision": 100},  # the default may be either end of the range
    {"default_decision": 299},
    {"default_decision": "200"},  # a number spelled as text
])
def test_a_numeric_blueprint_may_use_the_whole_range_up_to_the_limit(changes):
    blueprint = parse_blueprint({**NUMERIC, **changes})
    assert len(blueprint.numeric.grid) == MAX_NUMERIC_VALUES


@pytest.mark.parametrize("changes, expected", [
    ({"experiment": {"name": "t", "control": "a0",
                     "arms": [{"name": f"a{i}", "share": 1 / 11} for i in range(11)]}},
     ("experiment.arms", "must have at most 10 items")),
    ({"tuning": {"parameters": {"exploration_rate": [0.1, 0.2, 0.3]}}},
     ("tuning.parameters.exploration_rate", "must have at most 2 items")),
    ({"tuning": {"parameters": {"exploration_rate": [0.1]}}},
     ("tuning.parameters.exploration_rate", "must have at least 2 items")),
    ({"experiment": {"name": "t", "control": "a", "alpha": 0.7,
                     "arms": [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5}]}},
     ("experiment.alpha", "Input should be less than 0.5")),  # pydantic's own words when Looper has none
])
def test_a_list_too_long_or_short_and_other_limits_are_refused_by_path(changes, expected):
    assert violations({**BINARY, **changes}) == [expected]


@pytest.mark.parametrize("text, name", [
    ("name: feed\ndecision_type: nonsense\n", "feed"),  # the rest is not validated
    ("name: feed\n", "feed"),
    ("decision_type: binary\n", None),  # names no use case
    ("name: Feed Me\n", None),  # not a valid use case name
    ("name: 5\n", None),
    ("name: [feed]\n", None),
    ("- name: feed\n", None),  # not a mapping
    ("name: feed\n  bad: [indent\n", None),  # not YAML
    ("base: &b feed\nname: *b\n", None),  # aliases are refused
    ("", None),
])
def test_blueprint_name_is_the_valid_name_a_yaml_blueprint_gives(text, name):
    assert blueprint_name(text) == name
