"""What a ranking's and a numeric decision's policy choice carries besides its action: the
first item's (or chosen value's) score and predictions, the propensity logged for it, and
whether it explored; decisions are picked by their id's exploration draw."""

from __future__ import annotations

import pytest

from services.decision.policies import choose_value, rank, uniform_draws
from tests.unit.test_numeric import BLUEPRINT as BITRATE, GRID
from tests.unit.test_ranking import BLUEPRINT as FEED  # exploration rate 0.3

ITEMS, SCORES = ["a", "b", "c"], [0.2, 0.9, 0.5]  # greedy order: b, c, a


def decision_id(explores: bool, rate: float) -> str:
    """The first decision id whose exploration draw explores (or not) at ``rate``."""
    return next(f"d{i}" for i in range(1000) if (uniform_draws(f"d{i}")[0] < rate) == explores)


def test_a_ranking_that_does_not_explore_logs_each_slots_propensity_and_the_first_items_score():
    choice = rank(FEED, decision_id(False, 0.3), ITEMS, SCORES)
    assert [r.action_id for r in choice.ranking] == ["b", "c", "a"] and not choice.is_exploration
    # each item is where the greedy order puts it: 0.3 / 3 + 0.7
    assert [r.propensity for r in choice.ranking] == pytest.approx([0.8, 0.8, 0.8])
    assert choice.action == "b" and choice.propensity == pytest.approx(0.8)
    assert choice.score == pytest.approx(0.9) and choice.predictions == {"clicked": pytest.approx(0.9)}


def test_a_ranking_that_explores_logs_the_propensity_of_its_shuffled_first_slot():
    choices = [rank(FEED, f"d{i}", ITEMS, SCORES) for i in range(200) if uniform_draws(f"d{i}")[0] < 0.3]
    shuffled = [c for c in choices if [r.action_id for r in c.ranking] != ["b", "c", "a"]]
    assert choices and all(c.is_exploration for c in shuffled) and shuffled
    for choice in shuffled:
        greedy = ["b", "c", "a"]
        expected = [0.1 + 0.7 * (r.action_id == greedy[slot]) for slot, r in enumerate(choice.ranking)]
        assert [r.propensity for r in choice.ranking] == pytest.approx(expected)
        assert choice.propensity == pytest.approx(expected[0])
        first = choice.ranking[0]
        assert choice.action == first.action_id and choice.score == pytest.approx(first.score)


def test_a_ranking_without_a_model_keeps_the_given_order_with_zero_scores():
    choice = rank(FEED, decision_id(False, 0.3), ITEMS, None)
    assert [r.action_id for r in choice.ranking] == ITEMS
    assert [r.score for r in choice.ranking] == [0.0, 0.0, 0.0] and choice.score == 0.0
    assert choice.predictions == {}


SCORES_1600 = {"watched": [1.0 if v == 1600 else 0.0 for v in GRID], "rebuffered": [0.1] * len(GRID)}


def test_a_numeric_choice_that_does_not_explore_carries_the_best_values_predictions():
    choice = choose_value(BITRATE, decision_id(False, 0.2), SCORES_1600)
    assert choice.value == 1600 and not choice.is_exploration and choice.ranking == ()
    assert choice.score == pytest.approx(1.0)  # the primary label's prediction
    assert choice.predictions == {"watched": pytest.approx(1.0), "rebuffered": pytest.approx(0.1)}
    assert choice.propensity == pytest.approx(0.2 / 5 + 0.8)


def test_a_numeric_choice_that_explores_away_from_the_best_value_says_so():
    ids = [f"d{i}" for i in range(300) if uniform_draws(f"d{i}")[0] < 0.2]
    away = [c for c in (choose_value(BITRATE, i, SCORES_1600) for i in ids) if c.value != 1600]
    assert away and all(c.is_exploration for c in away)
    assert all(c.score == 0.0 and c.predictions["watched"] == 0.0 for c in away)


def test_a_numeric_choice_without_a_model_scores_zero():
    choice = choose_value(BITRATE, decision_id(False, 0.2), None)
    assert choice.value == 1000 and choice.score == 0.0 and choice.predictions == {}
