"""Ranking: the policy's exploration and per-slot propensities, one training row per shown
item with its own label, outcomes that must name a shown item, and the ranking metrics and
off-policy estimate against values computed by hand or known by construction."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
import yaml

from services.blueprints.spec import parse_blueprint
from services.blueprints.store import BlueprintStore
from services.decision.decider import CandidateInput, DecideCommand, Decider
from services.decision.policies import rank
from services.decisions.log import DecisionLog, DecisionLookup
from services.labels.outcomes import OutcomeEvent, OutcomeRecorder
from services.labels.training_table import TrainingTable
from services.platform.data_dir import DataDir
from services.platform.errors import InvalidArgument
from services.trainer.evaluation import ndcg_at_k, ranking_policy_value, reciprocal_rank
from tests.unit.test_label_joiner import Clock, make_joiner

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
SPEC = {"name": "feed", "decision_type": "ranking", "entities": ["user_id"], "default_decision": "as_given",
        "features": {"candidate": {"quality": "double"}}, "label": {"outcome": "clicked", "window": "10m"},
        "policy": {"exploration_rate": 0.3}}
BLUEPRINT = parse_blueprint(SPEC)


def test_without_exploration_items_are_ordered_by_value():
    greedy = BLUEPRINT.model_copy(update={"policy": BLUEPRINT.policy.model_copy(update={"exploration_rate": 0.0})})
    choice = rank(greedy, "d", ["a", "b", "c"], [0.2, 0.9, 0.5])
    assert [r.action_id for r in choice.ranking] == ["b", "c", "a"] and not choice.is_exploration
    assert [r.propensity for r in choice.ranking] == [1.0, 1.0, 1.0]


def test_slot_propensities_match_how_often_items_land_in_each_slot():
    items, n = ["a", "b", "c"], 6000
    counts = Counter()
    for i in range(n):
        for slot, scored in enumerate(rank(BLUEPRINT, f"id-{i}", items, [0.9, 0.5, 0.1]).ranking):
            counts[(slot, scored.action_id)] += 1
    logged = rank(BLUEPRINT, "any", items, [0.9, 0.5, 0.1]).ranking  # greedy order a, b, c
    for slot, item in enumerate("abc"):
        for other in "abc":
            expected = 0.3 / 3 + 0.7 * (other == item)
            assert counts[(slot, other)] / n == pytest.approx(expected, abs=0.02)
    assert {r.action_id for r in logged} == set(items)


def test_ndcg_and_reciprocal_rank_by_hand():
    relevance, scores = np.array([0.0, 1.0, 1.0]), np.array([0.9, 0.5, 0.1])  # order: 0, 1, 2
    ideal = 1 / np.log2(2) + 1 / np.log2(3)
    assert ndcg_at_k(relevance, scores, 10) == pytest.approx((1 / np.log2(3) + 1 / np.log2(4)) / ideal)
    assert ndcg_at_k(relevance, scores, 1) == pytest.approx(0.0)
    assert ndcg_at_k(np.zeros(3), scores, 10) == 1.0
    assert reciprocal_rank(relevance, scores) == pytest.approx(0.5)
    assert reciprocal_rank(np.zeros(3), scores) == 0.0


def test_the_off_policy_value_of_a_ranking_recovers_a_known_value():
    rng = np.random.default_rng(3)
    click = np.array([0.6, 0.3, 0.1])  # per item
    position = np.array([1.0, 0.5, 0.25])  # how much a slot is looked at
    groups, positions, propensities, earned, values = [], [], [], [], []
    for d in range(6000):  # logged by a uniformly random order
        order = rng.permutation(3)
        rows = np.arange(3 * d, 3 * d + 3)
        groups.append(rows)
        for slot, item in enumerate(order):
            positions.append(slot)
            propensities.append(1 / 3)
            earned.append(float(rng.random() < click[item] * position[slot]))
            values.append(click[item])  # the model knows the items' appeal: it ranks 0, 1, 2
    estimate = ranking_policy_value(groups, np.array(values), np.array(positions), np.array(propensities),
                                    np.array(earned))
    assert estimate == pytest.approx(0.6 * 1 + 0.3 * 0.5 + 0.1 * 0.25, abs=0.03)
    assert np.mean(earned) * 3 == pytest.approx((0.6 + 0.3 + 0.1) * (1 + 0.5 + 0.25) / 3, abs=0.03)


@pytest.fixture()
def world(tmp_path):
    data = DataDir(tmp_path).ensure()
    blueprints = BlueprintStore(data.blueprints)
    blueprints.apply(yaml.safe_dump(SPEC))
    clock = Clock()
    decisions = DecisionLog(data.decisions, window=lambda: timedelta(days=3650))
    lookup = DecisionLookup(data.decisions)
    recorder = OutcomeRecorder(blueprints, data.labels, decisions=lookup.find)
    table = TrainingTable(data.labels.training)
    joiner = make_joiner(tmp_path, table, clock)
    decider = Decider(blueprints, decisions, clock=clock)
    yield decider, recorder, joiner, table, clock
    for closing in (decisions, lookup, recorder, joiner):
        closing.close()


def test_each_shown_item_gets_a_row_with_its_position_features_propensity_and_own_label(world):
    decider, recorder, joiner, table, clock = world
    candidates = tuple(CandidateInput(item, {"quality": q}) for item, q in (("a", 0.1), ("b", 0.9), ("c", 0.5)))
    record, _ = decider.decide(DecideCommand("feed", "d1", {"user_id": "u"}, {}, candidates))
    shown = [r.action_id for r in record.ranking]
    recorder.record([OutcomeEvent("e1", "feed", "d1", "clicked", 1.0, T0 + timedelta(minutes=1),
                                  action_id=shown[2]),
                     OutcomeEvent("e2", "feed", "d1", "clicked", 1.0, T0 + timedelta(minutes=2))])  # the first item
    clock.now = T0 + timedelta(hours=1)
    assert joiner.run_once() == 1
    rows = table.read("feed").set_index("action")
    assert sorted(rows.index) == ["a", "b", "c"]
    assert [rows.loc[item, "position"] for item in shown] == [0, 1, 2]
    assert [rows.loc[item, "label"] for item in shown] == [1.0, 0.0, 1.0]
    assert rows.loc["b", "quality"] == 0.9
    assert [rows.loc[r.action_id, "propensity"] for r in record.ranking] == [r.propensity for r in record.ranking]


def test_an_outcome_naming_an_item_that_was_not_shown_is_refused(world):
    decider, recorder, joiner, table, clock = world
    decider.decide(DecideCommand("feed", "d2", {"user_id": "u"}, {}, (CandidateInput("a"), CandidateInput("b"))))
    with pytest.raises(InvalidArgument) as raised:
        recorder.record([OutcomeEvent("e3", "feed", "d2", "clicked", 1.0, T0, action_id="zzz")])
    assert raised.value.violations[0].field == "events[0].action_id"
    assert recorder.record([OutcomeEvent("e3", "feed", "d2", "clicked", 1.0, T0, action_id="b")]) == [True]


def test_a_rankings_training_set_keeps_each_row_with_its_decision_and_slot(world):
    from services.trainer.training_set import build_training_set

    decider, recorder, joiner, table, clock = world
    shown = {}
    for n in (1, 2):
        candidates = tuple(CandidateInput(item, {"quality": q}) for item, q in (("a", 0.1), ("b", 0.9), ("c", 0.5)))
        record, _ = decider.decide(DecideCommand("feed", f"r{n}", {"user_id": "u"}, {}, candidates))
        shown[f"r{n}"] = [r.action_id for r in record.ranking]
    clock.now = T0 + timedelta(hours=1)
    assert joiner.run_once() == 2
    rows = table.read("feed")
    dataset = build_training_set(BLUEPRINT, rows)
    assert list(dataset.groups) == list(rows["decision_id"]) and sorted(set(dataset.groups)) == ["r1", "r2"]
    assert dataset.positions.dtype.kind == "i"
    for decision_id, order in shown.items():
        mine = dataset.groups == decision_id
        assert [dataset.actions[mine][list(dataset.positions[mine]).index(slot)] for slot in range(3)] == order
    assert set(dataset.actions) == {"a", "b", "c"} and dataset.actions.dtype == object
    assert list(dataset.targets) == [0] * 6 and dataset.targets.dtype.kind == "i"


def test_a_training_set_of_other_decisions_has_no_groups_even_with_a_position_column(world):
    from services.trainer.training_set import build_training_set

    decider, recorder, joiner, table, clock = world
    decider.decide(DecideCommand("feed", "r3", {"user_id": "u"}, {}, (CandidateInput("a"), CandidateInput("b"))))
    clock.now = T0 + timedelta(hours=1)
    joiner.run_once()
    rows = table.read("feed")
    multi = parse_blueprint({**SPEC, "decision_type": "multi_action", "actions": ["a", "b"], "default_decision": "a",
                             "features": {}})
    dataset = build_training_set(multi, rows)
    assert dataset.groups is None and dataset.positions is None
