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
from services.models.registry import ModelKind
from services.trainer.training_set import label_kind, model_kind

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


def rewards(blueprint: Blueprint, actions: np.ndarray, labels) -> np.ndarray:
    """The product value each logged decision earned: each label's value times its weight,
    minus the treatment cost when the action was not the baseline. ``labels`` are the
    primary label's values, or every label's (outcome -> values)."""
    outcomes = labels if isinstance(labels, dict) else {blueprint.primary_label.outcome: labels}
    return np.array([action_values(blueprint, [a], {o: [float(v[i])] for o, v in outcomes.items()})[0]
                     for i, a in enumerate(actions)])


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
    """Metrics of ``model`` (anything with ``score_encoded(frame)``, and ``predict_encoded``
    for several labels) on the holdout ``TrainingSet``: the primary label's model metrics,
    each other label's as ``<outcome>.<metric>``, and the product value."""
    metrics = label_metrics(holdout.targets, holdout.labels, np.array(model.score_encoded(holdout.features)),
                            model_kind(blueprint), base_rate)
    metrics["rows"] = float(len(holdout.labels))
    if blueprint.decision_type == DecisionType.REGRESSION:
        return metrics
    predicted = _predict(blueprint, model, holdout.features)
    for label in blueprint.all_labels[1:]:
        kind = label_kind(blueprint, label)
        values = holdout.outcomes[label.outcome]
        targets = holdout.targets_of(label.outcome, kind)
        extra = label_metrics(targets, values, np.array(predicted[label.outcome]), kind, float(targets.mean()))
        metrics.update({f"{label.outcome}.{name}": value for name, value in extra.items()})
    earned = rewards(blueprint, holdout.actions, holdout.outcomes or holdout.labels)
    metrics["logged_value"] = float(earned.mean())
    if blueprint.choices:  # ranking candidates are not all logged; no off-policy estimate
        metrics["product_value"] = policy_value(greedy_actions(blueprint, model, holdout.features),
                                                holdout.actions, holdout.propensities, earned)
    return metrics


def label_metrics(targets: np.ndarray, labels: np.ndarray, predictions: np.ndarray, kind: ModelKind,
                  base_rate: float) -> dict[str, float]:
    """A classifier's AUC, log-loss and normalized entropy, or a regressor's RMSE."""
    if kind == ModelKind.REGRESSOR:
        return {"rmse": rmse(labels, predictions)}
    return {"auc": auc(targets, predictions), "log_loss": log_loss(targets, predictions),
            "normalized_entropy": normalized_entropy(targets, predictions, base_rate)}


def greedy_actions(blueprint: Blueprint, model, features) -> np.ndarray:
    """The action the policy (without exploration) would pick for each encoded row."""
    actions = list(blueprint.choices)
    per_action = [_predict(blueprint, model, features.assign(**{ACTION_COLUMN: a})) for a in actions]
    return np.array([actions[greedy_order(blueprint, actions, {o: [p[o][i] for p in per_action]
                                                               for o in per_action[0]})[0]]
                     for i in range(len(features))], dtype=object)


def _predict(blueprint: Blueprint, model, features) -> dict[str, list[float]]:
    """Per outcome the blueprint weighs, the model's predictions (a model of one label
    predicts the primary one)."""
    predict = getattr(model, "predict_encoded", None)
    predicted = predict(features) if predict else {blueprint.primary_label.outcome: model.score_encoded(features)}
    if len(predicted) == 1:
        predicted = {blueprint.primary_label.outcome: next(iter(predicted.values()))}
    return predicted
