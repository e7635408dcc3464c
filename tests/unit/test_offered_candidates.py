"""The candidates a multi-action decision offered travel with it into its training row, and
the greedy policy the off-policy estimate replays chooses among them only (no candidates: all
of the blueprint's actions), also for rows of training-table parts written before the
column existed."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from services.blueprints.spec import parse_blueprint
from services.decision.policies import action_values, choose, greedy_order
from services.decisions.record import DecisionRecord, ScoredCandidate
from services.labels.training_table import (LabeledDecision, TrainingTable, candidate_actions,
                                            candidates_text)
from services.trainer.evaluation import evaluate, greedy_actions, greedy_choices, offered_mask
from services.trainer.training_set import build_training_set

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
BLUEPRINT = parse_blueprint({
    "name": "offer_choice", "decision_type": "multi_action", "entities": ["user_id"],
    "actions": ["premium", "standard", "basic"], "default_decision": "standard",
    "features": {"context": {"country": "string"}},
    "label": {"outcome": "converted", "window": "1h"}, "policy": {"exploration_rate": 0.5}}).with_version(1)
CONVERSION = {"premium": 0.9, "standard": 0.5, "basic": 0.1}


class TruthModel:
    """Predicts each action's true conversion rate: premium > standard > basic."""

    def score_encoded(self, frame):
        return [CONVERSION[a] for a in frame["action"]]


def record(i: int, offered: list[str] | None, action: str, propensity: float) -> DecisionRecord:
    actions = offered or list(BLUEPRINT.actions)
    return DecisionRecord(
        decision_id=f"d{i:04d}", use_case="offer_choice", blueprint_version=1,
        decide_time=T0 + timedelta(seconds=i), subject={"user_id": f"u{i % 7}"},
        features={"country": "us"}, context={"country": "us"}, action=action, score=0.0,
        propensity=propensity, is_exploration=False, model_version="m000001",
        ranking=tuple(ScoredCandidate(a, 0.0, 0.0) for a in actions))


def test_the_encoding_is_a_sorted_json_array_and_empty_means_every_action():
    assert candidates_text(["standard", "premium"]) == '["premium","standard"]'
    assert candidate_actions('["premium","standard"]') == ("premium", "standard")
    assert candidates_text([]) == ""
    for every in ("", None, float("nan")):
        assert candidate_actions(every) == ()


def test_a_decision_chose_among_the_candidates_it_was_offered_and_its_row_keeps_them(tmp_path):
    choice = choose(BLUEPRINT, "d0001", ["standard", "basic"], [0.5, 0.1])
    decision = replace(record(1, ["standard", "basic"], choice.action, choice.propensity), ranking=choice.ranking)
    table = TrainingTable(tmp_path)
    table.append("offer_choice", [LabeledDecision(decision, {"converted": (1.0, 1)})])
    row = table.read("offer_choice").iloc[0]
    assert row["candidates"] == '["basic","standard"]'


def test_old_parts_without_the_column_load_as_every_action(tmp_path):
    table = TrainingTable(tmp_path)
    old = pd.DataFrame([{**row, "event_timestamp": pd.Timestamp(row["event_timestamp"])}
                        for row in LabeledDecision(record(0, None, "premium", 0.5), {"converted": (1.0, 1)}).rows()])
    (tmp_path / "offer_choice").mkdir()
    old.drop(columns=["candidates"]).to_parquet(tmp_path / "offer_choice" / "part-1-1.parquet", index=False)
    table.append("offer_choice", [LabeledDecision(record(1, ["standard", "basic"], "basic", 0.25),
                                                  {"converted": (0.0, 0)})])
    dataset = build_training_set(BLUEPRINT, table.read("offer_choice"))
    assert list(dataset.candidates) == [(), ("basic", "standard")]
    # the greedy choice: premium where every action was offered, standard where it was not
    assert greedy_actions(BLUEPRINT, TruthModel(), dataset.features, dataset.candidates).tolist() == [
        "premium", "standard"]


def test_the_product_value_estimates_the_policy_restricted_to_what_was_offered(tmp_path):
    """Premium is offered to a fifth of the decisions; the served policy earns 0.2 * 0.9 +
    0.8 * 0.5 = 0.58 per decision, not premium's 0.9."""
    rng = np.random.default_rng(3)
    rows = []
    for i in range(4000):
        offered = ["premium", "standard"] if rng.random() < 0.2 else ["standard", "basic"]
        action = offered[int(rng.integers(2))]  # uniform exploration among the offered
        converted = float(rng.random() < CONVERSION[action])
        rows.append(LabeledDecision(record(i, offered, action, 0.5), {"converted": (converted, int(converted))}))
    table = TrainingTable(tmp_path)
    table.append("offer_choice", rows)
    dataset = build_training_set(BLUEPRINT, table.read("offer_choice"))
    metrics = evaluate(BLUEPRINT, TruthModel(), dataset, base_rate=0.5)
    assert metrics["product_value"] == pytest.approx(0.58, abs=0.04)
    assert metrics["product_value_ci_low"] < 0.58 < metrics["product_value_ci_high"]
    # equal weights: the ESS is the number of decisions that chose what the policy would, about half
    assert metrics["product_value_ess"] == pytest.approx(len(rows) / 2, rel=0.05)
    assert metrics["product_value_dr"] == pytest.approx(0.58, abs=0.04)
    assert metrics["product_value_dr_ci_low"] < 0.58 < metrics["product_value_dr_ci_high"]
    assert metrics["product_value_ips"] == pytest.approx(0.58, abs=0.06)


@pytest.mark.parametrize("kind", ["binary", "multi_action"])
def test_the_replayed_greedy_choice_is_the_serving_policys_among_the_offered_actions(kind):
    rng = np.random.default_rng(1)
    if kind == "binary":
        bp = parse_blueprint({"name": "b", "decision_type": "binary", "entities": ["user_id"], "default_decision": False,
                              "label": {"outcome": "converted", "window": "1h"}, "policy": {"threshold": 0.1},
                              "product_metric": {"outcome_value": 1.0, "treatment_cost": 0.2}})
    else:
        bp = BLUEPRINT
    actions = list(bp.choices)
    scores = rng.random((300, len(actions)))
    offered = [() if kind == "binary" or rng.random() < 0.3
               else tuple(a for a in actions if rng.random() < 0.6) or (actions[0],) for _ in range(300)]
    values = np.array([action_values(bp, actions, list(row)) for row in scores])
    column = np.empty(300, dtype=object)  # as the training set holds them: one tuple per row
    column[:] = offered
    chosen = greedy_choices(bp, values, offered_mask(actions, column, 300))
    for row, subset, pick in zip(scores, offered, chosen):
        subset = list(subset or actions)
        served = greedy_order(bp, subset, [row[actions.index(a)] for a in subset])[0]
        assert actions[pick] == subset[served]
