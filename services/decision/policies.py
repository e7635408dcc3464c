"""Decision policies: from model scores (or none) to an action, with exploration
(epsilon-greedy, or softmax over the actions' expected product values for binary and
multi-action decisions) and the propensity of what was chosen (needed for off-policy
evaluation).

Exploration draws come from a hash of the decision id, so a decision is reproducible and
a replayed request gets the same answer.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from services.blueprints.spec import Blueprint, DecisionType, Exploration, Objective
from services.decisions.record import ScoredCandidate


@dataclass(frozen=True)
class PolicyChoice:
    action: str
    score: float
    propensity: float
    is_exploration: bool
    ranking: tuple[ScoredCandidate, ...]
    predictions: dict[str, float] = field(default_factory=dict)  # per outcome, for the chosen action
    value: float | None = None  # a numeric decision's chosen value


def uniform_draws(decision_id: str) -> tuple[float, float]:
    """Two independent uniform numbers in [0, 1) derived from the decision id."""
    digest = hashlib.blake2b(decision_id.encode(), digest_size=16).digest()
    scale = float(1 << 64)
    return int.from_bytes(digest[:8], "little") / scale, int.from_bytes(digest[8:], "little") / scale


Scores = Sequence[float] | Mapping[str, Sequence[float]]  # per action; per outcome when several


def predictions_of(blueprint: Blueprint, scores: Scores) -> Mapping[str, Sequence[float]]:
    """Per-outcome predictions; a plain list of scores is the primary label's."""
    return scores if isinstance(scores, Mapping) else {blueprint.primary_label.outcome: scores}


def action_values(blueprint: Blueprint, actions: list[str], scores: Scores) -> list[float]:
    """Expected product value of each action: the predicted outcomes, each weighted by what
    it is worth (the product metric's weights), minus what acting costs. Choosing the
    blueprint's default (binary "false", the default action) costs nothing; every other
    action costs ``treatment_cost``."""
    predictions = predictions_of(blueprint, scores)
    cost, baseline = blueprint.product_metric.treatment_cost, baseline_action(blueprint)
    values = [0.0] * len(actions)
    for outcome, weight in blueprint.weights.items():  # an outcome at a time: 100 candidates in one pass each
        values = [value + weight * predicted for value, predicted in zip(values, predictions[outcome], strict=True)]
    return [value - (cost if action != baseline else 0.0) for value, action in zip(values, actions)]


def baseline_action(blueprint: Blueprint) -> str:
    """The action that costs nothing: not acting (binary), the default action, or the
    default value (numeric)."""
    if blueprint.decision_type == DecisionType.BINARY:
        return "false"
    if blueprint.decision_type == DecisionType.NUMERIC:
        return value_text(float(blueprint.default_decision))
    return blueprint.default_decision


def greedy_order(blueprint: Blueprint, actions: list[str], scores: Scores | None) -> list[int]:
    """Action indexes, best first, by expected product value; the default order when
    there are no scores. A binary use case (actions always ("true", "false")) acts only when
    its gain is above the policy's threshold: by the ``uplift`` objective (the default) the
    value of acting minus the value of not acting, by the ``response`` objective the value
    of acting alone (see ``Objective``)."""
    if scores is None:
        return _default_order(blueprint, actions)
    values = action_values(blueprint, actions, scores)
    if blueprint.decision_type == DecisionType.BINARY:
        gain = values[0] if blueprint.objective == Objective.RESPONSE else values[0] - values[1]
        return [0, 1] if gain > blueprint.policy.threshold else [1, 0]
    return sorted(range(len(actions)), key=lambda i: -values[i])


def choose(blueprint: Blueprint, decision_id: str, actions: list[str], scores: Scores | None,
           candidate_features: list[dict] | None = None) -> PolicyChoice:
    """Picks among ``actions``. ``scores`` are the model's per-action predictions (per
    outcome when several), or None to fall back to the blueprint's default decision;
    ``candidate_features`` (ranking) are logged with each candidate. The score shown for an
    action is its primary label's prediction.

    With the exploration rate's probability the action is drawn uniformly; otherwise it is
    the greedy one (epsilon-greedy) or drawn by ``softmax`` (softmax exploration; without
    scores there are no values to weigh, and the default decision is chosen as by
    epsilon-greedy). Both draws come from the decision id, and each action's propensity is
    its exact probability under that mixture: ``rate / k + (1 - rate) * p(action)``."""
    if blueprint.decision_type == DecisionType.RANKING:
        return rank(blueprint, decision_id, actions, scores, candidate_features)
    greedy = greedy_order(blueprint, actions, scores)
    explore_draw, pick_draw = uniform_draws(decision_id)
    rate = blueprint.policy.exploration_rate
    explored = explore_draw < rate
    exploiting = exploitation(blueprint, actions, scores, greedy[0])
    first = int(pick_draw * len(actions)) if explored else drawn(exploiting, pick_draw)
    propensities = [rate / len(actions) + (1 - rate) * p for p in exploiting]
    order = [first] + [i for i in greedy if i != first]
    predictions = predictions_of(blueprint, scores) if scores is not None else {}
    shown = predictions.get(blueprint.primary_label.outcome, [0.0] * len(actions))
    extra = candidate_features or [{}] * len(actions)
    ranking = tuple(ScoredCandidate(actions[i], float(shown[i]), propensities[i], extra[i]) for i in order)
    return PolicyChoice(action=actions[first], score=float(shown[first]),
                        propensity=propensities[first], is_exploration=explored and first != greedy[0],
                        ranking=ranking, predictions={o: float(p[first]) for o, p in predictions.items()})


