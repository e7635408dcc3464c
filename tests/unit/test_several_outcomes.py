"""A use case with several outcomes: each label joined within its own window, one model per
label trained and registered together, and a policy that weighs the predicted outcomes by the
product metric's weights (which a new blueprint version may change without retraining)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
import yaml

from services.blueprints.spec import LabelKind, parse_blueprint
from services.blueprints.store import BlueprintStore
from services.decision.policies import action_values, choose
from services.decisions.log import DecisionLog
from services.decisions.record import DecisionRecord, DefaultReason
from services.labels.outcomes import OutcomeEvent, OutcomeRecorder
from services.labels.training_table import TrainingTable
from services.models.registry import ModelKind, ModelRegistry
from services.platform.data_dir import DataDir
from services.platform.errors import InvalidArgument
from services.trainer.pipeline import TrainingPipeline
from services.trainer.runs import RunState, TrainingRun, Trigger
from tests.unit.test_label_joiner import Clock, make_joiner

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
SPEC = {
    "name": "notify", "decision_type": "binary", "entities": ["user_id"], "default_decision": False,
    "features": {"context": {"affinity": "double"}},
    "labels": [{"outcome": "opened", "window": "10m"},
               {"outcome": "unsubscribed", "window": "1h"},
               {"outcome": "minutes", "aggregation": "sum", "window": "10m"}],
    "product_metric": {"weights": {"opened": 1.0, "unsubscribed": -3.0, "minutes": 0.1}, "treatment_cost": 0.25},
    "model": {"params": {"iterations": 40, "depth": 3}},
}


def blueprint(**changes):
    return parse_blueprint({**SPEC, **changes})


def test_labels_weights_and_kinds():
    bp = blueprint()
    assert [label.outcome for label in bp.all_labels] == ["opened", "unsubscribed", "minutes"]
    assert bp.primary_label.outcome == "opened" and bp.longest_window == timedelta(hours=1)
    assert bp.weights == {"opened": 1.0, "unsubscribed": -3.0, "minutes": 0.1}
    assert [label.model_kind for label in bp.all_labels] == [LabelKind.PROBABILITY, LabelKind.PROBABILITY,
                                                            LabelKind.VALUE]


@pytest.mark.parametrize("changes, field", [
    ({"product_metric": {"treatment_cost": 0.25}}, "product_metric.weights"),  # several labels need weights
    ({"product_metric": {"weights": {"opened": 1.0}}}, "product_metric.weights"),  # one missing
    ({"product_metric": {"weights": {"opened": 1.0, "unsubscribed": -3.0, "minutes": 0.1, "x": 1.0}}},
     "product_metric.weights"),
    ({"labels": [{"outcome": "opened", "window": "1m"}, {"outcome": "opened", "window": "2m"}]}, "labels"),
    ({"label": {"outcome": "opened", "window": "1m"}}, "label"),  # label and labels together
])
def test_inconsistent_labels_and_weights_are_refused(changes, field):
    with pytest.raises(InvalidArgument) as raised:
        blueprint(**changes)
    assert field in [v.field for v in raised.value.violations]


def test_the_policy_weighs_each_predicted_outcome():
    bp = blueprint()
    predictions = {"opened": [0.5, 0.1], "unsubscribed": [0.1, 0.0], "minutes": [2.0, 0.0]}
    # send: 0.5 - 0.3 + 0.2 - 0.25 = 0.15; don't: 0.1
    assert action_values(bp, ["true", "false"], predictions) == pytest.approx([0.15, 0.1])
    choice = choose(bp.model_copy(update={"policy": bp.policy.model_copy(update={"exploration_rate": 0.0})}),
                    "d", ["true", "false"], predictions)
    assert choice.action == "true" and choice.score == 0.5
    assert choice.predictions == {"opened": 0.5, "unsubscribed": 0.1, "minutes": 2.0}
    annoying = bp.model_copy(update={"product_metric": bp.product_metric.model_copy(
        update={"weights": {"opened": 1.0, "unsubscribed": -10.0, "minutes": 0.1}})})
    assert action_values(annoying, ["true", "false"], predictions)[0] == pytest.approx(-0.55)  # no retraining


def test_each_label_is_joined_within_its_own_window(tmp_path):
    data = DataDir(tmp_path).ensure()
    blueprints = BlueprintStore(data.blueprints)
    blueprints.apply(yaml.safe_dump(SPEC))
    clock = Clock()
    decisions = DecisionLog(data.decisions, window=lambda: timedelta(days=3650))
    recorder = OutcomeRecorder(blueprints, data.labels)
    table = TrainingTable(data.labels.training)
    joiner = make_joiner(tmp_path, table, clock)
    try:
        record = DecisionRecord(decision_id="d1", use_case="notify", blueprint_version=1, decide_time=T0,
                                subject={"user_id": "u"}, features={"affinity": 1.0}, context={}, action="true",
                                score=0.5, propensity=0.9, is_exploration=False, model_version="",
                                default_reason=DefaultReason.NO_MODEL)
        decisions.record_once("notify", "d1", lambda: record)
        events = [("o", "opened", 1.0, 5), ("w1", "minutes", 3.0, 6), ("w2", "minutes", 4.0, 20),
                  ("u", "unsubscribed", 1.0, 30)]
        recorder.record([OutcomeEvent(i, "notify", "d1", name, value, T0 + timedelta(minutes=m))
                         for i, name, value, m in events])
        clock.now = T0 + timedelta(minutes=30)
        assert joiner.run_once() == 0  # the longest window (1h) is still open
        clock.now = T0 + timedelta(hours=2)
        assert joiner.run_once() == 1
        row = table.read("notify").iloc[0]
        assert (row["label__opened"], row["label__unsubscribed"], row["label__minutes"]) == (1.0, 1.0, 3.0)
        assert (row["outcome_count__minutes"], row["label"]) == (1, 1.0)  # 20 min is past the 10 min window
    finally:
        decisions.close()
        recorder.close()
        joiner.close()


def training_rows(n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    affinity = rng.normal(size=n)
    action = np.where(rng.random(n) < 0.5, "true", "false")
    sent = action == "true"
    return pd.DataFrame({
        "decision_id": [f"d{i}" for i in range(n)], "user_id": [f"u{i % 20}" for i in range(n)],
        "event_timestamp": [T0 + timedelta(minutes=i) for i in range(n)], "action": action,
        "propensity": 0.5, "affinity": affinity,
        "label__opened": (sent & (affinity > 0)).astype(float),
        "label__unsubscribed": (sent & (affinity < -1)).astype(float),
        "label__minutes": np.where(sent & (affinity > 0), 5.0, 0.0),
        "label": (sent & (affinity > 0)).astype(float),
    })


def test_one_model_per_label_is_trained_registered_and_served_together(tmp_path):
    data = DataDir(tmp_path).ensure()
    bp = blueprint().with_version(1)
    table = TrainingTable(data.labels.training)
    folder = data.labels.training / "notify"  # the joiner's rows, as a part file
    folder.mkdir(parents=True)
    training_rows().to_parquet(folder / "part-1-1.parquet", index=False)
    registry = ModelRegistry(data.models)
    run = TrainingRun("run-000000000001", "notify", 1, RunState.RUNNING, Trigger.MANUAL, T0.isoformat())
    done = TrainingPipeline(table, registry)(run, bp, force_promote=False)
    assert done.state == RunState.SUCCEEDED and done.promoted
    meta = registry.get("notify", done.model_version)
    assert meta.labels == {"opened": ModelKind.CLASSIFIER, "unsubscribed": ModelKind.CLASSIFIER,
                           "minutes": ModelKind.REGRESSOR}
    assert {"auc", "unsubscribed.auc", "minutes.rmse", "product_value"} <= set(done.metrics)
    from services.models.runtime import ServingModel

    served = ServingModel(meta, registry.artifact("notify", meta.version))
    predictions = served.predict([{"affinity": 2.0, "action": "true"}, {"affinity": -2.0, "action": "true"}])
    assert predictions["opened"][0] > predictions["opened"][1]
    assert predictions["unsubscribed"][1] > predictions["unsubscribed"][0]
    assert predictions["minutes"][0] > predictions["minutes"][1]


GOAL = {"product_metric": {"weights": {"opened": 1.0, "unsubscribed": -3.0}, "treatment_cost": 0.25,
                           "goal": "minutes"}}


def test_a_goal_is_a_label_the_policy_does_not_weigh_and_no_model_predicts(tmp_path):
    bp = blueprint(**GOAL).with_version(1)
    assert bp.weights == {"opened": 1.0, "unsubscribed": -3.0}
    assert [label.outcome for label in bp.predicted_labels] == ["opened", "unsubscribed"]
    data = DataDir(tmp_path).ensure()
    folder = data.labels.training / "notify"
    folder.mkdir(parents=True)
    training_rows().to_parquet(folder / "part-1-1.parquet", index=False)
    registry = ModelRegistry(data.models)
    run = TrainingRun("run-000000000001", "notify", 1, RunState.RUNNING, Trigger.MANUAL, T0.isoformat())
    done = TrainingPipeline(TrainingTable(data.labels.training), registry)(run, bp, force_promote=False)
    assert set(registry.get("notify", done.model_version).labels) == {"opened", "unsubscribed"}
    assert not any(name.startswith("minutes.") for name in done.metrics)


@pytest.mark.parametrize("metric, reason", [
    ({"weights": {"opened": 1.0, "unsubscribed": -3.0}, "goal": "opened"}, "other than the first"),
    ({"weights": {"opened": 1.0, "unsubscribed": -3.0}, "goal": "retained"}, "other than the first"),
    ({"weights": {"opened": 1.0, "unsubscribed": -3.0, "minutes": 0.1}, "goal": "minutes"}, "not to the goal"),
])
def test_a_goal_must_be_an_unweighed_label_other_than_the_primary(metric, reason):
    with pytest.raises(InvalidArgument) as raised:
        blueprint(product_metric=metric)
    assert any(reason in v.reason for v in raised.value.violations)


def test_experiments_judge_decisions_by_the_goal_less_the_cost_of_acting():
    from services.experiments.report import decision_values

    rows = pd.DataFrame({"action": ["true", "false", "true"], "label__opened": [1.0, 0.0, 0.0],
                         "label__unsubscribed": [0.0, 0.0, 1.0], "label__minutes": [3.0, 2.0, 0.0],
                         "label": [1.0, 0.0, 0.0]})
    assert decision_values(blueprint(**GOAL), rows).tolist() == [2.75, 2.0, -0.25]
    assert decision_values(blueprint(), rows).tolist() == pytest.approx([1.05, 0.2, -3.25])
