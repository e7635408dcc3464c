"""Model rollouts without a server: the registry's stages and their recorded reasons, and the
controller that moves a version from shadow to canary to live, or rolls it back, on the
evidence (fake decision activity, real training-table rows with known values)."""

from __future__ import annotations

import random
import threading
from datetime import datetime, timedelta, timezone

import pytest

from services.blueprints.store import BlueprintStore
from services.decisions.record import DecisionRecord
from services.experiments.controller import ExperimentController
from services.experiments.experiment import CANARY, CONTROL, ExperimentKind, Verdict
from services.experiments.store import ExperimentStore
from services.labels.activity import ArmActivity, ShadowActivity
from services.labels.training_table import LabeledDecision, TrainingTable
from services.models.registry import ModelKind, ModelRegistry, ModelStage
from services.platform.errors import FailedPrecondition
from tests.conftest import SIMPLE_BLUEPRINT

USE_CASE = "contract_test"
DEPLOYED = SIMPLE_BLUEPRINT.replace("label: {outcome: clicked, aggregation: max, window: 2s, missing_value: 0}", """
labels:
  - {outcome: clicked, aggregation: max, window: 2s, missing_value: 0}
  - {outcome: unsubscribed, aggregation: max, window: 2s, missing_value: 0}
product_metric: {weights: {clicked: 1.0, unsubscribed: 0.0}}
deployment:
  shadow_decisions: 50
  shadow_max_time: 1h
  canary_share: 0.5
  min_sample: 100
  max_sample: 2000
  guardrails: [{outcome: unsubscribed, max_harm: 0.05}]
""")


def register(registry: ModelRegistry, number: int) -> str:
    fields = dict(use_case=USE_CASE, blueprint_version=1, run_id=f"r{number}", create_time="2026-11-25T12:00:00+00:00",
                  kind=ModelKind.CLASSIFIER, feature_columns=[], categorical_columns=[], label="clicked")
    return registry.register(fields, lambda path: path.write_bytes(b"model")).version


class Clock:
    def __init__(self):
        self.now = datetime(2026, 11, 25, 12, tzinfo=timezone.utc)

    def __call__(self):
        return self.now


class Activity:
    """What the joiner would have seen: set by each test."""

    def __init__(self):
        self.arms: dict[str, ArmActivity] = {}
        self.seen_in_shadow = ShadowActivity()

    def by_arm(self, use_case, since, until=None):
        return self.arms

    def shadow(self, use_case, version, since):
        return self.seen_in_shadow


@pytest.fixture()
def setup(tmp_path):
    blueprints = BlueprintStore(tmp_path / "blueprints")
    blueprints.apply(DEPLOYED)
    registry, store = ModelRegistry(tmp_path / "models"), ExperimentStore(tmp_path / "experiments")
    table, activity, clock = TrainingTable(tmp_path / "training"), Activity(), Clock()
    controller = ExperimentController(blueprints, store, registry, table, activity, clock)
    live, candidate = register(registry, 1), register(registry, 2)
    registry.promote(USE_CASE, live, "the first model")
    return controller, registry, store, table, activity, clock, live, candidate


def label_rows(table: TrainingTable, arm: str, count: int, click_rate: float, unsubscribe_rate: float,
               start: datetime, seed: int) -> None:
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        record = DecisionRecord(
            decision_id=f"{arm}-{seed}-{i}", use_case=USE_CASE, blueprint_version=1,
            decide_time=start + timedelta(seconds=1 + i), subject={"user_id": f"u{i}"}, features={}, context={},
            action="true", score=0.5, propensity=1.0, is_exploration=False, model_version="m", arm=arm)
        rows.append(LabeledDecision(record, {"clicked": (float(rng.random() < click_rate), 1),
                                             "unsubscribed": (float(rng.random() < unsubscribe_rate), 1)}))
    table.append(USE_CASE, rows)


def to_canary(controller, registry, activity, candidate, clock):
    registry.set_rollout(USE_CASE, candidate, ModelStage.SHADOW, "won offline", since=clock().isoformat())
    activity.seen_in_shadow = ShadowActivity(decisions=60, failures=0, agreements=45)
    controller.check(USE_CASE)


