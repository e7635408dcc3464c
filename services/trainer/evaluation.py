"""Offline evaluation on a time-based holdout: the model metrics (AUC, log-loss and
normalized entropy, or RMSE) and the product metric, estimated off-policy from the logged
propensities: what the policy would have earned had it decided the holdout's decisions."""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import rankdata

from services.core.blueprint import Blueprint
from services.core.policies import action_values, greedy_order

_EPS = 1e-12


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney); NaN when one class is missing."""
    positives = labels == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(scores)
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def log_loss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    p = np.clip(probabilities, _EPS, 1 - _EPS)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def normalized_entropy(labels: np.ndarray, probabilities: np.ndarray, base_rate: float) -> float:
    """Log-loss divided by the entropy of always predicting the base rate: < 1 means the
    model knows more than the average."""
    base = min(max(base_rate, _EPS), 1 - _EPS)
    entropy = -(base * math.log(base) + (1 - base) * math.log(1 - base))
    return log_loss(labels, probabilities) / entropy


def rmse(labels: np.ndarray, predictions: np.ndarray) -> float:
    return float(np.sqrt(np.mean((labels - predictions) ** 2)))


def rewards(blueprint: Blueprint, actions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The product value each logged decision earned: outcome value times the label, minus
    the treatment cost when the action was not the baseline."""
    return np.array([action_values(blueprint, [a], [float(y)])[0] for a, y in zip(actions, labels)])


def policy_value(blueprint: Blueprint, greedy_actions: np.ndarray, logged_actions: np.ndarray,
                 propensities: np.ndarray, earned: np.ndarray) -> float:
    """Self-normalized inverse propensity estimate of the greedy policy's mean value per
    decision, from decisions logged by another policy."""
    match = greedy_actions == logged_actions
    weights = match / np.clip(propensities, 1e-6, None)
    if weights.sum() == 0:
        return math.nan
    return float((weights * earned).sum() / weights.sum())


def evaluate(blueprint: Blueprint, model, holdout, base_rate: float) -> dict[str, float]:
    """Metrics of ``model`` (anything with ``score(rows)``) on the holdout ``TrainingSet``."""
    rows = holdout.features.to_dict("records")
    scores = np.array(model.score(rows))
    if blueprint.decision_type == "regression":
        return {"rmse": rmse(holdout.labels, scores), "rows": float(len(rows))}
    metrics = {
        "auc": auc(holdout.targets, scores),
        "log_loss": log_loss(holdout.targets, scores),
        "normalized_entropy": normalized_entropy(holdout.targets, scores, base_rate),
        "rows": float(len(rows)),
    }
    earned = rewards(blueprint, holdout.actions, holdout.labels)
    metrics["logged_value"] = float(earned.mean())
    if blueprint.actions:  # ranking candidates are not all logged; no off-policy estimate
        metrics["product_value"] = policy_value(blueprint, greedy_actions(blueprint, model, rows),
                                                holdout.actions, holdout.propensities, earned)
    return metrics


def greedy_actions(blueprint: Blueprint, model, rows: list[dict]) -> np.ndarray:
    """The action the policy (without exploration) would pick for each row."""
    actions = list(blueprint.actions)
    per_action = [model.score([{**r, "action": a} for r in rows]) for a in actions]
    return np.array([actions[greedy_order(blueprint, actions, [s[i] for s in per_action])[0]]
                     for i in range(len(rows))], dtype=object)
