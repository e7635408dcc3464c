"""The product-goal layer on the reengagement world, through the real services:

- ``run_policy_experiment``: once an uplift model is live, the response and the uplift
  objectives run as the two arms of an experiment (half of the users each); the Trainer's
  sequential test ends it as soon as its anytime-valid interval decides. The simulator's truth
  says which arm really is better.
- ``tune_for_goal``: a second use case in the same world decides by predicted proxies (opens
  and unsubscribes, weighed) while its goal is the return that no model predicts; the Trainer
  tunes the proxies' weights and the threshold for the goal (off-policy, then an online round),
  and the tuned and untuned policies are then judged by the truth on the same users, at the
  same exploration floor.
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import yaml
from looper import LooperClient, LooperError
from looperpb.v1 import trainer_pb2

from examples.reengagement.hte import blueprint_yaml
from examples.reengagement.simulator import BLUEPRINT, ReengagementProduct
from examples.simulation import live_model

EXPERIMENT_START = 20_000_000  # decision indexes of the experiment: users not seen before in that order
GOAL_USE_CASE = "reengagement_goal"
TUNING_EVALUATION_START = 30_000_000
EXPLORATION_FLOOR = 0.2  # the goal use case's exploration, tuned or not


def run_policy_experiment(client: LooperClient, seed: int, *, max_decisions: int = 8000, batch: int = 500,
                          concurrency: int = 8, say: Callable[[str], None] = print) -> str:
    """Runs the response and uplift objectives as arms until the experiment ends; returns the
    EXPERIMENT RESULT line."""
    spec = yaml.safe_load(blueprint_yaml(exploration_rate=0.1))
    spec["experiment"] = {"name": "response_vs_uplift", "control": "response", "min_sample": 300, "arms": [
        {"name": "response", "share": 0.5, "policy": {"objective": "response"}},
        {"name": "uplift", "share": 0.5, "policy": {"objective": "uplift"}}]}
    client.apply_blueprint(yaml.safe_dump(spec, sort_keys=False))
    say("== experiment: the response objective against the uplift objective, half of the users each, until the "
        "sequential test decides")
    product = ReengagementProduct.build(client, seed)
    product.phase = "experiment"
    truth: dict[str, list[float]] = {"response": [], "uplift": []}
    report, made = None, 0
    while made < max_decisions:
        with ThreadPoolExecutor(concurrency) as pool:
            for judged in pool.map(product.decide, range(EXPERIMENT_START + made, EXPERIMENT_START + made + batch)):
                truth.setdefault(judged.decision.arm, []).append(judged.value)
        made += batch
        report = _report(client, "reengagement", "response_vs_uplift")
        if report is None:
            continue
        control, treatment = report.arms
        say(f"   {made} decisions: {control.name} {control.labeled_decisions} labeled, {control.value:.4f}; "
            f"{treatment.name} {treatment.labeled_decisions} labeled, {treatment.value:.4f}; "
            f"difference in [{treatment.diff_cs.low:.4f}, {treatment.diff_cs.high:.4f}] (anytime-valid)")
        if report.HasField("end_time"):
            break
    product.feedback.drain()
    if report is None:
        return "EXPERIMENT RESULT arms=0 decision=continue (the experiment never started)"
    control, treatment = report.arms
    verdict = trainer_pb2.ExperimentVerdict.Name(report.verdict).removeprefix("EXPERIMENT_VERDICT_").lower()
    better = statistics.fmean(truth["uplift"]) > statistics.fmean(truth["response"])
    say(f"   by the simulator's truth: response arm {statistics.fmean(truth['response']):.4f}, uplift arm "
        f"{statistics.fmean(truth['uplift']):.4f} per decision; the verdict '{verdict}' "
        f"{'agrees with' if (verdict == 'promote') == better else 'does not agree with'} the truth")
    say(f"   {report.reason}")
    return (f"EXPERIMENT RESULT arms={len(report.arms)} control={control.value:.4f} treatment={treatment.value:.4f} "
            f"diff_ci=[{treatment.diff_cs.low:.4f},{treatment.diff_cs.high:.4f}] srm_p={report.srm_p_value:.3f} "
            f"decision={verdict}")


@dataclass(frozen=True)
class TuningOutcome:
    untuned_value: float
    tuned_value: float
    params: dict[str, float]
    reason: str

    def line(self) -> str:
        lift = 100 * (self.tuned_value - self.untuned_value) / abs(self.untuned_value)
        shown = ",".join(f"{k}={v:.3f}" for k, v in sorted(self.params.items())) or "none"
        return (f"TUNING RESULT untuned_value={self.untuned_value:.4f} tuned_value={self.tuned_value:.4f} "
                f"lift={lift:.1f}% params={shown}")


def goal_blueprint() -> dict:
    """The reengagement use case deciding by proxies: opens weighed 1, unsubscribes 0 (what a
    team would start with), the return as the goal, and the parameters the tuner may change."""
    spec = yaml.safe_load(BLUEPRINT.read_text())
    spec.update(name=GOAL_USE_CASE, description="Notify by predicted opens and unsubscribes; tuned for returns.")
    spec.pop("label")
    spec["labels"] = [{"outcome": o, "aggregation": "max", "window": "1s", "missing_value": 0}
                      for o in ("opened", "unsubscribed", "returned")]
    spec["model"] = {"params": {"iterations": 150, "depth": 4, "learning_rate": 0.1}}
    spec["policy"] = {"exploration_rate": EXPLORATION_FLOOR, "threshold": 0.0}
    spec["product_metric"] = {"weights": {"opened": 1.0, "unsubscribed": 0.0}, "treatment_cost": 0.1,
                              "goal": "returned"}
    spec["retraining"] = {"min_labeled_rows": 3000}
    spec["tuning"] = {"parameters": {"weights.opened": [0.0, 2.0], "weights.unsubscribed": [-20.0, 0.0],
                                     "threshold": [-0.2, 0.4]},
                      "offline_evaluations": 30, "candidates_per_round": 1, "rounds": 1, "round_sample": 1500,
                      "min_rows": 3000, "seed": 1}
    return spec


def tune_for_goal(client: LooperClient, seed: int, *, evaluation_decisions: int = 2000, concurrency: int = 8,
                  timeout: float = 150, say: Callable[[str], None] = print) -> TuningOutcome:
    spec = goal_blueprint()
    randomized = {**{k: v for k, v in spec.items() if k != "tuning"},
                  "policy": {**spec["policy"], "exploration_rate": 1.0}}
    first, _ = client.apply_blueprint(yaml.safe_dump(randomized, sort_keys=False))
    say(f"== tuning: {GOAL_USE_CASE} decides by predicted opens and unsubscribes; its goal is the return. "
        f"v{first.version} collects randomized decisions until a model is live")
    product = ReengagementProduct.build(client, seed, use_case=GOAL_USE_CASE)
    product.phase = "tuning"
    started, index = time.monotonic(), 0
    while live_model(client, GOAL_USE_CASE) is None and time.monotonic() - started < timeout:
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(product.decide, range(index, index + 500)))
        index += 500
    applied, _ = client.apply_blueprint(yaml.safe_dump(spec, sort_keys=False))
    say(f"   {index} randomized decisions; v{applied.version} serves the model with the untuned weights "
        f"(exploration floor {EXPLORATION_FLOOR:.0%}), and the Trainer tunes the weights and the threshold for the goal")

    def concluded():
        """The last round's report once it ended: its reason says what the tuning found."""
        report = _report(client, GOAL_USE_CASE, "")
        ended = report is not None and report.HasField("end_time") and report.verdict in (
            trainer_pb2.EXPERIMENT_VERDICT_PROMOTE, trainer_pb2.EXPERIMENT_VERDICT_INCONCLUSIVE)
        return report if ended else None

    while concluded() is None and time.monotonic() - started < timeout:
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(product.decide, range(index, index + 500)))
        index += 500
        model = live_model(client, GOAL_USE_CASE)
        report = _report(client, GOAL_USE_CASE, "")
        say(f"   {index} decisions; live model: {model.version if model else 'none yet'}; " + (
            "tuning round: " + ", ".join(f"{a.name} {a.labeled_decisions} labeled" for a in report.arms)
            if report else "no tuning round yet"))
    final = concluded()
    if final is None:
        product.feedback.drain()
        return TuningOutcome(float("nan"), float("nan"), {}, "the tuning did not finish within the time allowed")
    say(f"   {final.reason}")
    tuned = client.get_blueprint(GOAL_USE_CASE)
    if tuned.version == applied.version:
        product.feedback.drain()
        return TuningOutcome(float("nan"), float("nan"), {}, final.reason)
    tuned_spec = yaml.safe_load(tuned.spec_yaml)
    params = {"threshold": tuned_spec["policy"].get("threshold", 0.0),
              **{f"weights.{o}": w for o, w in tuned_spec["product_metric"]["weights"].items()}}
    say(f"   tuned: blueprint v{tuned.version} with " + ", ".join(f"{k}={v:.3f}" for k, v in params.items()))
    values = {}
    for name, policy_spec in (("untuned", spec), ("tuned", tuned_spec)):  # the same users for both
        judged_spec = {k: v for k, v in policy_spec.items() if k != "tuning"}
        client.apply_blueprint(yaml.safe_dump(judged_spec, sort_keys=False))
        product.phase = f"judged-{name}"
        with ThreadPoolExecutor(concurrency) as pool:
            judged = list(pool.map(product.decide, range(TUNING_EVALUATION_START,
                                                          TUNING_EVALUATION_START + evaluation_decisions)))
        values[name] = statistics.fmean(j.value for j in judged)
        say(f"   {name} policy on {len(judged)} users: {sum(j.decision.action == 'true' for j in judged)} notified, "
            f"{values[name]:.4f} per decision by the truth")
    product.feedback.drain()
    return TuningOutcome(values["untuned"], values["tuned"], params, final.reason)


def _report(client: LooperClient, use_case: str, experiment_id: str):
    try:
        return client.experiment_report(use_case, experiment_id)
    except LooperError:  # the Trainer starts it at its next tick
        return None
