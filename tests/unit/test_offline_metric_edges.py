"""Offline metrics at their edges, against values computed by hand: certain predictions and
one-class base rates stay finite, a zero propensity does not blow up the off-policy
estimate, and a regression model is judged by its error on the holdout."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from services.blueprints.spec import parse_blueprint
from services.models.encoding import ModelInput
from services.trainer.evaluation import evaluate, log_loss, normalized_entropy, policy_value
from services.trainer.training_set import TrainingSet


def test_certain_predictions_are_clipped_to_a_finite_log_loss():
    # p = 0 for a positive and p = 1 for a negative: each is clipped to 1e-12 away from certainty
    assert log_loss(np.array([1, 0]), np.array([0.0, 1.0])) == pytest.approx(-math.log(1e-12))
    assert log_loss(np.array([1, 0]), np.array([1.0, 0.0])) == pytest.approx(-math.log(1 - 1e-12), abs=1e-9)


@pytest.mark.parametrize("base_rate", [0.0, 1.0])
def test_normalized_entropy_stays_finite_when_the_training_data_had_one_class(base_rate):
    value = normalized_entropy(np.array([1, 0]), np.array([0.5, 0.5]), base_rate)
    assert math.isfinite(value) and value > 1.0  # any model knows less than a certain base rate claims


def test_a_zero_logged_propensity_counts_as_one_in_a_million():
    greedy, logged = np.array(["a", "a"]), np.array(["a", "a"])
    # weights 1/1e-6 and 1/0.5: (1e6 * 1 + 2 * 3) / (1e6 + 2)
    value = policy_value(greedy, logged, np.array([0.0, 0.5]), np.array([1.0, 3.0]))
    assert value == pytest.approx((1e6 + 6) / (1e6 + 2))


def test_one_matching_decision_logged_with_certainty_gives_its_own_value():
    value = policy_value(np.array(["a", "b"]), np.array(["a", "a"]), np.array([1.0, 0.5]), np.array([4.0, 9.0]))
    assert value == pytest.approx(4.0)


class FixedModel:
    def __init__(self, scores):
        self.scores = scores

    def score_encoded(self, frame):
        return self.scores[: len(frame)]


def test_a_regression_model_is_judged_by_its_error_on_the_holdout():
    bp = parse_blueprint({"name": "dwell", "decision_type": "regression", "entities": ["user_id"],
                          "default_decision": "0", "label": {"outcome": "dwell", "window": "1h"}})
    holdout = TrainingSet(input=ModelInput(("x",), frozenset()), features=pd.DataFrame({"x": [1.0, 2.0, 3.0]}),
                          labels=np.array([1.0, 2.0, 3.0]), targets=np.array([1.0, 2.0, 3.0]),
                          actions=np.array(["", "", ""], dtype=object), propensities=np.ones(3),
                          times=pd.Series(range(3)))
    metrics = evaluate(bp, FixedModel([1.0, 2.0, 6.0]), holdout, base_rate=0.0)
    assert metrics == pytest.approx({"rmse": math.sqrt(9 / 3), "rows": 3.0})
