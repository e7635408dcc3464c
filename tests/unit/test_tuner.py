"""Policy tuning without a server, in a world with a known optimum: acting raises opens for
everyone, but for users with a low affinity it also raises unsubscribes and lowers the goal
(still active a week later). The untuned weights act for everyone; the tuner must find
weights or a threshold that act only where the goal gains, off-policy first, then in an
online round whose winner becomes a new blueprint version."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
import yaml

from services.blueprints.store import BlueprintStore
from services.decisions.record import DecisionRecord
from services.experiments.controller import ExperimentController
from services.experiments.experiment import ExperimentKind
from services.experiments.store import ExperimentStore
from services.experiments.tuner import CURRENT, PolicyReplay, PolicyTuner, overrides, tuned_yaml
from services.labels.activity import ArmActivity
from services.labels.training_table import LabeledDecision, TrainingTable
from services.models.registry import ModelKind, ModelRegistry

USE_CASE = "reengage"
BLUEPRINT = """
name: reengage
decision_type: binary
entities: [user_id]
default_decision: false
features: {context: {affinity: double}}
labels:
  - {outcome: opened, window: 1h}
  - {outcome: unsubscribed, window: 1h}
  - {outcome: retained, window: 1h}
product_metric: {weights: {opened: 1.0, unsubscribed: 0.0}, goal: retained}
policy: {exploration_rate: 0.1}
tuning:
  parameters: {weights.unsubscribed: [-10, 0], threshold: [-0.5, 0.5]}
  offline_evaluations: 25
  candidates_per_round: 2
  round_sample: 400
  min_rows: 500
  seed: 3
"""
T0 = datetime(2026, 11, 25, 12, tzinfo=timezone.utc)


def truth(affinity: float, act: bool) -> dict[str, float]:
    """Chances of each outcome: acting opens, annoys the low-affinity users, and moves the goal."""
    opened = 0.1 + (0.5 if act else 0.0)
    unsubscribed = (0.3 if affinity < 0 else 0.02) if act else 0.01
    retained = 0.5 + (0.2 * np.sign(affinity) if act else 0.0)
    return {"opened": opened, "unsubscribed": unsubscribed, "retained": retained}


class TrueModel:
    """The live model, exact: predicts each outcome's chance from affinity and action."""

    version = "m000001"

    class input:  # noqa: N801 - stands in for the model's ModelInput
        @staticmethod
        def frame(rows):
            return rows[["affinity", "action"]].copy()

    def predict_encoded(self, frame):
        rows = [truth(a, act == "true") for a, act in zip(frame["affinity"], frame["action"])]
        return {outcome: [r[outcome] for r in rows] for outcome in ("opened", "unsubscribed")}


def logged_rows(count: int, seed: int, act_probability: float = 0.5, arm: str = "", start=T0,
                act=None) -> list[LabeledDecision]:
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        affinity = rng.uniform(-1, 1)
        acted = act(affinity) if act else rng.random() < act_probability
        chances = truth(affinity, acted)
        record = DecisionRecord(
            decision_id=f"{arm}{seed}-{i}", use_case=USE_CASE, blueprint_version=1,
            decide_time=start + timedelta(seconds=i + 1), subject={"user_id": f"u{i}"},
            features={"affinity": affinity}, context={"affinity": affinity}, action="true" if acted else "false",
            score=0.5, propensity=act_probability if acted else 1 - act_probability, is_exploration=True,
            model_version="m000001", arm=arm)
        rows.append(LabeledDecision(record, {o: (float(rng.random() < p), 1) for o, p in chances.items()}))
    return rows


def true_value(policy_acts) -> float:
    """The goal per decision of a policy, by the truth, over the affinity distribution."""
    grid = np.linspace(-1, 1, 2001)
    return float(np.mean([truth(a, policy_acts(a))["retained"] for a in grid]))


@pytest.fixture()
def world(tmp_path):
    blueprints = BlueprintStore(tmp_path / "blueprints")
    blueprint = blueprints.apply(BLUEPRINT)[0].blueprint
    table = TrainingTable(tmp_path / "training")
    table.append(USE_CASE, logged_rows(3000, seed=1))
    return blueprints, blueprint, table


def test_the_replay_values_a_policy_as_the_truth_does(world):
    _, blueprint, table = world
    replay = PolicyReplay(blueprint, TrueModel(), table.read(USE_CASE))
    untuned = replay.value({})
    # Untuned: opens decide, acting always wins (0.6 > 0.1); 10% exploration acts half of the time.
    expected = 0.95 * true_value(lambda a: True) + 0.05 * true_value(lambda a: True) / 2 \
        + 0.05 * true_value(lambda a: False) / 2
    assert untuned.ci_low <= expected <= untuned.ci_high
    tuned = replay.value({"weights.unsubscribed": -5.0, "threshold": 0.0})  # acts only where affinity > 0
    optimum = 0.95 * true_value(lambda a: a > 0) + 0.05 * (true_value(lambda a: True) + true_value(lambda a: False)) / 2
    assert tuned.ci_low <= optimum <= tuned.ci_high and tuned.value > untuned.ci_high


