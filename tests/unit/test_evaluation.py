"""Evaluation metrics against values computed by hand on small fixed arrays, and the
off-policy estimate on logged data whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import yaml

from services.blueprints.spec import ProductMetric, parse_blueprint
from services.trainer.evaluation import auc, evaluate, log_loss, normalized_entropy, policy_value, rewards, rmse
from services.trainer.training_set import TrainingSet
from tests.conftest import EXAMPLE_BLUEPRINT

BINARY = parse_blueprint(yaml.safe_load(EXAMPLE_BLUEPRINT.read_text()))  # open worth 1.0, a send costs 0.25


def test_auc_counts_correctly_ordered_pairs():
    # positives 0.9, 0.3; negatives 0.8, 0.1: (0.9>0.8), (0.9>0.1), (0.3>0.1) right, (0.3<0.8) wrong
    assert auc(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.3, 0.1])) == pytest.approx(0.75)
    assert auc(np.array([1, 0]), np.array([0.5, 0.5])) == pytest.approx(0.5)  # a tie is half a pair
    assert auc(np.array([0, 1]), np.array([0.9, 0.1])) == pytest.approx(0.0)
    assert math.isnan(auc(np.array([1, 1]), np.array([0.2, 0.3])))  # one class: undefined


def test_log_loss_and_normalized_entropy():
    labels, p = np.array([1, 0]), np.array([0.8, 0.4])
    expected = -(math.log(0.8) + math.log(0.6)) / 2  # 0.366985
    assert log_loss(labels, p) == pytest.approx(expected)
    assert normalized_entropy(labels, p, base_rate=0.5) == pytest.approx(expected / math.log(2))
    assert normalized_entropy(labels, np.array([0.5, 0.5]), base_rate=0.5) == pytest.approx(1.0)
    assert log_loss(np.array([1]), np.array([1.0])) == pytest.approx(0.0, abs=1e-9)  # clipped, finite


def test_rmse():
    assert rmse(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0])) == pytest.approx(math.sqrt(4 / 3))


def test_rewards_charge_the_treatment_cost_only_when_acting():
    earned = rewards(BINARY, np.array(["true", "false", "true", "false"]), np.array([1.0, 1.0, 0.0, 0.0]))
    assert earned.tolist() == pytest.approx([0.75, 1.0, -0.25, 0.0])


def test_policy_value_is_the_self_normalized_ips_estimate():
    greedy = np.array(["a", "a", "b", "b"])
    logged = np.array(["a", "b", "b", "a"])
    propensities = np.array([0.5, 0.5, 0.25, 0.75])
    earned = np.array([1.0, 5.0, 2.0, 7.0])
    # matches: rows 0 and 2 with weights 1/0.5 = 2 and 1/0.25 = 4: (2*1 + 4*2) / 6
    assert policy_value(greedy, logged, propensities, earned) == pytest.approx(10 / 6)
    assert math.isnan(policy_value(np.array(["a"]), np.array(["b"]), np.array([0.5]), np.array([1.0])))


def test_policy_value_recovers_a_known_value_from_another_policys_logs():
    rng = np.random.default_rng(0)
    n = 40_000
    context = rng.integers(0, 2, n)  # two kinds of subjects
    mean_reward = {("x", 0): 0.1, ("x", 1): 0.7, ("y", 0): 0.5, ("y", 1): 0.2}
    # logging policy: "x" with probability 0.8 whatever the subject
    logged = np.where(rng.random(n) < 0.8, "x", "y")
    propensities = np.where(logged == "x", 0.8, 0.2)
    earned = rng.binomial(1, [mean_reward[(a, c)] for a, c in zip(logged, context)]).astype(float)
    # target policy: the best action per subject kind; true value 0.5 * 0.5 + 0.5 * 0.7 = 0.6
    target = np.where(context == 0, "y", "x")
    assert policy_value(target, logged, propensities, earned) == pytest.approx(0.6, abs=0.015)
    assert earned.mean() == pytest.approx(0.8 * 0.4 + 0.2 * 0.35, abs=0.015)  # what the logging policy got


class StepModel:
    """Scores 0.9 for sending to subjects with x > 0 and 0.1 otherwise; 0.05 for not sending."""

    def score_encoded(self, frame):
        return [0.05 if a == "false" else (0.9 if x > 0 else 0.1) for x, a in zip(frame["x"], frame["action"])]


def test_evaluate_reports_model_and_product_metrics_on_the_holdout():
    from services.models.encoding import ModelInput

    blueprint = BINARY.model_copy(update={"product_metric": ProductMetric(outcome_value=1.0, treatment_cost=0.25)})
    rows = [(1.0, "true", 1.0, 0.5), (1.0, "false", 0.0, 0.5), (-1.0, "true", 0.0, 0.5), (-1.0, "false", 0.0, 0.5)]
    holdout = TrainingSet(
        input=ModelInput(("x", "action"), frozenset({"action"})),
        features=pd.DataFrame({"x": [r[0] for r in rows], "action": [r[1] for r in rows]}),
        labels=np.array([r[2] for r in rows]), targets=np.array([int(r[2] > 0) for r in rows]),
        actions=np.array([r[1] for r in rows], dtype=object), propensities=np.array([r[3] for r in rows]),
        times=pd.Series(range(4)))
    metrics = evaluate(blueprint, StepModel(), holdout, base_rate=0.25)
    # scores 0.9, 0.05, 0.1, 0.05 against targets 1, 0, 0, 0: every pair ordered right
    assert metrics["auc"] == pytest.approx(1.0) and metrics["rows"] == 4.0
    # logged rewards 0.75, 0.0, -0.25, 0.0
    assert metrics["logged_value"] == pytest.approx(0.125)
    # the greedy policy sends to x > 0 (0.9 - 0.25 > 0.05) and not to x < 0 (0.1 - 0.25 < 0.05):
    # it matches rows 0 and 3, each of weight 2: (0.75 + 0.0) / 2
    assert metrics["product_value"] == pytest.approx(0.375)
    assert metrics["product_value_ess"] == pytest.approx(2.0)  # (2 + 2)^2 / (4 + 4)
    assert metrics["product_value_ci_low"] < 0.375 < metrics["product_value_ci_high"]
    assert metrics["product_value_ips"] == pytest.approx((2 * 0.75 + 2 * 0.0) / 4)
    # DR: the model's values of its own choices (0.65, 0.65, 0.05, 0.05) plus the weighted
    # residuals of rows 0 (2 * (0.75 - 0.65)) and 3 (2 * (0.0 - 0.05))
    assert metrics["product_value_dr"] == pytest.approx((0.65 + 0.65 + 0.05 + 0.05 + 0.2 - 0.1) / 4)
    assert metrics["product_value_dr_ci_low"] < metrics["product_value_dr"] < metrics["product_value_dr_ci_high"]
