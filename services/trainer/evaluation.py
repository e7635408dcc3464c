"""Offline evaluation on a time-based holdout: the model metrics (AUC, log-loss and
normalized entropy, or RMSE; scikit-learn computes them) and the product metric, estimated
off-policy from the logged propensities: what the policy would have earned had it decided
the holdout's decisions."""

from __future__ import annotations

import math

import numpy as np
from sklearn import metrics as sk

from services.blueprints.spec import Blueprint, DecisionType
from services.decision.policies import action_values, greedy_order
from services.models.encoding import ACTION_COLUMN

_EPS = 1e-12


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve; NaN when one class is missing."""
    if len(set(np.asarray(labels).tolist())) < 2:
        return math.nan
    return float(sk.roc_auc_score(labels, scores))


def log_loss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    return float(sk.log_loss(labels, np.clip(probabilities, _EPS, 1 - _EPS), labels=[0, 1]))


def normalized_entropy(labels: np.ndarray, probabilities: np.ndarray, base_rate: float) -> float:
    """Log-loss divided by the entropy of always predicting the base rate: < 1 means the
    model knows more than the average."""
    base = min(max(base_rate, _EPS), 1 - _EPS)
    entropy = -(base * math.log(base) + (1 - base) * math.log(1 - base))
    return log_loss(labels, probabilities) / entropy


def rmse(labels: np.ndarray, predictions: np.ndarray) -> float:
    return float(math.sqrt(sk.mean_squared_error(labels, predictions)))


def rewards(blueprint: Blueprint, actions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The product value each logged decision earned: outcome value times the label, minus
    the treatment cost when the action was not the baseline."""
    return np.array([action_values(blueprint, [a], [float(y)])[0] for a, y in zip(actions, labels)])


def policy_value(greedy_actions: np.ndarray, logged_actions: np.ndarray, propensities: np.ndarray,
                 earned: np.ndarray) -> float:
    """Self-normalized inverse propensity estimate of the greedy policy's mean value per
    decision, from decisions logged by another policy."""
    match = greedy_actions == logged_actions
    weights = match / np.clip(propensities, 1e-6, None)
    if weights.sum() == 0:
        return math.nan
    return float((weights * earned).sum() / weights.sum())


def evaluate(blueprint: Blueprint, model, holdout, base_rate: float) -> dict[str, float]:
    """Metrics of ``model`` (anything with ``score_encoded(frame)``) on the holdout
    ``TrainingSet``."""
    scores = np.array(model.score_encoded(holdout.features))
    rows = float(len(holdout.labels))
    if blueprint.decision_type == DecisionType.REGRESSION:
        return {"rmse": rmse(holdout.labels, scores), "rows": rows}
    metrics = {
        "auc": auc(holdout.targets, scores),
        "log_loss": log_loss(holdout.targets, scores),
        "normalized_entropy": normalized_entropy(holdout.targets, scores, base_rate),
        "rows": rows,
    }
    earned = rewards(blueprint, holdout.actions, holdout.labels)
    metrics["logged_value"] = float(earned.mean())
    if blueprint.choices:  # ranking candidates are not all logged; no off-policy estimate
        metrics["product_value"] = policy_value(greedy_actions(blueprint, model, holdout.features),
                                                holdout.actions, holdout.propensities, earned)
    return metrics


def greedy_actions(blueprint: Blueprint, model, features) -> np.ndarray:
    """The action the policy (without exploration) would pick for each encoded row."""
    actions = list(blueprint.choices)
    per_action = [model.score_encoded(features.assign(**{ACTION_COLUMN: a})) for a in actions]
    return np.array([actions[greedy_order(blueprint, actions, [s[i] for s in per_action])[0]]
                     for i in range(len(features))], dtype=object)
