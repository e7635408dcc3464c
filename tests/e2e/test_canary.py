"""Deployment stages end to end through the real services: the first model goes live at once;
a later model that wins offline goes to shadow (asked, logged, never obeyed), then to a
canary against the live model; it is promoted when it wins online on the product metric and
rolled back when it loses, each stage recorded with its reason.

The world changes under the models: while the first model learns, acting pays (a click is
likelier with the notification); then acting hurts, and the second model learns to wait.
If acting still hurts during the canary, the second model is right and wins; if acting pays
again, it loses to the first."""

from __future__ import annotations

import random

import pytest
from looper import decide_request, outcome_event
from looperpb.v1 import trainer_pb2

from examples.simulation import wait_for
from services.launcher import start_looper

pytestmark = pytest.mark.e2e

BLUEPRINT = """
name: {name}
decision_type: binary
entities: [user_id]
default_decision: false
features:
  context: {{hour_of_day: int64}}
label: {{outcome: clicked, aggregation: max, window: 1s, missing_value: 0}}
model: {{params: {{iterations: 40, depth: 2}}}}
policy: {{exploration_rate: 0.3}}
retraining: {{min_labeled_rows: 100000, max_rows: 400}}
deployment: {{shadow_decisions: 40, canary_share: 0.5, min_sample: 100, max_sample: 3000}}
"""
ACTING_PAYS = {"true": 0.7, "false": 0.2}  # the chance of a click, by action
ACTING_HURTS = {"true": 0.1, "false": 0.4}
STAGE = trainer_pb2.ModelStage


class World:
    def __init__(self, client, use_case: str, seed: int):
        self.client, self.use_case, self.rng = client, use_case, random.Random(seed)
        self.count = 0

    def decide(self, truth: dict[str, float], decisions: int) -> list:
        """Decides for fresh subjects in batches; each click is reported at once."""
        made = []
        for start in range(0, decisions, 100):
            ids = [f"{self.use_case}-{self.count + i}" for i in range(min(100, decisions - start))]
            self.count += len(ids)
            results = self.client.decide_batch([decide_request(self.use_case, i, {"user_id": i},
                                                               {"hour_of_day": self.rng.randrange(24)}) for i in ids])
            assert not [r.error for r in results if r.HasField("error")]
            decisions_made = [r.response.decision for r in results]
            clicks = [outcome_event(self.use_case, d.decision_id, "clicked", event_id=f"click-{d.decision_id}")
                      for d in decisions_made if self.rng.random() < truth[d.action]]
            if clicks:
                self.client.log_feedback_batch(clicks)
            made += decisions_made
        return made

    def train(self) -> trainer_pb2.TrainingRun:
        joined = lambda: self.client.join_stats(self.use_case).joined_decisions >= self.count  # noqa: E731
        wait_for(joined, 60, "every decision labeled")
        run = self.client.start_training_run(self.use_case)
        return wait_for(lambda: (r := self.client.get_training_run(run.run_id)).state in (
            trainer_pb2.TRAINING_RUN_STATE_SUCCEEDED, trainer_pb2.TRAINING_RUN_STATE_FAILED) and r, 120, "the run")

    def model(self, version: str) -> trainer_pb2.Model:
        return next(m for m in self.client.list_models(self.use_case) if m.version == version)


@pytest.fixture(scope="module")
def looper(tmp_path_factory):
    server = start_looper(tmp_path_factory.mktemp("canary") / "data", env={"LOOPER_RETRAIN_INTERVAL": "0.5"})
    yield server
    server.stop()


@pytest.mark.parametrize("during_canary, outcome", [(ACTING_HURTS, "promoted"), (ACTING_PAYS, "rolled back")])
def test_a_canary_is_promoted_when_it_wins_online_and_rolled_back_when_it_loses(looper, during_canary, outcome):
    use_case = "canary_wins" if outcome == "promoted" else "canary_loses"
    with looper.client(timeout=30) as client:
        client.apply_blueprint(BLUEPRINT.format(name=use_case))
        world = World(client, use_case, seed=len(use_case))
        world.decide(ACTING_PAYS, 300)
        first = world.train()
        assert first.promoted and first.model_version == "m000001", "the first model goes live at once"

        made = world.decide(ACTING_HURTS, 600)
        assert {d.model_version for d in made} == {"m000001"}
        second = world.train()
        assert second.state == trainer_pb2.TRAINING_RUN_STATE_SUCCEEDED and not second.promoted, second.error
        assert world.model(second.model_version).stage == STAGE.MODEL_STAGE_SHADOW

        def concluded():
            made = world.decide(during_canary, 200)
            stage = world.model(second.model_version).stage
            return stage in (STAGE.MODEL_STAGE_LIVE, STAGE.MODEL_STAGE_ROLLED_BACK) and (stage, made)
        stage, last = wait_for(concluded, 240, "the canary's verdict", interval=0)

        history = [(c.stage, c.reason) for c in world.model(second.model_version).stage_history]
        assert [s for s, _ in history][:2] == [STAGE.MODEL_STAGE_SHADOW, STAGE.MODEL_STAGE_CANARY]
        assert "won offline against m000001" in history[0][1] and "shadow passed" in history[1][1]
        report = client.experiment_report(use_case)
        assert report.kind == trainer_pb2.EXPERIMENT_KIND_CANARY and report.experiment_id == f"canary_{second.model_version}"
        control, canary = report.arms
        assert (control.name, canary.name) == ("control", "canary") and report.end_time.seconds > 0
        if outcome == "promoted":
            assert stage == STAGE.MODEL_STAGE_LIVE and history[-1][0] == STAGE.MODEL_STAGE_LIVE
            assert report.verdict == trainer_pb2.EXPERIMENT_VERDICT_PROMOTE and canary.diff_cs.low > 0
            assert "canary won" in history[-1][1]
            assert {d.model_version for d in world.decide(during_canary, 50)} == {second.model_version}
        else:
            assert stage == STAGE.MODEL_STAGE_ROLLED_BACK and canary.diff_cs.high < 0
            assert report.verdict == trainer_pb2.EXPERIMENT_VERDICT_ROLLBACK and "canary rollback" in history[-1][1]
            assert {d.model_version for d in world.decide(during_canary, 50)} == {"m000001"}
        assert canary.decisions > 0 and control.decisions > 0 and not report.srm_detected
        assert {d.arm for d in last} <= {"control", "canary", ""}
