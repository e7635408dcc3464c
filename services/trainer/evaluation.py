"""Offline evaluation on a time-based holdout: the model metrics (AUC, log-loss and
normalized entropy, or RMSE; scikit-learn computes them) and the product metric, estimated
off-policy from the logged propensities: what the policy would have earned had it decided
the holdout's decisions (``services.evaluation.ope``: self-normalized IPS for
``product_value``, the promotion gate's figure, with its interval and effective sample size;
IPS and doubly robust beside it)."""

from __future__ import annotations

import math

import numpy as np
from sklearn import metrics as sk

from services.blueprints.spec import Blueprint, DecisionType
from services.decision.policies import action_values, value_text
from services.evaluation import ope
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
    matches = (np.asarray(greedy_actions) == np.asarray(logged_actions)).astype(float)
    return ope.snips(earned, matches, _logged_propensities(propensities)).value


def _logged_propensities(propensities: np.ndarray) -> np.ndarray:
    """Logged propensities as the estimators take them: one logged as 0 (which no policy
    that logs it should do) counts as one in a million."""
    return np.clip(np.asarray(propensities, dtype=float), 1e-6, 1.0)


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
    actions, values = action_value_matrix(blueprint, model, holdout.features)
    chosen = greedy_choices(blueprint, values, offered_mask(actions, holdout.candidates, len(earned)))
    index = {action: i for i, action in enumerate(actions)}
    logged = np.array([index.get(a, -1) for a in holdout.actions], dtype=int)
    return {**metrics, **off_policy_metrics(chosen, logged, holdout.propensities, earned, values)}


def off_policy_metrics(chosen: np.ndarray, logged: np.ndarray, propensities: np.ndarray, earned: np.ndarray,
                       values: np.ndarray) -> dict[str, float]:
    """What the greedy policy (``chosen``: its action index per row) would earn per decision,
    estimated from the logged decisions (``logged``: the logged action's index, -1 for an
    action the policy no longer has) and what they earned. ``product_value`` (the promotion
    gate's figure) is the self-normalized IPS estimate, with its 95% interval and effective
    sample size; ``product_value_ips`` and ``product_value_dr`` are IPS and doubly robust
    estimates, DR with the model's own expected product value per action (``values``, n x k)
    as its reward model."""
    mu = _logged_propensities(propensities)
    matches = (chosen == logged).astype(float)
    snips, ips = ope.snips(earned, matches, mu), ope.ips(earned, matches, mu)
    dr = ope.doubly_robust(earned, ope.one_hot(chosen, values.shape[1]), logged, mu, values)
    metrics = {"product_value": snips.value, "product_value_ci_low": snips.ci_low,
               "product_value_ci_high": snips.ci_high, "product_value_ess": snips.effective_sample_size}
    for name, estimate in (("ips", ips), ("dr", dr)):
        metrics.update({f"product_value_{name}": estimate.value, f"product_value_{name}_ci_low": estimate.ci_low,
                        f"product_value_{name}_ci_high": estimate.ci_high})
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


def greedy_actions(blueprint: Blueprint, model, features, candidates: np.ndarray | None = None) -> np.ndarray:
    """The action the policy (without exploration) would pick for each encoded row among the
    actions its decision offered (``candidates``: a tuple per row, () or None for all; for a
    numeric decision: the best value of its grid, as the action text it is logged under)."""
    actions, values = action_value_matrix(blueprint, model, features)
    chosen = greedy_choices(blueprint, values, offered_mask(actions, candidates, len(features)))
    return np.array(actions, dtype=object)[chosen]


def action_value_matrix(blueprint: Blueprint, model, features) -> tuple[list[str], np.ndarray]:
    """The actions the policy chooses among (a numeric decision's grid values as action
    texts) and the model's expected product value of each for each row (n x k)."""
    if blueprint.decision_type == DecisionType.NUMERIC:
        grid = blueprint.numeric.grid
        actions = [value_text(v) for v in grid]
        per_action = [_predict(blueprint, model, features.assign(**{VALUE_COLUMN: v})) for v in grid]
    else:
        actions = list(blueprint.choices)
        per_action = [_predict(blueprint, model, features.assign(**{ACTION_COLUMN: a})) for a in actions]
    predicted = {o: [np.asarray(p[o], dtype=float) for p in per_action] for o in per_action[0]}
    return actions, np.array(action_values(blueprint, actions, predicted), dtype=float).T


def offered_mask(actions: list[str], candidates: np.ndarray | None, n: int) -> np.ndarray:
    """Per row and action (n x k), whether the row's decision offered it: every action when
    it offered none, or none that the blueprint still has."""
    mask = np.ones((n, len(actions)), dtype=bool)
    if candidates is None:
        return mask
    known: dict[tuple, np.ndarray] = {}
    for i, offered in enumerate(candidates):
        if offered:
            if offered not in known:
                allowed = np.array([a in offered for a in actions])
                known[offered] = allowed if allowed.any() else np.ones(len(actions), dtype=bool)
            mask[i] = known[offered]
    return mask


def greedy_choices(blueprint: Blueprint, values: np.ndarray, offered: np.ndarray) -> np.ndarray:
    """Per row, the index of the action ``greedy_order`` puts first among the offered ones
    (the choice the serving policy makes when it does not explore): the highest expected
    value (on an exact tie, the first in the blueprint's order rather than the offered order);
    a binary decision acts ("true", index 0) only when acting beats not acting by more than
    the policy's threshold."""
    if blueprint.decision_type == DecisionType.BINARY:
        return np.where(values[:, 0] - values[:, 1] > blueprint.policy.threshold, 0, 1)
    return np.argmax(np.where(offered, values, -np.inf), axis=1)


def _predict(blueprint: Blueprint, model, features) -> dict[str, list[float]]:
    """Per outcome the blueprint weighs, the model's predictions (a model of one label
    predicts the primary one)."""
    predict = getattr(model, "predict_encoded", None)
    predicted = predict(features) if predict else {blueprint.primary_label.outcome: model.score_encoded(features)}
    if len(predicted) == 1:
        predicted = {blueprint.primary_label.outcome: next(iter(predicted.values()))}
    return predicted
