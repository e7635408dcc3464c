"""What a decision gets from its model (``_predict_many``, one model call for a batch): per
outcome the blueprint weighs, the predictions for its rows. A model of one label (or one that
predates naming it) predicts the primary outcome; a model of several gives each weighed
outcome; a model that lacks an outcome the blueprint now weighs cannot serve it, and says
which outcome it lacks; decisions sharing a model each get their own rows' predictions."""

from __future__ import annotations

import pytest

from services.blueprints.spec import parse_blueprint
from services.decision.decider import _predict_many
from services.models.registry import ModelRegistry
from services.models.runtime import open_model
from tests.unit.test_model_registry import register, tiny_model

SPEC = {"name": "uc", "decision_type": "multi_action", "entities": ["user_id"], "actions": ["a", "b"],
        "default_decision": "a", "features": {"context": {"x": "double"}}}
ONE_LABEL = parse_blueprint({**SPEC, "label": {"outcome": "opened", "window": "1h"}})
TWO_LABELS = parse_blueprint({**SPEC, "labels": [{"outcome": "opened", "window": "1h"},
                                                 {"outcome": "unsubscribed", "window": "1h"}],
                              "product_metric": {"weights": {"opened": 1.0, "unsubscribed": -3.0}}})
ROWS = [{"x": 1.0, "action": "a"}, {"x": 2.0, "action": "b"}]


def predictions(blueprint, model, rows) -> dict[str, list[float]]:
    """One decision's predictions, as a batch of one gets them."""
    (answer,) = _predict_many([(blueprint, model, rows)])
    if isinstance(answer, Exception):
        raise answer
    return answer


class ScoresOnly:
    """A model with one score per row and no per-outcome predictions."""

    version = "m000007"

    def score(self, rows):
        return [0.25 * (i + 1) for i in range(len(rows))]


class PredictsOutcomes:
    version = "m000008"

    def __init__(self, **per_outcome):
        self.per_outcome = per_outcome

    def score(self, rows):
        raise AssertionError("a model with per-outcome predictions is asked for them")

    def predict(self, rows):
        return {outcome: values[:len(rows)] for outcome, values in self.per_outcome.items()}


def test_a_registered_one_label_model_predicts_the_primary_outcome(tmp_path):
    registry = ModelRegistry(tmp_path)
    meta = register(registry, tiny_model(), "r1")  # predates naming its label
    model = open_model(meta, registry.artifact("uc", meta.version))
    predicted = predictions(ONE_LABEL, model, ROWS)
    assert list(predicted) == ["opened"]
    assert predicted["opened"] == pytest.approx(model.score(ROWS))
    assert predicted["opened"][0] > 0.5 > predicted["opened"][1]  # trained: action a -> 1, b -> 0


def test_a_model_with_a_score_only_predicts_the_primary_outcome():
    assert predictions(ONE_LABEL, ScoresOnly(), ROWS) == {"opened": [0.25, 0.5]}


def test_a_model_of_one_differently_named_label_predicts_the_primary_outcome():
    model = PredictsOutcomes(clicked=[0.1, 0.2])
    assert predictions(ONE_LABEL, model, ROWS) == {"opened": [0.1, 0.2]}


def test_a_model_of_several_labels_gives_each_weighed_outcome_and_nothing_else():
    model = PredictsOutcomes(unsubscribed=[0.01, 0.02], opened=[0.3, 0.4], purchased=[1.0, 1.0])
    assert predictions(TWO_LABELS, model, ROWS) == {"opened": [0.3, 0.4], "unsubscribed": [0.01, 0.02]}


def test_a_model_lacking_a_weighed_outcome_cannot_serve_and_names_it():
    model = PredictsOutcomes(opened=[0.3, 0.4], clicked=[0.5, 0.5])
    with pytest.raises(LookupError, match=r"m000008 predicts no \['unsubscribed'\]"):
        predictions(TWO_LABELS, model, ROWS)


def test_a_model_of_several_labels_without_the_primary_one_cannot_serve_and_names_it():
    model = PredictsOutcomes(clicked=[0.5, 0.5], unsubscribed=[0.01, 0.02])
    with pytest.raises(LookupError, match=r"m000008 predicts no \['opened'\]"):
        predictions(TWO_LABELS, model, ROWS)


def test_decisions_sharing_a_model_get_their_own_rows_and_one_failing_fails_alone():
    model = PredictsOutcomes(opened=[0.1, 0.2, 0.3, 0.4], unsubscribed=[0.0, 0.0, 0.5, 0.5])
    one_label, two_labels = _predict_many([(ONE_LABEL, model, ROWS), (TWO_LABELS, model, ROWS)])
    assert two_labels == {"opened": [0.3, 0.4], "unsubscribed": [0.5, 0.5]}
    assert one_label == {"opened": [0.1, 0.2]}
    lacking = PredictsOutcomes(opened=[0.1, 0.2, 0.3, 0.4])
    first, second = _predict_many([(ONE_LABEL, lacking, ROWS), (TWO_LABELS, lacking, ROWS)])
    assert first == {"opened": [0.1, 0.2]} and isinstance(second, LookupError)
