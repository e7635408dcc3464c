"""Tunes a use case's policy for its product goal (the blueprint's ``tuning`` section).

1. Off-policy: a Gaussian process (``services.evaluation.tuning.BayesianTuner``) searches the
   parameters; each point is scored by replaying the policy it defines on the logged
   decisions — the live model's predictions for every action, the point's threshold, weights
   and exploration — and weighting each decision's goal value by how likely that policy was
   to do what was done (self-normalized IPS, ``services.evaluation.ope``).
2. Online: the best points become arms of a TUNING experiment beside the current policy,
   each with a share of the subjects; a round ends once every arm has ``round_sample``
   labeled decisions, and its values are told to the process as observations of their own.
3. After the last round, the best arm whose fixed-horizon interval against the current
   policy is above zero becomes a new blueprint version (the ``tuned`` policy); if none is,
   the current policy stays and the report says so.

Its state (``<experiments>/<use_case>/tuning.json``) survives restarts; a blueprint version
is tuned once, and the version it produces is not tuned again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import yaml

from services.blueprints.spec import Blueprint
from services.blueprints.store import BlueprintStore
from services.decision.policies import action_probabilities
from services.evaluation import ope
from services.evaluation.sequential import ArmSummary, welch_difference
from services.evaluation.tuning import BayesianTuner
from services.experiments.experiment import Arm, Experiment, ExperimentKind, Verdict, with_overrides
from services.experiments.report import ExperimentResult, decision_values
from services.experiments.store import ExperimentStore
from services.labels.training_table import TrainingTable
from services.models.encoding import ACTION_COLUMN
from services.models.registry import ModelRegistry
from services.models.runtime import ServingModel
from services.platform.files import write_file_durably

log = logging.getLogger("looper.tuning")

CURRENT = "current"


@dataclass
class TuningState:
    blueprint_version: int  # the version being tuned
    round: int = 0  # online rounds started
    tuner: dict = field(default_factory=dict)  # the BayesianTuner's state
    offline: list[dict] = field(default_factory=list)  # {"params", "value", "ci_low", "ci_high", "ess"}
    rounds: list[dict] = field(default_factory=list)  # {"experiment_id", "arms": {arm: params}, "values": {...}}
    done: bool = False
    produced_version: int = 0  # the tuned blueprint version, if one won
    reason: str = ""


class PolicyTuner:
    def __init__(self, blueprints: BlueprintStore, store: ExperimentStore, registry: ModelRegistry,
                 table: TrainingTable, clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self.blueprints, self.store, self.registry, self.table = blueprints, store, registry, table
        self.clock = clock

    # --- state ------------------------------------------------------------------------------
    def state(self, use_case: str) -> TuningState | None:
        try:
            return TuningState(**json.loads(self._path(use_case).read_text()))
        except FileNotFoundError:
            return None

    def _save(self, use_case: str, state: TuningState) -> None:
        self._path(use_case).parent.mkdir(parents=True, exist_ok=True)
        write_file_durably(self._path(use_case), json.dumps(asdict(state)).encode())

    def _path(self, use_case: str) -> Path:
        return self.store.root / use_case / "tuning.json"

    # --- the steps ----------------------------------------------------------------------------
    def step(self, blueprint: Blueprint) -> None:
        """Called when the use case runs no experiment: starts tuning a blueprint version
        that has not been, or the next online round."""
        if self.store.active(blueprint.name) is not None:
            return  # a round (or another experiment) is running
        state = self.state(blueprint.name)
        if state is not None and blueprint.version in (state.blueprint_version, state.produced_version):
            if not state.done:
                self._next_round(blueprint, state)
            return
        live = self._live_model(blueprint.name)
        rows = self.table.read(blueprint.name)
        if live is None or len(rows) < blueprint.tuning.min_rows:
            return  # nothing to replay the policy with yet
        state = TuningState(blueprint_version=blueprint.version)
        self._tune_offline(blueprint, state, live, rows)
        self._next_round(blueprint, state)

    def _tune_offline(self, blueprint: Blueprint, state: TuningState, live: ServingModel, rows: pd.DataFrame) -> None:
        replay = PolicyReplay(blueprint, live, rows)
        spec = blueprint.tuning
        tuner = BayesianTuner({name: tuple(bounds) for name, bounds in spec.parameters.items()}, seed=spec.seed)
        for _ in range(spec.offline_evaluations):
            params = tuner.ask()[0]
            estimate = replay.value(params)
            if np.isfinite(estimate.value) and np.isfinite(estimate.std_error):  # else no decision matched it
                tuner.tell(params, estimate.value, noise=estimate.std_error)
            state.offline.append({"params": params, "value": estimate.value, "ci_low": estimate.ci_low,
                                  "ci_high": estimate.ci_high, "ess": estimate.effective_sample_size})
        current = replay.value({})
        state.offline.append({"params": {}, "value": current.value, "ci_low": current.ci_low,
                              "ci_high": current.ci_high, "ess": current.effective_sample_size})
        state.tuner = tuner.to_state()
        log.info("tuned %s off-policy: current %.4f, best %s", blueprint.name, current.value, tuner.best())

    def _next_round(self, blueprint: Blueprint, state: TuningState) -> None:
        spec = blueprint.tuning
        if state.round >= spec.rounds:
            self._conclude(blueprint, state)
            return
        tuner = BayesianTuner.from_state(state.tuner)
        proposals = _distinct([tuner.best()[0]] + tuner.ask(spec.candidates_per_round), spec.candidates_per_round)
        state.round += 1
        share = 1.0 / (len(proposals) + 1)
        arms = [Arm(CURRENT, share)] + [Arm(f"candidate_{i + 1}", share, "live", overrides(blueprint, p))
                                        for i, p in enumerate(proposals)]
        experiment_id = f"tuning_v{blueprint.version}_round_{state.round}"
        self.store.start(Experiment(
            use_case=blueprint.name, experiment_id=experiment_id, kind=ExperimentKind.TUNING, control=CURRENT,
            arms=tuple(arms), blueprint_version=blueprint.version, start_time=self.clock(),
            min_sample=spec.round_sample, max_sample=spec.round_sample))
        state.rounds.append({"experiment_id": experiment_id, "arms": {f"candidate_{i + 1}": p
                                                                      for i, p in enumerate(proposals)}})
        state.tuner = tuner.to_state()
        self._save(blueprint.name, state)

    def check_round(self, running: Experiment, result: ExperimentResult) -> None:
        """Ends the running round once every arm has its sample, and tells the process the
        arms' online values."""
        if min(arm.value.arm.n for arm in result.arms) < running.max_sample:
            return
        state = self.state(running.use_case)
        tuner = BayesianTuner.from_state(state.tuner)
        values = {}
        for arm in result.arms:
            summary = arm.value.arm
            values[arm.arm.name] = {"mean": summary.mean, "n": summary.n, "sum": summary.sum, "sum_sq": summary.sum_sq}
            if arm.arm.name != CURRENT:
                params = state.rounds[-1]["arms"][arm.arm.name]
                if np.isfinite(summary.standard_error):
                    tuner.tell(params, summary.mean, noise=summary.standard_error)
        state.rounds[-1]["values"] = values
        state.tuner = tuner.to_state()
        self._save(running.use_case, state)
        self.store.finish(running.use_case, running.experiment_id, Verdict.STOPPED,
                          f"tuning round {state.round} complete: {_describe(values)}")

    def _conclude(self, blueprint: Blueprint, state: TuningState) -> None:
        """The best arm of the rounds that beat the current policy of its round becomes the
        tuned blueprint version."""
        best: tuple[float, dict, str] | None = None
        for round_ in state.rounds:
            control = round_["values"][CURRENT]
            for arm, params in round_["arms"].items():
                value = round_["values"][arm]
                low = _difference_low(control, value)
                if low > 0 and (best is None or value["mean"] > best[0]):
                    best = (value["mean"], params, f"{arm} of {round_['experiment_id']}: {value['mean']:.4f} per "
                                                   f"decision against {control['mean']:.4f} (difference > {low:.4f})")
        state.done = True
        if best is None:
            state.reason = "no candidate beat the current policy; it stays"
        else:
            stored, _ = self.blueprints.apply(tuned_yaml(self.blueprints.get(blueprint.name, blueprint.version).spec_yaml,
                                                         blueprint, best[1]))
            state.produced_version = stored.blueprint.version
            state.reason = f"tuned: blueprint version {stored.blueprint.version} from {best[2]}"
        log.info("tuning of %s v%d done: %s", blueprint.name, blueprint.version, state.reason)
        self._save(blueprint.name, state)

    def _live_model(self, use_case: str) -> ServingModel | None:
        version = self.registry.live_version(use_case)
        if not version:
            return None
        return ServingModel(self.registry.get(use_case, version), self.registry.artifact(use_case, version))


