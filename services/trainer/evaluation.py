"""Offline evaluation on a time-based holdout: the model metrics (AUC, log-loss and
normalized entropy, or RMSE; scikit-learn computes them) and the product metric, estimated
off-policy from the logged propensities: what the policy would have earned had it decided
the holdout's decisions."""

from __future__ import annotations

import math

import numpy as np
from sklearn import metrics as sk

from services.blueprints.spec import Blueprint, DecisionType
from services.decision.policies import action_values, greedy_order, value_text
from services.models.encoding import ACTION_COLUMN, VALUE_COLUMN
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
    for label in blueprint.predicted_labels[1:]:
        kind = label_kind(blueprint, label)
        values = holdout.outcomes[label.outcome]
        targets = holdout.targets_of(label.outcome, kind)
        extra = label_metrics(targets, values, np.array(predicted[label.outcome]), kind, float(targets.mean()))
        metrics.update({f"{label.outcome}.{name}": value for name, value in extra.items()})
    if blueprint.decision_type == DecisionType.RANKING:
        return {**metrics, **ranking_metrics(blueprint, model, holdout)}
    earned = rewards(blueprint, holdout.actions, holdout.outcomes or holdout.labels)
    metrics["logged_value"] = float(earned.mean())
    metrics["product_value"] = policy_value(greedy_actions(blueprint, model, holdout.features),
                                            holdout.actions, holdout.propensities, earned)
    return metrics


def ranking_metrics(blueprint: Blueprint, model, holdout) -> dict[str, float]:
    """NDCG@10 and MRR of the model's order against the items' labels, the logged value per
    decision, and the product value of the model's greedy ranking estimated off-policy."""
    if holdout.groups is None:
        return {}
    item_rewards = item_values(blueprint, holdout.outcomes or {blueprint.primary_label.outcome: holdout.labels})
    predicted = {o: np.array(p) for o, p in _predict(blueprint, model, holdout.features).items()}
    scores = predicted[blueprint.primary_label.outcome]
    model_value = item_values(blueprint, predicted)  # what the model expects each item to earn
    groups = [np.flatnonzero(holdout.groups == g) for g in dict.fromkeys(holdout.groups)]
    return {
        "ndcg_at_10": float(np.mean([ndcg_at_k(holdout.labels[g], scores[g], 10) for g in groups])),
        "mrr": float(np.mean([reciprocal_rank(holdout.labels[g], scores[g]) for g in groups])),
        "logged_value": float(np.mean([item_rewards[g].sum() for g in groups])),
        "product_value": ranking_policy_value(groups, model_value, holdout.positions, holdout.propensities,
                                              item_rewards),
    }


def item_values(blueprint: Blueprint, outcomes: dict[str, np.ndarray]) -> np.ndarray:
    """What each shown item earned: its labels weighted by the product metric (a ranking
    has no treatment cost)."""
    return sum(blueprint.weights[o] * values for o, values in outcomes.items() if o in blueprint.weights)


def ndcg_at_k(relevance: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Normalized discounted cumulative gain of the order ``scores`` give, over the first
    ``k`` places; 1 when no item is relevant (every order is as good)."""
    gains = np.asarray(relevance, dtype=float)
    discounts = 1 / np.log2(np.arange(2, min(k, len(gains)) + 2))
    ideal = (np.sort(gains)[::-1][:k] * discounts).sum()
    if ideal == 0:
        return 1.0
    return float((gains[np.argsort(-scores, kind="stable")][:k] * discounts).sum() / ideal)


def reciprocal_rank(relevance: np.ndarray, scores: np.ndarray) -> float:
    """1 / the place of the first relevant item in the order ``scores`` give (0 if none)."""
    ordered = np.asarray(relevance)[np.argsort(-scores, kind="stable")]
    hits = np.flatnonzero(ordered > 0)
    return float(1 / (hits[0] + 1)) if len(hits) else 0.0


def ranking_policy_value(groups: list[np.ndarray], model_value: np.ndarray, positions: np.ndarray,
                         propensities: np.ndarray, earned: np.ndarray) -> float:
    """What the model's greedy ranking would earn per decision, estimated from rankings
    logged by another policy, slot by slot (independent-slot IPS, self-normalized per slot):
    a logged item counts where the target ranking puts the same item in the same slot,
    weighted by 1 / the probability that the logging policy put it there."""
    weighted, weights = {}, {}
    for rows in groups:
        target = rows[np.argsort(-model_value[rows], kind="stable")]  # the model's order of the shown items
        for slot, row in enumerate(target):
            logged = rows[positions[rows] == slot]
            if len(logged) and logged[0] == row:
                w = 1 / max(propensities[row], 1e-6)
                weighted[slot] = weighted.get(slot, 0.0) + w * earned[row]
                weights[slot] = weights.get(slot, 0.0) + w
    if not weights:
        return math.nan
    return float(sum(weighted[slot] / weights[slot] for slot in weights))


def label_metrics(targets: np.ndarray, labels: np.ndarray, predictions: np.ndarray, kind: ModelKind,
                  base_rate: float) -> dict[str, float]:
    """A classifier's AUC, log-loss and normalized entropy, or a regressor's RMSE."""
    if kind == ModelKind.REGRESSOR:
        return {"rmse": rmse(labels, predictions)}
    return {"auc": auc(targets, predictions), "log_loss": log_loss(targets, predictions),
            "normalized_entropy": normalized_entropy(targets, predictions, base_rate)}


def greedy_actions(blueprint: Blueprint, model, features) -> np.ndarray:
    """The action the policy (without exploration) would pick for each encoded row (for a
    numeric decision: the best value of its grid, as the action text it is logged under)."""
    if blueprint.decision_type == DecisionType.NUMERIC:
        grid = blueprint.numeric.grid
        actions = [value_text(v) for v in grid]
        per_action = [_predict(blueprint, model, features.assign(**{VALUE_COLUMN: v})) for v in grid]
    else:
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
