from __future__ import annotations

from datetime import timedelta

import pytest
import yaml

from services.blueprints.spec import Aggregation, DecisionType, FeatureType, load_blueprint_yaml, parse_blueprint
from services.blueprints.store import BlueprintStore
from services.platform.errors import InvalidArgument, NotFound
from tests.conftest import EXAMPLE_BLUEPRINT

VALID = yaml.safe_load(EXAMPLE_BLUEPRINT.read_text())


def fields_of(spec) -> dict[str, str]:
    with pytest.raises(InvalidArgument) as raised:
        parse_blueprint(spec)
    return {v.field: v.reason for v in raised.value.violations}


def with_changes(**changes):
    spec = yaml.safe_load(EXAMPLE_BLUEPRINT.read_text())
    for path, value in changes.items():
        node = spec
        *parents, leaf = path.split("__")
        for key in parents:
            node = node[key]
        if value is ...:
            del node[leaf]
        else:
            node[leaf] = value
    return spec


def test_example_blueprint_parses():
    bp = parse_blueprint(VALID)
    assert bp.name == "notification_send" and bp.decision_type == DecisionType.BINARY
    assert bp.choices == ("true", "false") and bp.default_decision == "true"
    assert bp.label.window == timedelta(seconds=3)
    assert bp.feature_names[0] == "user_profile__tenure_days"
    assert bp.context_features == {"hour_of_day": FeatureType.INT64, "platform": FeatureType.STRING}
    assert bp.label.aggregation == Aggregation.MAX and bp.personalization_features() == ["decisions_7d", "opened_7d"]


@pytest.mark.parametrize("changes, field", [
    ({"name": "Bad Name"}, "name"),
    ({"decision_type": "maybe"}, "decision_type"),
    ({"label__window": "soon"}, "label.window"),
    ({"label__aggregation": "median"}, "label.aggregation"),
    ({"label__outcome": ...}, "label.outcome"),
    ({"policy__exploration_rate": 1.5}, "policy.exploration_rate"),
    ({"features__feast": ["no_colon"]}, "features.feast[0]"),
    ({"features__context": {"hour_of_day": "float128"}}, "features.context.hour_of_day"),
    ({"retraining__min_labeled_rows": "many"}, "retraining.min_labeled_rows"),
    ({"default_decision": "sometimes"}, "default_decision"),
    ({"surprise": 1}, "surprise"),
    ({"label": ...}, "label"),
    ({"name": "ok\n"}, "name"),  # a trailing newline is not a name
    ({"entities": ["user_id", "user_id"]}, "entities"),
    ({"features__context": {"Hour": "int64"}}, "features.context.Hour"),
    ({"policy__threshold": "high"}, "policy.threshold"),
    ({"retraining__min_labeled_rows": 9}, "retraining.min_labeled_rows"),
    ({"label__window": True}, "label.window"),
    ({"personalization__view": "Bad View"}, "personalization.view"),
])
def test_bad_keys_are_named_by_path(changes, field):
    assert field in fields_of(with_changes(**changes))


def test_every_violation_is_reported_at_once():
    found = fields_of(with_changes(name="X", decision_type="nope", label__window="x"))
    assert {"name", "decision_type", "label.window"} <= set(found)


def test_multi_action_default_must_be_an_action():
    spec = with_changes(decision_type="multi_action", default_decision="layout_9")
    spec["actions"] = ["layout_1", "layout_2"]
    assert "default_decision" in fields_of(spec)


def test_invalid_yaml_names_the_document():
    with pytest.raises(InvalidArgument) as raised:
        load_blueprint_yaml("name: [unclosed")
    assert raised.value.violations[0].field == "spec_yaml"