class PolicyReplay:
    """The logged decisions with the live model's predictions for every action, to value
    any parameter set's policy off-policy."""

    def __init__(self, blueprint: Blueprint, model: ServingModel, rows: pd.DataFrame):
        rows = rows[rows["propensity"] > 0].reset_index(drop=True)
        self.blueprint, self.rows = blueprint, rows
        self.actions = list(blueprint.choices)
        features = model.input.frame(rows)
        per_action = [model.predict_encoded(features.assign(**{ACTION_COLUMN: a})) for a in self.actions]
        self.predictions = [{outcome: [p[outcome][i] for p in per_action] for outcome in per_action[0]}
                            for i in range(len(rows))]
        self.logged = rows[ACTION_COLUMN].astype(str).to_numpy()
        self.rewards = decision_values(blueprint, rows)

    def value(self, params: dict[str, Any]) -> ope.Estimate:
        policy = with_overrides(self.blueprint, overrides(self.blueprint, params))
        index = {a: i for i, a in enumerate(self.actions)}
        target = np.array([action_probabilities(policy, self.actions, scores)[index[a]]
                           for scores, a in zip(self.predictions, self.logged)])
        return ope.snips(self.rewards, target, self.rows["propensity"].to_numpy(dtype=float))


def overrides(blueprint: Blueprint, params: dict[str, Any]) -> dict[str, Any]:
    """A tuner's point as policy overrides (weights.<outcome> completes the weights)."""
    result: dict[str, Any] = {k: float(v) for k, v in params.items() if not k.startswith("weights.")}
    weights = {k.removeprefix("weights."): float(v) for k, v in params.items() if k.startswith("weights.")}
    if weights:
        result["weights"] = {**blueprint.weights, **weights}
    return result