def test_the_registry_records_every_stage_with_its_reason(setup):
    _, registry, _, _, _, clock, live, candidate = setup
    assert registry.stage(USE_CASE, candidate) == ModelStage.CANDIDATE
    registry.set_rollout(USE_CASE, candidate, ModelStage.SHADOW, "won offline", since=clock().isoformat())
    assert registry.stage(USE_CASE, candidate) == ModelStage.SHADOW
    with pytest.raises(FailedPrecondition):
        registry.set_rollout(USE_CASE, live, ModelStage.CANARY, "another", since=clock().isoformat())
    registry.set_rollout(USE_CASE, candidate, ModelStage.CANARY, "shadow passed", since=clock().isoformat())
    registry.roll_back_rollout(USE_CASE, candidate, "canary lost")
    assert registry.stage(USE_CASE, candidate) == ModelStage.ROLLED_BACK and registry.rollout(USE_CASE) is None
    assert registry.live_version(USE_CASE) == live
    assert [(c.stage, c.reason) for c in registry.stage_history(USE_CASE, candidate)] == [
        (ModelStage.SHADOW, "won offline"), (ModelStage.CANARY, "shadow passed"),
        (ModelStage.ROLLED_BACK, "canary lost")]
    registry.set_rollout(USE_CASE, register(registry, 3), ModelStage.SHADOW, "won offline", since=clock().isoformat())
    assert registry.retention(USE_CASE, keep=0) == [candidate], "the live version and the one in shadow are kept"


def test_a_reader_never_sees_a_promotion_half_written(setup, monkeypatch):
    """The promotion pauses between moving the live pointer and appending its record; a
    reader that starts in that gap waits for the record instead of reporting a live model
    whose history ends in canary."""
    _, registry, _, _, _, clock, _, candidate = setup
    registry.set_rollout(USE_CASE, candidate, ModelStage.CANARY, "shadow passed", since=clock().isoformat())
    in_the_gap, resume = threading.Event(), threading.Event()
    record = registry._record

    def paused_record(use_case, version, stage, reason):
        if stage == ModelStage.LIVE:
            in_the_gap.set()
            resume.wait(10)
        record(use_case, version, stage, reason)
    monkeypatch.setattr(registry, "_record", paused_record)
    promotion = threading.Thread(target=registry.promote, args=(USE_CASE, candidate, "canary won"))
    promotion.start()
    assert in_the_gap.wait(10)
    read = []
    reader = threading.Thread(target=lambda: read.extend(registry.stages(USE_CASE, [candidate])))
    reader.start()
    reader.join(0.5)  # without the lock the read is over by now; with it, the reader waits
    resume.set()
    promotion.join(10)
    reader.join(10)
    (stage, history), = read
    assert stage == ModelStage.LIVE and [c.stage for c in history][-1] == ModelStage.LIVE


def test_shadow_goes_to_canary_once_it_has_answered_enough_decisions(setup):
    controller, registry, store, _, activity, clock, _, candidate = setup
    registry.set_rollout(USE_CASE, candidate, ModelStage.SHADOW, "won offline", since=clock().isoformat())
    activity.seen_in_shadow = ShadowActivity(decisions=30)
    controller.check(USE_CASE)
    assert registry.stage(USE_CASE, candidate) == ModelStage.SHADOW, "30 of 50 decisions: still in shadow"
    activity.seen_in_shadow = ShadowActivity(decisions=60, failures=0, agreements=45)
    controller.check(USE_CASE)
    assert registry.stage(USE_CASE, candidate) == ModelStage.CANARY
    assert "agreed with the live model on 75%" in registry.stage_history(USE_CASE, candidate)[-1].reason
    running = store.active(USE_CASE)
    assert running.kind == ExperimentKind.CANARY and running.arm(CANARY).model == candidate
    assert (running.arm(CANARY).share, running.arm(CONTROL).model) == (0.5, "live")


@pytest.mark.parametrize("seen, advance, reason", [
    (ShadowActivity(decisions=40, failures=10), timedelta(0), "failed in shadow"),
    (ShadowActivity(decisions=10), timedelta(hours=2), "saw only 10 of 50 decisions"),
])
def test_a_shadow_that_fails_or_sees_too_little_is_rolled_back(setup, seen, advance, reason):
    controller, registry, store, _, activity, clock, live, candidate = setup
    registry.set_rollout(USE_CASE, candidate, ModelStage.SHADOW, "won offline", since=clock().isoformat())
    activity.seen_in_shadow = seen
    clock.now += advance
    controller.check(USE_CASE)
    assert registry.stage(USE_CASE, candidate) == ModelStage.ROLLED_BACK
    assert reason in registry.stage_history(USE_CASE, candidate)[-1].reason
    assert registry.live_version(USE_CASE) == live and store.active(USE_CASE) is None