def test_store_versions_are_immutable_and_deduplicated(tmp_path):
    store = BlueprintStore(tmp_path)
    text = EXAMPLE_BLUEPRINT.read_text()
    first, created = store.apply(text)
    assert created and first.blueprint.version == 1
    same, created = store.apply(text + "\n# a comment changes nothing\n")
    assert not created and same.blueprint.version == 1
    second, created = store.apply(text.replace("exploration_rate: 0.1", "exploration_rate: 0.2"))
    assert created and second.blueprint.version == 2
    assert store.get("notification_send", 1).blueprint.policy.exploration_rate == 0.1
    assert store.latest("notification_send").policy.exploration_rate == 0.2
    assert [s.blueprint.name for s in store.list()] == ["notification_send"]


def test_store_sees_versions_applied_by_another_process(tmp_path):
    reader, writer = BlueprintStore(tmp_path), BlueprintStore(tmp_path)
    writer.apply(EXAMPLE_BLUEPRINT.read_text())
    assert reader.latest("notification_send").version == 1
    writer.apply(EXAMPLE_BLUEPRINT.read_text().replace("threshold: 0.0", "threshold: 0.1"))
    assert reader.latest("notification_send").version == 2


def test_unknown_use_case_is_not_found(tmp_path):
    with pytest.raises(NotFound):
        BlueprintStore(tmp_path).latest("nothing_here")


def test_a_rejected_blueprint_writes_nothing(tmp_path):
    store = BlueprintStore(tmp_path)
    with pytest.raises(InvalidArgument):
        store.apply("name: broken\ndecision_type: binary\n")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("document", ["[]", "just text", "42"])
def test_a_document_that_is_not_a_mapping_is_refused(document):
    with pytest.raises(InvalidArgument) as raised:
        load_blueprint_yaml(document)
    assert raised.value.violations[0].field == "spec_yaml"


@pytest.mark.parametrize("document, reason", [
    ("a: &x [1, 2]\nb: *x\n", "aliases"),  # the seed of a billion-laughs document
    ("name: " + "[" * 40 + "]" * 40 + "\n", "nesting"),
])
def test_documents_that_could_exhaust_the_parser_are_refused(document, reason):
    with pytest.raises(InvalidArgument) as raised:
        load_blueprint_yaml(document)
    assert raised.value.violations[0].field == "spec_yaml" and reason in raised.value.violations[0].reason


@pytest.mark.parametrize("changes, field", [
    ({"features__context": {"label": "double"}}, "features.context.label"),  # a column Looper keeps
    ({"features__context": {"user_id": "string"}}, "features.context.user_id"),  # an entity
    ({"entities": ["decision_id"]}, "entities[0]"),
    ({"label__window": "999999999d"}, "label.window"),  # the window that once stopped every join
    ({"retraining__schedule": "0s"}, "retraining.schedule"),
    ({"model__params": {"iterations": 10**7}}, "model.params.iterations"),
    ({"model__params": {"task_type": "GPU"}}, "model.params.task_type"),
    ({"retraining__max_seconds": 10**6}, "retraining.max_seconds"),
])
def test_values_that_would_hurt_looper_are_refused_with_their_key(changes, field):
    assert field in fields_of(with_changes(**changes))


def test_the_store_caps_the_versions_of_a_use_case(tmp_path):
    from services.platform.errors import ResourceExhausted

    store = BlueprintStore(tmp_path, max_versions=2)
    text = EXAMPLE_BLUEPRINT.read_text()
    store.apply(text)
    store.apply(text.replace("threshold: 0.0", "threshold: 0.1"))
    store.apply(text.replace("threshold: 0.0", "threshold: 0.1"))  # unchanged: no new version needed
    with pytest.raises(ResourceExhausted, match="LOOPER_MAX_BLUEPRINT_VERSIONS"):
        store.apply(text.replace("threshold: 0.0", "threshold: 0.2"))


def test_the_personalization_view_is_named_after_its_use_case():
    problems = fields_of(with_changes(personalization__view="user_profile"))  # the product's own view
    assert "must start with the use case's name" in problems["personalization.view"]
