"""Softmax exploration: binary and multi-action decisions drawn in proportion to
exp(value / temperature), mixed with the uniform floor of the exploration rate. The logged
propensities are the exact probabilities of that mixture (they sum to 1 and match the
frequencies of the choices drawn from many decision ids, by a chi-square test), every action
keeps at least the floor, the draws are the decision id's, epsilon-greedy stays as it was, and
a blueprint with a bad temperature or an unfit decision type names the key; the Decider logs
the softmax propensity of each decision, among the candidates it was offered."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from scipy import stats

from services.blueprints.spec import parse_blueprint
from services.blueprints.store import BlueprintStore
from services.decision.decider import CandidateInput, DecideCommand, Decider, NoModels
from services.decision.policies import choose, softmax
from services.decisions.log import DecisionLog
from services.platform.data_dir import DataDir
from services.platform.errors import InvalidArgument

BASE = {"name": "softmax_case", "decision_type": "multi_action", "entities": ["user_id"],
        "actions": ["a", "b", "c", "d"], "default_decision": "b", "label": {"outcome": "clicked", "window": "1h"},
        "product_metric": {"outcome_value": 1.0, "treatment_cost": 0.0}}
SCORES = [0.30, 0.25, 0.10, 0.05]  # the expected product value of a, b, c, d
DECISIONS = 10_000


def blueprint(policy: dict, **changes):
    return parse_blueprint({**BASE, **changes, "policy": policy})


def propensities(choice) -> dict[str, float]:
    return {r.action_id: r.propensity for r in choice.ranking}


def test_the_propensities_are_the_softmax_mixed_with_the_uniform_floor_by_hand():
    bp = blueprint({"exploration": "softmax", "temperature": 0.1, "exploration_rate": 0.2})
    weights = [math.exp((v - 0.30) / 0.1) for v in SCORES]
    expected = {a: 0.2 / 4 + 0.8 * w / sum(weights) for a, w in zip("abcd", weights)}
    assert softmax(bp, list("abcd"), SCORES) == pytest.approx([w / sum(weights) for w in weights])
    choice = choose(bp, "by-hand", list("abcd"), SCORES)
    assert propensities(choice) == pytest.approx(expected)
    assert choice.propensity == pytest.approx(expected[choice.action])


@pytest.mark.parametrize("policy, kind", [
    ({"exploration": "softmax", "temperature": 0.1, "exploration_rate": 0.1}, "multi_action"),
    ({"exploration": "softmax", "temperature": 0.02, "exploration_rate": 0.3}, "multi_action"),
    ({"exploration": "softmax", "temperature": 0.5, "exploration_rate": 0.0}, "multi_action"),
    ({"exploration": "softmax", "temperature": 0.1, "exploration_rate": 0.1, "threshold": 0.05}, "binary"),
])
def test_propensities_sum_to_one_and_match_the_frequencies_of_the_choices(policy, kind):
    if kind == "binary":
        bp = blueprint(policy, decision_type="binary", actions=[], default_decision=False)
        actions, scores = ["true", "false"], [0.30, 0.28]
    else:
        bp, actions, scores = blueprint(policy), list("abcd"), SCORES
    choices = [choose(bp, f"sm-{i}", actions, scores) for i in range(DECISIONS)]
    expected = propensities(choices[0])
    assert sum(expected.values()) == pytest.approx(1.0)
    assert all(propensities(c) == expected for c in choices)  # the same scores, the same distribution
    assert all(c.propensity == expected[c.action] for c in choices)  # what is logged is the chosen one's
    counts = Counter(c.action for c in choices)
    observed = [counts[a] for a in actions]
    _, p_value = stats.chisquare(observed, [DECISIONS * expected[a] for a in actions])
    assert p_value > 0.001, (observed, expected)


def test_a_binary_softmax_weighs_acting_less_the_threshold_against_not_acting():
    bp = blueprint({"exploration": "softmax", "temperature": 0.1, "threshold": 0.05},
                   decision_type="binary", actions=[], default_decision=False)
    # acting is worth 0.30, not acting 0.28: 0.02 better, but 0.03 short of the threshold
    p_act = 1 / (1 + math.exp(-(0.30 - 0.05 - 0.28) / 0.1))
    assert softmax(bp, ["true", "false"], [0.30, 0.28]) == pytest.approx([p_act, 1 - p_act])
    assert p_act < 0.5  # the greedy choice (not acting) stays the more likely one


def test_the_exploration_floor_holds_however_cold_the_softmax():
    bp = blueprint({"exploration": "softmax", "temperature": 0.001, "exploration_rate": 0.2})
    choices = [choose(bp, f"floor-{i}", list("abcd"), SCORES) for i in range(DECISIONS)]
    floor = 0.2 / 4
    assert all(p >= floor for p in propensities(choices[0]).values())
    assert propensities(choices[0])["d"] == pytest.approx(floor)  # 0.25 below the best at T = 0.001: nothing more
    counts = Counter(c.action for c in choices)
    assert all(counts[a] / DECISIONS == pytest.approx(floor, abs=0.006) for a in "bcd"), counts
    assert all(c.is_exploration == (c.action != "a") for c in choices)  # "a" is the greedy action


def test_a_hot_softmax_is_nearly_uniform_and_a_cold_one_greedy():
    hot = blueprint({"exploration": "softmax", "temperature": 1000.0})
    cold = blueprint({"exploration": "softmax", "temperature": 1e-6})
    assert softmax(hot, list("abcd"), SCORES) == pytest.approx([0.25] * 4, abs=1e-3)
    assert softmax(cold, list("abcd"), SCORES) == [1.0, 0.0, 0.0, 0.0]


def test_the_choice_is_the_decision_ids_and_never_changes():
    bp = blueprint({"exploration": "softmax", "temperature": 0.1, "exploration_rate": 0.1})
    first = [choose(bp, f"again-{i}", list("abcd"), SCORES) for i in range(200)]
    assert first == [choose(bp, f"again-{i}", list("abcd"), SCORES) for i in range(200)]
    assert len({c.action for c in first}) == 4


def test_without_a_model_softmax_chooses_the_default_as_epsilon_greedy_does():
    softmax_bp = blueprint({"exploration": "softmax", "temperature": 0.1, "exploration_rate": 0.2})
    greedy_bp = blueprint({"exploration_rate": 0.2})
    for i in range(300):
        assert choose(softmax_bp, f"nm-{i}", list("abcd"), None) == choose(greedy_bp, f"nm-{i}", list("abcd"), None)


def test_epsilon_greedy_is_the_default_and_unchanged():
    default = blueprint({"exploration_rate": 0.3})
    explicit = blueprint({"exploration": "epsilon_greedy", "exploration_rate": 0.3})
    for i in range(300):
        choice = choose(default, f"eg-{i}", list("abcd"), SCORES)
        assert choice == choose(explicit, f"eg-{i}", list("abcd"), SCORES)
        assert propensities(choice) == pytest.approx({"a": 0.075 + 0.7, "b": 0.075, "c": 0.075, "d": 0.075})


@pytest.mark.parametrize("changes, expected", [
    ({"policy": {"exploration": "softmax", "temperature": 0}}, ("policy.temperature", "must be greater than 0.0")),
    ({"policy": {"exploration": "softmax", "temperature": -0.5}}, ("policy.temperature", "must be greater than 0.0")),
    ({"policy": {"exploration": "softmax", "temperature": 5000}}, ("policy.temperature", "must be at most 1000.0")),
    ({"policy": {"exploration": "softmax", "temperature": "warm"}}, ("policy.temperature", "must be a number")),
    ({"policy": {"exploration": "softmax"}},
     ("policy.temperature", "is required with exploration: softmax (in product-value units: the smaller, the "
                            "greedier; e.g. 0.05)")),
    ({"policy": {"temperature": 0.1}}, ("policy.temperature", "is only used with exploration: softmax")),
    ({"policy": {"exploration": "boltzmann"}}, ("policy.exploration", "must be one of ['epsilon_greedy', 'softmax']")),
    ({"decision_type": "ranking", "actions": [], "default_decision": "as_given",
      "policy": {"exploration": "softmax", "temperature": 0.1}},
     ("policy.exploration", "softmax is for binary and multi_action decisions: a ranking explores by shuffling the "
                            "whole order, so that each slot's propensity is known; use epsilon_greedy")),
    ({"decision_type": "numeric", "actions": [], "default_decision": 1, "numeric": {"min": 0, "max": 4, "step": 1},
      "policy": {"exploration": "softmax", "temperature": 0.1}},
     ("policy.exploration", "softmax is for binary and multi_action decisions: a numeric decision explores within "
                            "numeric.exploration_width steps of its best value; use epsilon_greedy")),
])
def test_a_bad_softmax_policy_names_the_key(changes, expected):
    with pytest.raises(InvalidArgument) as raised:
        parse_blueprint({**BASE, **changes})
    assert [(v.field, v.reason) for v in raised.value.violations] == [expected]


SOFTMAX_BLUEPRINT = """
name: softmax_layouts
decision_type: multi_action
entities: [user_id]
actions: [a, b, c, d]
default_decision: b
label: {outcome: clicked, window: 1h}
product_metric: {outcome_value: 1.0, treatment_cost: 0.0}
policy: {exploration: softmax, temperature: 0.1, exploration_rate: 0.1}
"""


class FixedModel:
    version = "m000001"

    def score(self, rows):
        return [dict(zip("abcd", SCORES))[row["action"]] for row in rows]


class OneModel(NoModels):
    def get(self, use_case):
        return FixedModel()


def test_the_decider_logs_the_softmax_propensity_of_each_decision(tmp_path):
    blueprints = BlueprintStore(tmp_path / "blueprints")
    blueprints.apply(SOFTMAX_BLUEPRINT)
    log = DecisionLog(DataDir(tmp_path).ensure().decisions)
    try:
        decider = Decider(blueprints, log, models=OneModel())
        expected = propensities(choose(blueprints.latest("softmax_layouts"), "any", list("abcd"), SCORES))
        offered = {"a": 0.30, "c": 0.10}  # a decision that offers two of the actions chooses between them
        expected_offered = propensities(choose(blueprints.latest("softmax_layouts"), "any", list(offered),
                                               list(offered.values())))
        for i in range(20):  # each decision is logged durably (an fsync): a few are enough
            record, _ = decider.decide(DecideCommand(use_case="softmax_layouts", decision_id=f"dc-{i}",
                                                     subject={"user_id": "u1"}))
            assert record.propensity == pytest.approx(expected[record.action])
            assert {r.action_id: r.propensity for r in record.ranking} == pytest.approx(expected)
            record, _ = decider.decide(DecideCommand(
                use_case="softmax_layouts", decision_id=f"dc-offered-{i}", subject={"user_id": "u1"},
                candidates=tuple(CandidateInput(a, {}) for a in offered)))
            assert record.action in offered and record.propensity == pytest.approx(expected_offered[record.action])
    finally:
        log.close()