def tuned_yaml(spec_yaml: str, blueprint: Blueprint, params: dict[str, Any]) -> str:
    """The blueprint document with the tuned parameters written in."""
    spec = yaml.safe_load(spec_yaml)
    changes = overrides(blueprint, params)
    policy = spec.setdefault("policy", {})
    metric = spec.setdefault("product_metric", {})
    for key in ("threshold", "exploration_rate", "temperature"):
        if key in changes:
            policy[key] = round(changes[key], 6)
    if "treatment_cost" in changes:
        metric["treatment_cost"] = round(changes["treatment_cost"], 6)
    if "weights" in changes:
        metric.pop("outcome_value", None)
        metric["weights"] = {o: round(w, 6) for o, w in changes["weights"].items()}
    return yaml.safe_dump(spec, sort_keys=False)


def _distinct(points: list[dict], count: int) -> list[dict]:
    unique: list[dict] = []
    for point in points:
        if point not in unique:
            unique.append(point)
    return unique[:count]


def _difference_low(control: dict, treatment: dict) -> float:
    """The low end of the 95% interval of treatment - control at the round's fixed sample
    (the round ends at a sample set in advance, so a fixed-horizon interval is valid)."""
    if min(control["n"], treatment["n"]) < 2:
        return float("-inf")
    return welch_difference(ArmSummary("control", control["n"], control["sum"], control["sum_sq"]),
                            ArmSummary("treatment", treatment["n"], treatment["sum"], treatment["sum_sq"])).interval.low


def _describe(values: dict) -> str:
    return ", ".join(f"{arm} {v['mean']:.4f} (n={v['n']})" for arm, v in values.items())
