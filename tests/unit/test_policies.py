from __future__ import annotations

from collections import Counter

import pytest
import yaml

from services.blueprints.spec import PolicySpec, parse_blueprint
from services.decision.policies import choose, greedy_order
from tests.conftest import EXAMPLE_BLUEPRINT

BINARY = parse_blueprint(yaml.safe_load(EXAMPLE_BLUEPRINT.read_text()))


def no_exploration(bp):
    return bp.model_copy(update={"policy": PolicySpec(threshold=bp.policy.threshold, exploration_rate=0.0)})


def test_binary_sends_only_when_expected_gain_beats_the_cost():
    bp = no_exploration(BINARY)  # open worth 1.0, send costs 0.25
    assert choose(bp, "a", ["true", "false"], [0.40, 0.05]).action == "true"   # gain 0.35 - 0.25 > 0
    assert choose(bp, "b", ["true", "false"], [0.20, 0.05]).action == "false"  # gain 0.15 - 0.25 < 0


def test_threshold_raises_the_bar():
    bp = BINARY.model_copy(update={"policy": PolicySpec(threshold=0.2, exploration_rate=0.0)})
    assert greedy_order(bp, ["true", "false"], [0.5, 0.1]) == [1, 0]  # gain 0.15 <= 0.2


def test_no_model_gives_the_default_decision():
    bp = no_exploration(BINARY)
    choice = choose(bp, "c", ["true", "false"], None)
    assert choice.action == "true" and choice.propensity == 1.0 and not choice.is_exploration


def test_exploration_rate_and_propensities_are_consistent():
    bp = BINARY  # exploration 0.1 over 2 actions
    choices = [choose(bp, f"id-{i}", ["true", "false"], [0.9, 0.1]) for i in range(4000)]
    counts = Counter(c.action for c in choices)
    assert counts["false"] / 4000 == pytest.approx(0.05, abs=0.015)
    assert all(c.propensity == pytest.approx(0.05) for c in choices if c.action == "false")
    assert all(c.propensity == pytest.approx(0.95) for c in choices if c.action == "true")


def test_same_decision_id_gives_same_choice():
    assert choose(BINARY, "same", ["true", "false"], [0.5, 0.5]) == choose(BINARY, "same", ["true", "false"],
                                                                             [0.5, 0.5])


def test_multi_action_picks_the_best_value():
    spec = yaml.safe_load(EXAMPLE_BLUEPRINT.read_text())
    spec.update(decision_type="multi_action", actions=["a", "b", "c"], default_decision="a")
    bp = no_exploration(parse_blueprint(spec))
    choice = choose(bp, "m", ["a", "b", "c"], [0.1, 0.6, 0.3])
    assert choice.action == "b"
    # values: a 0.1 (the default costs nothing), b 0.6 - 0.25, c 0.3 - 0.25
    assert [r.action_id for r in choice.ranking] == ["b", "a", "c"]