@pytest.mark.parametrize("canary_clicks, canary_unsubscribes, stage, verdict", [
    (0.6, 0.02, ModelStage.LIVE, Verdict.PROMOTE),  # better, guardrail fine
    (0.2, 0.02, ModelStage.ROLLED_BACK, Verdict.ROLLBACK),  # worse
    (0.6, 0.40, ModelStage.ROLLED_BACK, Verdict.ROLLBACK),  # better but annoys: the guardrail
])
def test_a_canary_is_promoted_when_it_wins_and_rolled_back_when_it_loses(setup, canary_clicks, canary_unsubscribes,
                                                                          stage, verdict):
    controller, registry, store, table, activity, clock, live, candidate = setup
    to_canary(controller, registry, activity, candidate, clock)
    start = store.active(USE_CASE).start_time
    label_rows(table, CONTROL, 600, 0.4, 0.02, start, seed=1)
    label_rows(table, CANARY, 600, canary_clicks, canary_unsubscribes, start, seed=2)
    activity.arms = {CONTROL: ArmActivity(600, 0, 240), CANARY: ArmActivity(600, 0, 300)}
    controller.check(USE_CASE)
    assert registry.stage(USE_CASE, candidate) == stage
    assert registry.live_version(USE_CASE) == (candidate if stage == ModelStage.LIVE else live)
    ended = store.history(USE_CASE)[0]
    assert ended.verdict == verdict and store.active(USE_CASE) is None
    assert ended.reason in registry.stage_history(USE_CASE, candidate)[-1].reason


def test_a_canary_waits_for_its_minimum_sample(setup):
    controller, registry, store, table, activity, clock, _, candidate = setup
    to_canary(controller, registry, activity, candidate, clock)
    start = store.active(USE_CASE).start_time
    label_rows(table, CONTROL, 50, 0.1, 0.0, start, seed=1)
    label_rows(table, CANARY, 50, 0.9, 0.0, start, seed=2)
    controller.check(USE_CASE)
    assert registry.stage(USE_CASE, candidate) == ModelStage.CANARY
    assert "below the minimum sample" in controller.report(USE_CASE).reason


def test_a_canary_whose_model_fails_is_rolled_back(setup):
    controller, registry, store, _, activity, clock, _, candidate = setup
    to_canary(controller, registry, activity, candidate, clock)
    activity.arms = {CONTROL: ArmActivity(100), CANARY: ArmActivity(100, model_failures=30)}
    controller.check(USE_CASE)
    assert registry.stage(USE_CASE, candidate) == ModelStage.ROLLED_BACK
    assert "failed on 30 of its 100 canary decisions" in registry.stage_history(USE_CASE, candidate)[-1].reason


def test_a_canary_ends_when_an_operator_promotes_another_model(setup):
    controller, registry, store, _, activity, clock, live, candidate = setup
    to_canary(controller, registry, activity, candidate, clock)
    registry.promote(USE_CASE, candidate, "promoted by hand")
    controller.check(USE_CASE)
    assert store.history(USE_CASE)[0].verdict == Verdict.STOPPED and store.active(USE_CASE) is None


def test_a_blueprint_experiment_starts_once_and_stops_when_the_blueprint_drops_it(setup, tmp_path):
    controller, registry, store, _, _, _, _, _ = setup
    with_experiment = DEPLOYED + """
experiment:
  name: threshold_test
  control: current
  arms: [{name: current, share: 0.5}, {name: strict, share: 0.5, policy: {threshold: 0.2}}]
"""
    controller.blueprints.apply(with_experiment)
    controller.check(USE_CASE)
    running = store.active(USE_CASE)
    assert running.experiment_id == "threshold_test" and running.arm("strict").policy == {"threshold": 0.2}
    controller.blueprints.apply(DEPLOYED + "\ndescription: no experiment now\n")
    controller.check(USE_CASE)
    assert store.history(USE_CASE)[0].verdict == Verdict.STOPPED
    controller.blueprints.apply(with_experiment + "\ndescription: the same experiment again\n")
    controller.check(USE_CASE)
    assert store.active(USE_CASE) is None, "an experiment that ran is not started again"
