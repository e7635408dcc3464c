"""What a product engineer reads when a blueprint is refused: each bad key by its path as
the blueprint spells it, with a reason they can act on; and what a valid blueprint answers
about its features and its digest."""

from __future__ import annotations

import hashlib
from datetime import date

import pytest

from services.blueprints.spec import FeatureType, parse_blueprint, spec_digest
from services.blueprints.store import BlueprintStore
from services.platform.errors import InvalidArgument

BASE = {"name": "case", "decision_type": "binary", "entities": ["user_id"], "default_decision": False,
        "label": {"outcome": "clicked", "window": "1h"}}


def violations(**changes) -> list[tuple[str, str]]:
    with pytest.raises(InvalidArgument) as raised:
        parse_blueprint({**BASE, **changes})
    return [(v.field, v.reason) for v in raised.value.violations]


@pytest.mark.parametrize("changes, expected", [
    ({"colour": "blue"}, ("colour", "unknown key")),
    ({"label": {"outcome": "clicked"}}, ("label.window", "is required")),
    ({"entities": "user_id"}, ("entities", "must be a list")),
    ({"description": 5}, ("description", "must be a string")),
    ({"policy": {"threshold": "high"}}, ("policy.threshold", "must be a number")),
    ({"retraining": {"min_labeled_rows": 10.0}}, ("retraining.min_labeled_rows", "must be an integer")),
    ({"model": {"params": [1]}}, ("model.params", "must be a mapping")),
    ({"policy": {"exploration_rate": 1.5}}, ("policy.exploration_rate", "must be at most 1.0")),
    ({"policy": {"exploration_rate": -0.1}}, ("policy.exploration_rate", "must be at least 0.0")),
    ({"retraining": {"min_labeled_rows": 5}}, ("retraining.min_labeled_rows", "must be at least 10")),
    ({"features": {"feast": ["profile"]}}, ("features.feast[0]", "must be a Feast reference view:feature")),
    ({"features": {"context": {"Hour": "int64"}}},
     ("features.context.Hour", "must be lower_snake_case (a letter, then letters, digits or _)")),
    ({"features": {"context": {"hour": "int32"}}},
     ("features.context.hour", "must be one of ['double', 'int64', 'string', 'bool']")),
    ({"decision_type": "tree"},
     ("decision_type", "must be one of ['binary', 'multi_action', 'ranking', 'regression', 'numeric']")),
    ({"decision_type": "unspecified"},
     ("decision_type", "must be one of ['binary', 'multi_action', 'ranking', 'regression', 'numeric']")),
    ({"decision_type": 1}, ("decision_type", "must be one of ['binary', 'multi_action', 'ranking', 'regression', 'numeric']")),
    ({"label": {"outcome": "clicked", "window": "1h", "aggregation": "avg"}},
     ("label.aggregation", "must be one of ['sum', 'max', 'first', 'count']")),
    ({"entities": ["user_id", "user_id"]}, ("entities", "must not repeat a value")),
    ({"experiment": {"name": "t", "control": "a", "arms": [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.4}]}},
     ("experiment.arms", "shares must add up to 1")),
    ({"experiment": {"name": "t", "control": "c", "arms": [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5}]}},
     ("experiment.control", "must be one of the arms ['a', 'b']")),
    ({"experiment": {"name": "t", "control": "a", "arms": [{"name": "a", "share": 0.5},
                                                          {"name": "b", "share": 0.5, "model": "best"}]}},
     ("experiment.arms[1].model", "must be live, default or a model version like m000003")),
    ({"experiment": {"name": "t", "control": "a", "arms": [{"name": "a", "share": 1.0}]}},
     ("experiment.arms", "must have at least 2 items")),
    ({"deployment": {"canary_share": 0.9}}, ("deployment.canary_share", "must be at most 0.5")),
    ({"default_decision": [1]},  # fits no form of the union: one violation, no member type names as keys
     ("default_decision", "must be a string, true or false, an integer or a number")),
    ({"deployment": {"guardrails": [{"outcome": "unsubscribed", "max_harm": 0.1}]}},
     ("deployment.guardrails", "outcome 'unsubscribed' is not a label of the use case ['clicked']")),
])
def test_a_refused_blueprint_names_the_key_and_the_reason(changes, expected):
    assert violations(**changes) == [expected]


def test_every_bad_key_is_reported_at_once():
    assert violations(colour="blue", policy={"exploration_rate": 2}, label={"outcome": "clicked"}) == [
        ("label.window", "is required"), ("policy.exploration_rate", "must be at most 1.0"), ("colour", "unknown key")]
    assert violations(default_decision={"a": 1}, colour="blue") == [
        ("default_decision", "must be a string, true or false, an integer or a number"), ("colour", "unknown key")]


def test_enum_names_are_accepted_in_their_spelling_only():
    bp = parse_blueprint({**BASE, "decision_type": "multi_action", "actions": ["a", "b"], "default_decision": "a",
                          "features": {"context": {"hour": "int64", "vip": "bool"}},
                          "label": {"outcome": "clicked", "window": "1h", "aggregation": "first"}})
    assert bp.decision_type.spelling == "multi_action" and bp.label.aggregation.value == "first"
    assert bp.context_features == {"hour": FeatureType.INT64, "vip": FeatureType.BOOL}


def test_a_columns_declared_type_comes_from_the_context_or_the_candidate_features():
    bp = parse_blueprint({**BASE, "decision_type": "ranking", "default_decision": "as_given",
                          "features": {"feast": ["user_profile:country"], "context": {"hour": "int64"},
                                       "candidate": {"price": "double"}}})
    assert bp.feature_type("hour") == FeatureType.INT64
    assert bp.feature_type("price") == FeatureType.DOUBLE
    assert bp.feature_type("user_profile__country") is None and bp.feature_type("other") is None


def test_personalization_counters_are_named_for_the_outcome_and_the_window():
    bp = parse_blueprint({**BASE, "personalization": {"view": "case_outcomes", "window": "7d"}})
    assert bp.personalization_features() == ["decisions_7d", "clicked_7d"]
    assert parse_blueprint(BASE).personalization_features() == []


def test_the_digest_is_the_sha256_of_the_canonical_json_and_ignores_key_order():
    canonical = '{"a":[1,2],"b":{"c":"2024-01-02","d":true}}'  # sorted keys, no spaces, dates as text
    expected = hashlib.sha256(canonical.encode()).hexdigest()
    assert spec_digest({"b": {"d": True, "c": date(2024, 1, 2)}, "a": [1, 2]}) == expected


def test_reapplying_a_blueprint_with_its_keys_reordered_is_not_a_new_version(tmp_path):
    store = BlueprintStore(tmp_path)
    first, created = store.apply("name: case\ndecision_type: binary\nentities: [user_id]\ndefault_decision: false\n"
                                 "label: {outcome: clicked, window: 1h}\n")
    again, created_again = store.apply("label: {window: 1h, outcome: clicked}\ndefault_decision: false\n"
                                       "entities: [user_id]\ndecision_type: binary\nname: case\n")
    assert created and not created_again and again.blueprint.version == first.blueprint.version == 1
