"""The decision policy's arithmetic, checked against values computed by hand: what each
action is worth, where the threshold bites, the default order, exploration and the
propensities that off-policy evaluation divides by."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest

from services.blueprints.spec import parse_blueprint
from services.decision.policies import action_values, choose, greedy_order, uniform_draws


def blueprint(**changes):
    spec = {"name": "policy_case", "decision_type": "binary", "entities": ["user_id"], "default_decision": False,
            "label": {"outcome": "opened", "window": "1h"},
            "product_metric": {"outcome_value": 2.0, "treatment_cost": 0.5},
            "policy": {"threshold": 0.0, "exploration_rate": 0.0}}
    spec.update(changes)
    return parse_blueprint(spec)


MULTI = dict(decision_type="multi_action", actions=["a", "b", "c"], default_decision="b")


def test_an_action_is_worth_its_outcome_value_times_its_score_minus_the_cost_of_acting():
    # true: 2.0 * 0.4 - 0.5 = 0.3; false (binary's baseline) costs nothing: 2.0 * 0.1 = 0.2
    assert action_values(blueprint(), ["true", "false"], [0.4, 0.1]) == pytest.approx([0.3, 0.2])


def test_a_multi_action_use_case_charges_every_action_but_its_default():
    # a: 2*0.5 - 0.5 = 0.5; b (the default): 2*0.3 = 0.6; c: 2*0.25 - 0.5 = 0.0
    assert action_values(blueprint(**MULTI), ["a", "b", "c"], [0.5, 0.3, 0.25]) == pytest.approx([0.5, 0.6, 0.0])


def test_binary_acts_only_when_the_gain_is_strictly_above_the_threshold():
    bp = blueprint(policy={"threshold": 0.25, "exploration_rate": 0.0},
                   product_metric={"outcome_value": 1.0, "treatment_cost": 0.25})
    # acting is worth 1.0 * 0.5 - 0.25 = 0.25, not acting 0.0: a gain of exactly the threshold
    assert greedy_order(bp, ["true", "false"], [0.5, 0.0]) == [1, 0]
    assert greedy_order(bp, ["true", "false"], [0.5625, 0.0]) == [0, 1]  # gain 0.3125 > 0.25
    assert greedy_order(blueprint(), ["true", "false"], [0.4, 0.1]) == [0, 1]  # gain 0.1 > 0


def test_multi_action_orders_every_action_best_first():
    assert greedy_order(blueprint(**MULTI), ["a", "b", "c"], [0.5, 0.3, 0.25]) == [1, 0, 2]  # 0.6, 0.5, 0.0


def test_without_scores_the_default_comes_first_and_the_rest_keep_their_order():
    assert greedy_order(blueprint(**MULTI), ["a", "b", "c"], None) == [1, 0, 2]
    assert greedy_order(blueprint(**MULTI), ["c", "a", "b"], None) == [2, 0, 1]
    ranking = blueprint(decision_type="ranking", default_decision="as_given")
    assert greedy_order(ranking, ["x", "y", "z"], None) == [0, 1, 2]


def test_the_default_decision_is_logged_with_a_zero_score_for_every_action():
    choice = choose(blueprint(**MULTI), "d-1", ["a", "b", "c"], None)
    assert choice.action == "b" and choice.score == 0.0 and choice.propensity == 1.0
    assert [(r.action_id, r.score, r.propensity) for r in choice.ranking] == [
        ("b", 0.0, 1.0), ("a", 0.0, 0.0), ("c", 0.0, 0.0)]


def test_a_choice_reports_the_chosen_actions_own_score_and_logs_each_candidates_features():
    ranking = blueprint(decision_type="ranking", default_decision="as_given")
    features = [{"price": 1.0}, {"price": 2.0}, {"price": 3.0}]
    choice = choose(ranking, "r-1", ["x", "y", "z"], [0.2, 0.7, 0.5], features)
    assert choice.action == "y" and choice.score == 0.7 and not choice.is_exploration
    assert [(r.action_id, r.score, r.features) for r in choice.ranking] == [
        ("y", 0.7, {"price": 2.0}), ("z", 0.5, {"price": 3.0}), ("x", 0.2, {"price": 1.0})]
    assert all(r.features == {} for r in choose(ranking, "r-1", ["x", "y"], [0.2, 0.7]).ranking)


def test_full_exploration_picks_uniformly_and_flags_only_departures_from_the_greedy_choice():
    bp = blueprint(**{**MULTI, "policy": {"exploration_rate": 1.0}})
    choices = [choose(bp, f"e-{i}", ["a", "b", "c"], [0.9, 0.1, 0.1]) for i in range(3000)]
    counts = Counter(c.action for c in choices)
    assert all(abs(counts[a] / 3000 - 1 / 3) < 0.04 for a in "abc"), counts
    # rate 1: every action has propensity 1/3, greedy or not
    assert all(c.propensity == pytest.approx(1 / 3) for c in choices)
    assert all(c.is_exploration == (c.action != "a") for c in choices)  # "a" is greedy: 2*0.9-0.5 = 1.3
    # the explored action leads the ranking; the rest follow in greedy order
    explored = next(c for c in choices if c.action == "c")
    assert [r.action_id for r in explored.ranking] == ["c", "a", "b"]


def test_propensities_split_exploration_evenly_and_give_the_rest_to_the_greedy_action():
    bp = blueprint(**{**MULTI, "policy": {"exploration_rate": 0.3}})
    choice = choose(bp, "p-1", ["a", "b", "c"], [0.9, 0.1, 0.1])
    by_action = {r.action_id: r.propensity for r in choice.ranking}
    assert by_action == pytest.approx({"a": 0.1 + 0.7, "b": 0.1, "c": 0.1})
    assert choice.propensity == pytest.approx(by_action[choice.action])


def test_the_exploration_draws_of_a_decision_id_never_change():
    # The draws are part of the log's meaning (offline evaluation replays them): the first
    # and last 8 bytes of the id's 16-byte BLAKE2b digest, little-endian, over 2**64.
    digest = hashlib.blake2b(b"notif-7f3a", digest_size=16).digest()
    expected = (int.from_bytes(digest[:8], "little") / 2**64, int.from_bytes(digest[8:], "little") / 2**64)
    assert uniform_draws("notif-7f3a") == expected
    draws = [uniform_draws(f"id-{i}") for i in range(2000)]
    assert all(0.0 <= x < 1.0 and 0.0 <= y < 1.0 for x, y in draws)
    assert sum(x for x, _ in draws) / 2000 == pytest.approx(0.5, abs=0.03)
    assert sum(y for _, y in draws) / 2000 == pytest.approx(0.5, abs=0.03)