def test_off_policy_tuning_finds_better_weights_and_starts_an_online_round(world, tmp_path):
    blueprints, blueprint, table = world
    store = ExperimentStore(tmp_path / "experiments")
    tuner = PolicyTuner(blueprints, store, _registry_with_live(tmp_path), table)
    tuner._live_model = lambda use_case: TrueModel()
    tuner.step(blueprint)
    state = tuner.state(USE_CASE)
    current = next(o for o in state.offline if o["params"] == {})
    best = max((o for o in state.offline if o["params"]), key=lambda o: o["value"])
    assert best["value"] > current["ci_high"], "the search found a policy better than the current one"
    running = store.active(USE_CASE)
    assert running.kind == ExperimentKind.TUNING and running.control == CURRENT and len(running.arms) == 3
    assert all(arm.policy["weights"].keys() == {"opened", "unsubscribed"} for arm in running.treatments)
    tuner.step(blueprint)  # a round is running: nothing more starts
    assert len(tuner.state(USE_CASE).rounds) == 1


def test_the_round_winner_becomes_a_new_blueprint_version(world, tmp_path):
    blueprints, blueprint, table = world
    store = ExperimentStore(tmp_path / "experiments")
    tuner = PolicyTuner(blueprints, store, _registry_with_live(tmp_path), table)
    tuner._live_model = lambda use_case: TrueModel()
    activity = _Activity()
    controller = ExperimentController(blueprints, store, tuner.registry, table, activity, tuner=tuner)
    controller.check(USE_CASE)
    running = store.active(USE_CASE)
    for n, arm in enumerate(running.arms):  # each arm decides as its policy would, for its own subjects
        policy = arm.policy
        acts = _acts(policy) if policy else (lambda a: True)
        table.append(USE_CASE, logged_rows(450, seed=10 + n, arm=arm.name, start=running.start_time, act=acts))
    controller.check(USE_CASE)  # the round has its sample: it ends
    assert store.active(USE_CASE) is None and store.history(USE_CASE)[0].experiment_id == running.experiment_id
    controller.check(USE_CASE)  # the last round is done: the winner is applied
    state = tuner.state(USE_CASE)
    assert state.done and state.produced_version == 2, state.reason
    tuned = blueprints.latest(USE_CASE)
    assert tuned.version == 2 and tuned.weights["unsubscribed"] < 0
    controller.check(USE_CASE)
    assert store.active(USE_CASE) is None, "the tuned version is not tuned again"


def test_tuned_parameters_are_written_into_the_blueprint_document(world):
    _, blueprint, _ = world
    text = tuned_yaml(BLUEPRINT, blueprint, {"weights.unsubscribed": -4.25, "threshold": 0.1,
                                             "exploration_rate": 0.05})
    spec = yaml.safe_load(text)
    assert spec["product_metric"]["weights"] == {"opened": 1.0, "unsubscribed": -4.25}
    assert spec["policy"] == {"exploration_rate": 0.05, "threshold": 0.1}
    assert spec["tuning"] == yaml.safe_load(BLUEPRINT)["tuning"], "the rest of the document is kept"
    assert overrides(blueprint, {"weights.unsubscribed": -1}) == {"weights": {"opened": 1.0, "unsubscribed": -1.0}}


def _acts(policy: dict):
    weight, threshold = policy["weights"]["unsubscribed"], policy.get("threshold", 0.0)

    def acts(affinity: float) -> bool:
        yes, no = truth(affinity, True), truth(affinity, False)
        return (yes["opened"] + weight * yes["unsubscribed"]) - (no["opened"] + weight * no["unsubscribed"]) > threshold
    return acts


def _registry_with_live(tmp_path) -> ModelRegistry:
    registry = ModelRegistry(tmp_path / "models")
    fields = dict(use_case=USE_CASE, blueprint_version=1, run_id="r1", create_time=T0.isoformat(),
                  kind=ModelKind.CLASSIFIER, feature_columns=[], categorical_columns=[], label="opened")
    registry.promote(USE_CASE, registry.register(fields, lambda path: path.write_bytes(b"m")).version)
    return registry


class _Activity:
    def by_arm(self, use_case, since, until=None):
        return {}

    def shadow(self, use_case, version, since):
        return ArmActivity()


def test_rows_without_a_propensity_are_not_replayed(world):
    _, blueprint, table = world
    rows = table.read(USE_CASE)
    rows.loc[:9, "propensity"] = 0.0
    assert len(PolicyReplay(blueprint, TrueModel(), rows).rows) == len(rows) - 10
