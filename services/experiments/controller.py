"""Moves experiments and model rollouts along, on the Trainer's clock.

For each use case, every tick:
- a running experiment is judged on its report; a canary that wins is promoted, one that
  loses, harms a guardrail, fails to serve or stays inconclusive is rolled back; a blueprint
  experiment ends at its verdict (the report says which arm won);
- a model in shadow that has been asked about enough decisions goes to canary; one that
  failed to answer, or saw too few decisions in ``shadow_max_time``, is rolled back;
- otherwise a blueprint experiment that has not run yet is started, or the policy is tuned
  (PolicyTuner: off-policy, then online rounds that are experiments of their own).

Every stage change is recorded with its reason (ModelRegistry.stage_history), and every
ended experiment with its verdict (ExperimentStore.history).
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timezone
from typing import Callable

from services.blueprints.spec import Blueprint
from services.blueprints.store import BlueprintStore
from services.experiments import experiment as experiments
from services.experiments.experiment import CANARY, Experiment, ExperimentKind, Verdict
from services.experiments.report import ExperimentResult, build_report
from services.experiments.store import ExperimentStore
from services.experiments.tuner import PolicyTuner
from services.labels.activity import DecisionActivity
from services.labels.training_table import TrainingTable
from services.models.registry import ModelRegistry, ModelStage, Rollout

log = logging.getLogger("looper.experiments")

MAX_FAILURE_SHARE = 0.05  # of a shadow's or canary's decisions that may fail before it is rolled back
MIN_DECISIONS_FOR_FAILURES = 20


class ExperimentController:
    def __init__(self, blueprints: BlueprintStore, store: ExperimentStore, registry: ModelRegistry,
                 table: TrainingTable, activity: DecisionActivity,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc), tuner: PolicyTuner | None = None):
        self.blueprints, self.store, self.registry = blueprints, store, registry
        self.table, self.activity, self.clock = table, activity, clock
        self.tuner = tuner
        self.failures: Counter[str] = Counter()

    def check_all(self) -> None:
        """One tick over every use case; one use case's failure never stops the others."""
        for use_case in self.blueprints.names():
            try:
                self.check(use_case)
            except Exception:  # noqa: BLE001 - counted, logged, retried next tick
                log.exception("the experiment check of %s failed", use_case)
                self.failures[use_case] += 1

    def check(self, use_case: str) -> None:
        blueprint = self.blueprints.latest(use_case)
        running = self.store.active(use_case)
        rollout = self.registry.rollout(use_case)
        if running is not None:
            self._judge(blueprint, running, rollout)
        elif rollout is not None and rollout.stage == ModelStage.SHADOW:
            self._check_shadow(blueprint, rollout)
        elif rollout is not None and rollout.stage == ModelStage.CANARY:
            self.store.start(experiments.canary(blueprint, rollout.version, self.clock()))
        elif blueprint.experiment is not None and not self.store.was_run(use_case, blueprint.experiment.name):
            self.store.start(experiments.from_blueprint(blueprint, blueprint.experiment, self.clock()))
            log.info("experiment %s of %s started", blueprint.experiment.name, use_case)
        elif blueprint.tuning is not None and self.tuner is not None:
            self.tuner.step(blueprint)

    def report(self, use_case: str, experiment_id: str = "") -> ExperimentResult:
        experiment = self.store.find(use_case, experiment_id)
        blueprint = self.blueprints.get(use_case, experiment.blueprint_version).blueprint
        activity = self.activity.by_arm(use_case, experiment.start_time, experiment.end_time)
        return build_report(experiment, blueprint, self.table.read(use_case), activity)

    # --- experiments ---------------------------------------------------------------------------
    def _judge(self, blueprint: Blueprint, running: Experiment, rollout: Rollout | None) -> None:
        if running.kind == ExperimentKind.BLUEPRINT and (
                blueprint.experiment is None or blueprint.experiment.name != running.experiment_id):
            self._finish(running, Verdict.STOPPED, f"blueprint version {blueprint.version} no longer declares it")
            return
        if running.kind == ExperimentKind.CANARY and (rollout is None or rollout.version != running.arm(CANARY).model):
            self._finish(running, Verdict.STOPPED, "its model is no longer rolling out (promoted or rolled back by "
                                                   "an operator)")
            return
        result = self.report(running.use_case, running.experiment_id)
        verdict, reason = result.verdict, result.reason
        if running.kind == ExperimentKind.CANARY:
            verdict, reason = self._canary_health(running, result) or (verdict, reason)
        if running.kind == ExperimentKind.TUNING:
            if self.tuner is not None:
                self.tuner.check_round(running, result)  # a round ends at its sample, whatever the verdict
            return
        if verdict == Verdict.CONTINUE:
            return
        self._finish(running, verdict, reason)
        if running.kind == ExperimentKind.CANARY and rollout is not None:
            version = running.arm(CANARY).model
            if verdict == Verdict.PROMOTE:
                self.registry.promote(running.use_case, version, f"canary won: {reason}")
            else:
                self.registry.roll_back_rollout(running.use_case, version, f"canary {verdict.value}: {reason}")

    def _canary_health(self, running: Experiment, result: ExperimentResult) -> tuple[Verdict, str] | None:
        """A canary whose model failed to serve too many of its decisions is rolled back."""
        canary = next(arm for arm in result.arms if arm.arm.name == CANARY)
        decisions, failed = canary.activity.decisions, canary.activity.model_failures
        if decisions >= MIN_DECISIONS_FOR_FAILURES and failed > MAX_FAILURE_SHARE * decisions:
            return Verdict.ROLLBACK, f"the model failed on {failed} of its {decisions} canary decisions"
        return None

    def _finish(self, running: Experiment, verdict: Verdict, reason: str) -> None:
        self.store.finish(running.use_case, running.experiment_id, verdict, reason)
        log.info("experiment %s of %s ended: %s (%s)", running.experiment_id, running.use_case, verdict.value, reason)

    # --- shadow ----------------------------------------------------------------------------------
    def _check_shadow(self, blueprint: Blueprint, rollout: Rollout) -> None:
        spec = blueprint.deployment
        since = datetime.fromisoformat(rollout.since)
        seen = self.activity.shadow(blueprint.name, rollout.version, since)
        if seen.decisions >= MIN_DECISIONS_FOR_FAILURES and seen.failures > MAX_FAILURE_SHARE * seen.decisions:
            self.registry.roll_back_rollout(blueprint.name, rollout.version, f"failed in shadow: it could not "
                                            f"answer {seen.failures} of {seen.decisions} decisions")
            return
        wanted = spec.shadow_decisions if spec else 0
        if seen.decisions >= wanted:
            agreement = seen.agreements / seen.decisions if seen.decisions else 1.0
            self.registry.set_rollout(blueprint.name, rollout.version, ModelStage.CANARY,
                                      f"shadow passed: answered {seen.decisions} decisions, {seen.failures} failed, "
                                      f"agreed with the live model on {agreement:.0%}", since=self.clock().isoformat())
            self.store.start(experiments.canary(blueprint, rollout.version, self.clock()))
        elif spec is not None and self.clock() - since > spec.shadow_max_time:
            self.registry.roll_back_rollout(blueprint.name, rollout.version,
                                            f"saw only {seen.decisions} of {wanted} decisions in shadow within "
                                            f"{spec.shadow_max_time}")
