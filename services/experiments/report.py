"""An experiment's report: per arm, its decisions and outcomes (as the label joiner saw them)
and the product value of its labeled decisions (from the training table); each treatment
against control with a fixed-horizon interval and an anytime-valid confidence sequence; the
sample-ratio check; and the verdict so far.

The verdict uses only the confidence sequences (``services.evaluation.sequential``), so the
report may be read, and the Trainer may act on it, after every batch of labels without
inflating the error rates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from services.blueprints.spec import Blueprint, DecisionType
from services.decision.policies import baseline_action
from services.evaluation import sequential as seq
from services.experiments.experiment import Arm, Experiment, Verdict
from services.labels.activity import ArmActivity
from services.labels.training_table import label_column
from services.trainer.evaluation import rewards

SRM_THRESHOLD = 0.001


@dataclass(frozen=True)
class ArmResult:
    arm: Arm
    activity: ArmActivity  # decisions and outcomes so far, labeled or not
    value: seq.ArmReport  # the product value per labeled decision, with its intervals
    outcome_means: dict[str, float]
    comparison: seq.Comparison | None  # against control (None for control)


@dataclass(frozen=True)
class ExperimentResult:
    experiment: Experiment
    arms: list[ArmResult]  # control first
    sample_ratio: seq.SampleRatioCheck
    verdict: Verdict
    reason: str
    confidence: float


def build_report(experiment: Experiment, blueprint: Blueprint, table: pd.DataFrame,
                 activity: dict[str, ArmActivity]) -> ExperimentResult:
    rows = experiment_rows(experiment, table)
    arms = sorted(experiment.arms, key=lambda a: a.name != experiment.control)
    values = {arm.name: decision_values(blueprint, rows[rows["arm"] == arm.name]) for arm in arms}
    summaries = [seq.ArmSummary.of(arm.name, values[arm.name]) for arm in arms]
    report = seq.experiment_report(summaries, control=experiment.control, shares={a.name: a.share for a in arms},
                                   target_sample=target_sample(experiment), alpha=experiment.alpha)
    decisions = {arm.name: activity.get(arm.name, ArmActivity()).decisions for arm in arms}
    srm = seq.sample_ratio_check(decisions if sum(decisions.values()) else {s.name: s.n for s in summaries},
                                 {arm.name: arm.share for arm in arms}, threshold=SRM_THRESHOLD)
    comparisons = {c.treatment: c for c in report.comparisons}
    results = [ArmResult(arm, activity.get(arm.name, ArmActivity()), arm_report,
                         outcome_means(blueprint, rows[rows["arm"] == arm.name]), comparisons.get(arm.name))
               for arm, arm_report in zip(arms, report.arms)]
    if experiment.end_time is not None:
        verdict, reason = experiment.verdict, experiment.reason
    else:
        verdict, reason = judge(experiment, blueprint, rows, summaries, srm)
    return ExperimentResult(experiment, results, srm, verdict, reason, 1.0 - experiment.alpha)


def judge(experiment: Experiment, blueprint: Blueprint, rows: pd.DataFrame, summaries: list[seq.ArmSummary],
          srm: seq.SampleRatioCheck) -> tuple[Verdict, str]:
    """The verdict so far: a treatment proven better is promoted, one proven worse (or
    harmful on a guardrail) rolled back; with several treatments, the best proven one wins
    and the experiment goes on while any is undecided. An experiment whose every arm reached
    ``max_sample`` without a verdict is inconclusive."""
    by_name = {s.name: s for s in summaries}
    control = by_name[experiment.control]
    decisions = []
    for arm in experiment.treatments:
        guardrails = [seq.Guardrail(g.outcome, *_guardrail_summaries(blueprint, rows, experiment.control, arm.name,
                                                                     g.outcome), tolerance=g.max_harm,
                                    higher_is_better=g.better == "higher") for g in experiment.guardrails]
        decisions.append((arm.name, seq.sequential_decision(
            control, by_name[arm.name], target_sample=target_sample(experiment), min_sample=experiment.min_sample,
            guardrails=guardrails, sample_ratio=srm, alpha=experiment.alpha)))
    promoted = [(name, d) for name, d in decisions if d.verdict == seq.Verdict.PROMOTE]
    if promoted:
        name, decision = max(promoted, key=lambda item: by_name[item[0]].mean)
        return Verdict.PROMOTE, decision.reason
    if all(d.verdict == seq.Verdict.ROLLBACK for _, d in decisions):
        return Verdict.ROLLBACK, "; ".join(d.reason for _, d in decisions)
    if min(s.n for s in summaries) >= experiment.max_sample:
        return Verdict.INCONCLUSIVE, (f"every arm reached max_sample ({experiment.max_sample}) without a verdict: "
                                      + "; ".join(d.reason for _, d in decisions))
    return Verdict.CONTINUE, "; ".join(d.reason for _, d in decisions if d.verdict == seq.Verdict.CONTINUE)


def target_sample(experiment: Experiment) -> float:
    """Where the confidence sequences are tuned to be tightest: a few times the minimum
    sample, in all arms together (they are valid at every sample size regardless)."""
    return float(min(4 * experiment.min_sample, experiment.max_sample) * len(experiment.arms))


def experiment_rows(experiment: Experiment, table: pd.DataFrame) -> pd.DataFrame:
    """The labeled decisions made under the experiment: in its arms, within its time."""
    if table.empty or "arm" not in table:
        return table.iloc[0:0].assign(arm=pd.Series(dtype=str))
    times = pd.to_datetime(table["event_timestamp"], utc=True)
    inside = (times >= pd.Timestamp(experiment.start_time)) & table["arm"].isin([a.name for a in experiment.arms])
    if experiment.end_time is not None:
        inside &= times < pd.Timestamp(experiment.end_time)
    return table[inside]


def decision_values(blueprint: Blueprint, rows: pd.DataFrame) -> np.ndarray:
    """The product value each labeled decision earned: its goal's value less the cost of
    acting when the blueprint names a goal, else its labels weighed by the product metric
    (a ranking's: the sum over its items)."""
    if rows.empty:
        return np.array([])
    actions = rows["action"].astype(str).to_numpy()
    goal = blueprint.product_metric.goal
    if goal is not None:
        acted = actions != baseline_action(blueprint)
        return _labels(blueprint, rows)[goal] - blueprint.product_metric.treatment_cost * acted
    earned = rewards(blueprint, actions, _labels(blueprint, rows))
    if blueprint.decision_type == DecisionType.RANKING:
        return pd.Series(earned, index=rows.index).groupby(rows["decision_id"]).sum().to_numpy()
    return earned


def outcome_means(blueprint: Blueprint, rows: pd.DataFrame) -> dict[str, float]:
    labels = _labels(blueprint, rows)
    return {outcome: float(np.mean(values)) for outcome, values in labels.items() if len(values)}


def _labels(blueprint: Blueprint, rows: pd.DataFrame) -> dict[str, np.ndarray]:
    labels = {}
    for label in blueprint.all_labels:
        column = label_column(label.outcome) if label_column(label.outcome) in rows else "label"
        labels[label.outcome] = rows[column].astype(float).fillna(label.missing_value).to_numpy()
    return labels


def _guardrail_summaries(blueprint: Blueprint, rows: pd.DataFrame, control: str, treatment: str,
                         outcome: str) -> tuple[seq.ArmSummary, seq.ArmSummary]:
    values = {arm: _labels(blueprint, rows[rows["arm"] == arm]).get(outcome, np.array([]))
              for arm in (control, treatment)}
    return seq.ArmSummary.of(control, values[control]), seq.ArmSummary.of(treatment, values[treatment])