def exploitation(blueprint: Blueprint, actions: list[str], scores: Scores | None, greedy: int) -> list[float]:
    """What the policy does when it does not explore, as each action's probability: the
    softmax's weights, or all on the greedy action."""
    if blueprint.policy.exploration == Exploration.SOFTMAX and scores is not None:
        return softmax(blueprint, actions, scores)
    return [float(i == greedy) for i in range(len(actions))]


def action_probabilities(blueprint: Blueprint, actions: list[str], scores: Scores | None) -> list[float]:
    """Each action's probability under the policy (binary and multi-action): the exploration
    rate's uniform share plus the rest as the policy exploits. These are the propensities a
    decision logs, and what an off-policy replay weighs logged decisions by."""
    rate = blueprint.policy.exploration_rate
    exploiting = exploitation(blueprint, actions, scores, greedy_order(blueprint, actions, scores)[0])
    return [rate / len(actions) + (1 - rate) * p for p in exploiting]


def softmax(blueprint: Blueprint, actions: list[str], scores: Scores) -> list[float]:
    """The softmax policy's probability of each action: ``exp(value / temperature)``,
    normalized, over the same expected product values the greedy policy compares (a binary
    decision's acting value less the policy's threshold, so that the more likely action is
    the greedy one; by the ``response`` objective not acting is worth 0, as it is there)."""
    values = action_values(blueprint, actions, scores)
    if blueprint.decision_type == DecisionType.BINARY:
        waiting = 0.0 if blueprint.objective == Objective.RESPONSE else values[1]
        values = [values[0] - blueprint.policy.threshold, waiting]
    top, temperature = max(values), blueprint.policy.temperature
    weights = [math.exp((v - top) / temperature) for v in values]  # the best has weight 1: no overflow
    total = sum(weights)
    return [w / total for w in weights]


def drawn(probabilities: list[float], draw: float) -> int:
    """The action a uniform ``draw`` in [0, 1) picks by the inverse of the cumulative
    probabilities."""
    cumulative = 0.0
    for i, p in enumerate(probabilities):
        cumulative += p
        if draw < cumulative:
            return i
    return max(i for i, p in enumerate(probabilities) if p > 0)  # a draw above a sum rounded below 1


def rank(blueprint: Blueprint, decision_id: str, items: list[str], scores: Scores | None,
         candidate_features: list[dict] | None = None) -> PolicyChoice:
    """Orders the items by expected value (as given without a model). With the exploration
    rate's probability the whole order is shuffled instead (a uniformly random permutation,
    drawn from the decision id), so that every slot's propensity is known: an item lands in
    slot k with probability rate / n, plus (1 - rate) if the greedy order puts it there."""
    greedy = greedy_order(blueprint, items, scores)
    explore_draw, _ = uniform_draws(decision_id)
    rate, n = blueprint.policy.exploration_rate, len(items)
    order = shuffled(greedy, decision_id) if explore_draw < rate else greedy
    predictions = predictions_of(blueprint, scores) if scores is not None else {}
    shown = predictions.get(blueprint.primary_label.outcome, [0.0] * n)
    extra = candidate_features or [{}] * n
    ranking = tuple(ScoredCandidate(items[i], float(shown[i]), rate / n + (1 - rate) * (greedy[slot] == i), extra[i])
                    for slot, i in enumerate(order))
    first = order[0]
    return PolicyChoice(action=items[first], score=float(shown[first]), propensity=ranking[0].propensity,
                        is_exploration=order != greedy, ranking=ranking,
                        predictions={o: float(p[first]) for o, p in predictions.items()})


def choose_value(blueprint: Blueprint, decision_id: str, scores: Scores | None) -> PolicyChoice:
    """A numeric decision: the value of the blueprint's grid with the best expected product
    value (the default value without a model). With the exploration rate's probability it
    tries a value around that one instead, uniformly among the ``exploration_width`` grid
    steps either side; the logged propensity is the probability of the value chosen."""
    grid, spec = blueprint.numeric.grid, blueprint.numeric
    default = min(range(len(grid)), key=lambda i: abs(grid[i] - float(blueprint.default_decision)))
    if scores is None:
        best = default
    else:
        values = action_values(blueprint, [value_text(v) for v in grid], scores)
        best = max(range(len(grid)), key=lambda i: values[i])
    near = [i for i in range(len(grid)) if abs(i - best) <= spec.exploration_width]
    explore_draw, pick_draw = uniform_draws(decision_id)
    rate = blueprint.policy.exploration_rate
    chosen = near[int(pick_draw * len(near))] if explore_draw < rate else best
    propensity = rate / len(near) + (1 - rate) * (chosen == best)
    predictions = predictions_of(blueprint, scores) if scores is not None else {}
    return PolicyChoice(action=value_text(grid[chosen]), score=float(
        predictions.get(blueprint.primary_label.outcome, [0.0] * len(grid))[chosen]), propensity=propensity,
        is_exploration=chosen != best, ranking=(), value=grid[chosen],
        predictions={o: float(p[chosen]) for o, p in predictions.items()})


def value_text(value: float) -> str:
    """A numeric decision's value as its action text (``800``, ``1.5``)."""
    return f"{value:g}"


def shuffled(order: list[int], decision_id: str) -> list[int]:
    """A uniformly random permutation of ``order``, the same for the same decision id."""
    digest = hashlib.blake2b(f"{decision_id}:shuffle".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "little")).sample(order, len(order))


def _default_order(blueprint: Blueprint, actions: list[str]) -> list[int]:
    """The default decision first; the rest (ranking: all) in the order given."""
    if blueprint.default_decision in actions:
        first = actions.index(blueprint.default_decision)
        return [first] + [i for i in range(len(actions)) if i != first]
    return list(range(len(actions)))
