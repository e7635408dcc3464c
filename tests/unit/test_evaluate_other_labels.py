"""Offline evaluation of a multi-action use case, against values computed by hand: a label
besides the primary one that the model predicts as a probability is judged by whether its
outcome happened (not by its aggregated value), and a logged action that the blueprint no
longer offers never counts as one the model would have taken."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from services.blueprints.spec import parse_blueprint
from services.models.encoding import ModelInput
from services.trainer.evaluation import evaluate
from services.trainer.training_set import TrainingSet

SPEC = {"name": "offer", "decision_type": "multi_action", "entities": ["user_id"], "actions": ["a", "b"],
        "default_decision": "a", "features": {"context": {"x": "double"}}}
ONE_LABEL = parse_blueprint({**SPEC, "label": {"outcome": "clicked", "window": "1h"}})
TWO_LABELS = parse_blueprint({**SPEC, "labels": [{"outcome": "clicked", "window": "1h"},
                                                 {"outcome": "pages", "window": "1h", "aggregation": "max"}],
                              "product_metric": {"weights": {"clicked": 1.0, "pages": 0.5}}})


class PrefersB:
    """Clicks are likelier after action b (0.8) than after a (0.3), whatever the subject; the
    chance that a subject views pages is the ``x`` feature."""

    def score_encoded(self, frame):
        return [0.8 if action == "b" else 0.3 for action in frame["action"]]

    def predict_encoded(self, frame):
        return {"clicked": self.score_encoded(frame), "pages": list(frame["x"])}


def holdout(actions, labels, x, outcomes=None) -> TrainingSet:
    n = len(actions)
    return TrainingSet(
        input=ModelInput(("x", "action"), frozenset({"action"})),
        features=pd.DataFrame({"x": x, "action": actions}),
        labels=np.array(labels, dtype=float), targets=(np.array(labels) > 0).astype(int),
        actions=np.array(actions, dtype=object), propensities=np.full(n, 0.5), times=pd.Series(range(n)),
        outcomes=outcomes or {})


def test_a_second_probability_label_is_judged_by_whether_its_outcome_happened():
    pages = np.array([0.0, 3.0, 2.0, 0.0])  # pages viewed (max): the model predicts whether any were
    data = holdout(["a", "b", "a", "b"], [0.0, 1.0, 0.0, 1.0], [0.2, 0.7, 0.6, 0.4],
                   outcomes={"clicked": np.array([0.0, 1.0, 0.0, 1.0]), "pages": pages})
    metrics = evaluate(TWO_LABELS, PrefersB(), data, base_rate=0.5)
    # against 0, 1, 1, 0 the predictions 0.2, 0.7, 0.6, 0.4 order every pair right
    assert metrics["pages.auc"] == pytest.approx(1.0)
    expected = -(math.log(0.8) + math.log(0.7) + math.log(0.6) + math.log(0.6)) / 4
    assert metrics["pages.log_loss"] == pytest.approx(expected)
    assert metrics["pages.normalized_entropy"] == pytest.approx(expected / math.log(2))  # base rate 2 / 4


def test_a_logged_action_the_blueprint_no_longer_has_never_matches_the_models_choice():
    # the model takes b everywhere; row 1 logged b and earned 1; row 2 logged c, since dropped
    data = holdout(["a", "b", "c"], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0])
    metrics = evaluate(ONE_LABEL, PrefersB(), data, base_rate=0.5)
    assert metrics["logged_value"] == pytest.approx(1 / 3)
    assert metrics["product_value"] == pytest.approx(1.0)  # row 1 alone: (2 * 1) / 2
    assert metrics["product_value_ips"] == pytest.approx(2 * 1.0 / 3)
    assert metrics["product_value_ess"] == pytest.approx(1.0)
