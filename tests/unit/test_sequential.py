"""Experiment statistics on simulated data whose truth is known: the fixed-horizon intervals
cover at their nominal rate, the confidence sequence keeps its error rate when it is looked at
after every 50 decisions while the fixed-horizon interval does not, the sequence stops early on
a real difference, the sample-ratio check fires on a skewed split and rarely on fair ones, and
the sequential decision promotes, rolls back and waits when it should. Every simulation is
seeded, so each rate below is a fixed number, not a flaky one."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from services.evaluation.sequential import (
    ArmSummary,
    Guardrail,
    Interval,
    Verdict,
    difference_confidence_sequence,
    experiment_report,
    mean_confidence_sequence,
    mean_interval,
    normal_mixture_margin,
    rho_squared_for,
    sample_ratio_check,
    sequential_decision,
    welch_difference,
)

BUDGET = 5_000  # decisions per simulated experiment (both arms)
LOOK_EVERY = 50
STREAMS = 300


def summary(name: str, n: int, mean: float, sd: float) -> ArmSummary:
    """An arm whose n decisions have exactly this mean and sample standard deviation."""
    return ArmSummary(name, n, n * mean, (n - 1) * sd * sd + n * mean * mean)


def product_values(rng: np.random.Generator, size: int, open_rate: float) -> np.ndarray:
    """Per-decision product value shaped like the notification example's: an open is worth 1,
    a send costs 0.25 (70% of decisions send), and a rare heavy tail (5% earn an exponential
    bonus), so the values are skewed and far from normal."""
    opened = rng.random(size) < open_rate
    sent = rng.random(size) < 0.7
    bonus = rng.exponential(1.0, size) * (rng.random(size) < 0.05)
    return opened * 1.0 - 0.25 * sent + bonus


def running_summaries(values: np.ndarray, in_arm: np.ndarray, name: str, looks: np.ndarray) -> list[ArmSummary]:
    """The arm's summary at each look (the looks are indices into the stream)."""
    n = np.cumsum(in_arm)[looks]
    total = np.cumsum(values * in_arm)[looks]
    squares = np.cumsum(values * values * in_arm)[looks]
    return [ArmSummary(name, int(a), float(b), float(c)) for a, b, c in zip(n, total, squares)]


# --- summaries ------------------------------------------------------------------------------

def test_summary_matches_numpy_and_adds_up():
    values = np.random.default_rng(3).normal(2.0, 0.5, 1_001)
    arm = ArmSummary.of("a", values)
    assert arm.n == 1_001
    assert arm.mean == pytest.approx(values.mean())
    assert arm.variance == pytest.approx(values.var(ddof=1))
    assert arm.standard_error == pytest.approx(values.std(ddof=1) / math.sqrt(1_001))
    split = ArmSummary.of("a", values[:400]).plus(values[400:])
    assert (split.n, split.sum, split.sum_sq) == pytest.approx((arm.n, arm.sum, arm.sum_sq))
    assert math.isnan(ArmSummary("empty", 0, 0.0, 0.0).mean)
    assert math.isnan(ArmSummary.of("one", [1.0]).variance)
    with pytest.raises(ValueError, match="n must be >= 0"):
        ArmSummary("bad", -1, 0.0, 0.0)


# --- fixed horizon --------------------------------------------------------------------------

def test_mean_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(11)
    true_mean, repetitions = 0.3, 2_000
    covered = sum(mean_interval(ArmSummary.of("a", rng.exponential(true_mean, 200))).contains(true_mean)
                  for _ in range(repetitions))
    # exponential values are skewed, so the t interval is only about right: 0.95 +- 3 standard errors
    assert 0.935 <= covered / repetitions <= 0.965


def test_welch_difference_covers_the_true_difference_with_unequal_arms():
    rng = np.random.default_rng(12)
    repetitions, covered = 2_000, 0
    for _ in range(repetitions):
        control = ArmSummary.of("control", rng.normal(1.0, 1.0, 60))
        treatment = ArmSummary.of("treatment", rng.normal(1.5, 3.0, 15))  # fewer and noisier
        covered += welch_difference(control, treatment).interval.contains(0.5)
    assert 0.935 <= covered / repetitions <= 0.965


def test_welch_difference_from_summaries_equals_scipy_on_the_raw_values():
    rng = np.random.default_rng(13)
    control_values, treatment_values = rng.normal(0.0, 1.0, 80), rng.normal(0.4, 2.0, 50)
    ours = welch_difference(ArmSummary.of("c", control_values), ArmSummary.of("t", treatment_values))
    theirs = stats.ttest_ind(treatment_values, control_values, equal_var=False)
    assert ours.estimate == pytest.approx(treatment_values.mean() - control_values.mean())
    assert ours.p_value == pytest.approx(theirs.pvalue)
    assert ours.degrees_of_freedom == pytest.approx(theirs.df)
    low, high = theirs.confidence_interval(0.95)
    assert (ours.interval.low, ours.interval.high) == pytest.approx((low, high))


def test_too_little_data_says_nothing():
    one = ArmSummary.of("one", [1.0])
    many = ArmSummary.of("many", [1.0, 2.0, 3.0])
    assert mean_interval(one) == Interval.unbounded()
    assert welch_difference(one, many).interval == Interval.unbounded()
    assert math.isnan(welch_difference(one, many).p_value)
    assert difference_confidence_sequence(one, many, target_sample=100) == Interval.unbounded()


# --- confidence sequences -------------------------------------------------------------------

def test_margin_formula_and_its_tuning():
    alpha = 0.05
    rho2 = rho_squared_for(1_000, alpha)
    assert rho2 == pytest.approx((-2 * math.log(alpha) + math.log(1 - 2 * math.log(alpha))) / 1_000)
    t = 400.0
    expected = math.sqrt(2 * (t * rho2 + 1) / (t * t * rho2) * math.log(math.sqrt(t * rho2 + 1) / alpha))
    assert normal_mixture_margin(t, rho2, alpha) == pytest.approx(expected)
    # the tuning puts the narrowest sequence (relative to 1 / sqrt(t)) near the target sample
    times = np.arange(100, 10_001, 100, dtype=float)
    scaled = normal_mixture_margin(times, rho2, alpha) * np.sqrt(times)
    assert 500 <= times[np.argmin(scaled)] <= 2_000
    # wider than the fixed-horizon 1.96 everywhere: the price of peeking
    assert scaled.min() > stats.norm.ppf(0.975)


def test_confidence_sequence_keeps_its_error_rate_under_continuous_peeking_and_the_fixed_interval_does_not():
    """300 A/A experiments (both arms the same skewed product value), each looked at after
    every 50 of up to 5,000 decisions: the fraction of experiments in which the difference's
    confidence sequence *ever* excludes the true difference 0 stays within alpha = 0.05, while
    the fixed-horizon Welch interval peeked at the same times excludes it far more often."""
    rng = np.random.default_rng(2021)
    looks = np.arange(LOOK_EVERY - 1, BUDGET, LOOK_EVERY)
    sequence_misses = fixed_misses = 0
    for _ in range(STREAMS):
        values = product_values(rng, BUDGET, open_rate=0.1)
        treated = rng.random(BUDGET) < 0.5
        controls = running_summaries(values, ~treated, "control", looks)
        treatments = running_summaries(values, treated, "treatment", looks)
        sequence_misses += any(not difference_confidence_sequence(c, t, target_sample=BUDGET).contains(0.0)
                               for c, t in zip(controls, treatments))
        fixed_misses += any(not welch_difference(c, t).interval.contains(0.0) for c, t in zip(controls, treatments))
    sequence_rate, fixed_rate = sequence_misses / STREAMS, fixed_misses / STREAMS
    print(f"A/A under peeking every {LOOK_EVERY} of {BUDGET}: confidence sequence {sequence_rate:.3f}, "
          f"fixed-horizon interval {fixed_rate:.3f}")
    assert sequence_rate <= 0.05 + 0.01
    assert fixed_rate > 0.15  # peeking at a 95% interval 100 times errs several times more often than 5%


def test_mean_confidence_sequence_keeps_its_error_rate_under_continuous_peeking():
    rng = np.random.default_rng(2023)
    looks = np.arange(LOOK_EVERY - 1, BUDGET, LOOK_EVERY)
    true_mean = 0.1 * 1.0 - 0.25 * 0.7 + 0.05 * 1.0  # open rate 0.1, sends 70%, 5% bonus of mean 1
    misses = 0
    for _ in range(STREAMS):
        values = product_values(rng, BUDGET, open_rate=0.1)
        arms = running_summaries(values, np.ones(BUDGET, dtype=bool), "arm", looks)
        misses += any(not mean_confidence_sequence(arm, target_sample=BUDGET).contains(true_mean) for arm in arms)
    assert misses / STREAMS <= 0.05 + 0.01


def test_the_sequential_decision_stops_early_on_a_real_difference():
    """The treatment raises the open rate from 10% to 17%: 0.07 product value per decision,
    about a seventh of the values' standard deviation (0.45-0.50). Asked after every 50 decisions (at
    least 100 per arm), the decision promotes in nearly every experiment within the budget of
    5,000 decisions, typically well before it, and never rolls back."""
    rng = np.random.default_rng(7)
    looks = np.arange(LOOK_EVERY - 1, BUDGET, LOOK_EVERY)
    verdicts, stopped_at = [], []
    for _ in range(100):
        treated = rng.random(BUDGET) < 0.5
        values = np.where(treated, product_values(rng, BUDGET, 0.17), product_values(rng, BUDGET, 0.10))
        controls = running_summaries(values, ~treated, "control", looks)
        treatments = running_summaries(values, treated, "treatment", looks)
        verdict = Verdict.CONTINUE
        for look, control, treatment in zip(looks, controls, treatments):
            verdict = sequential_decision(control, treatment, target_sample=BUDGET, min_sample=100).verdict
            if verdict != Verdict.CONTINUE:
                stopped_at.append(look + 1)
                break
        verdicts.append(verdict)
    promoted = verdicts.count(Verdict.PROMOTE) / len(verdicts)
    print(f"effect 0.07: promoted {promoted:.2f}, median stop {np.median(stopped_at):.0f} of {BUDGET}")
    assert Verdict.ROLLBACK not in verdicts
    assert promoted >= 0.9
    assert np.median(stopped_at) <= BUDGET / 2


# --- sample ratio mismatch ------------------------------------------------------------------

def test_sample_ratio_check_fires_on_a_skewed_split():
    check = sample_ratio_check({"control": 5_000, "treatment": 5_400}, {"control": 0.5, "treatment": 0.5})
    # chi-square = 2 * 200^2 / 5,200 = 15.4 on 1 degree of freedom
    assert check.statistic == pytest.approx(2 * 200**2 / 5_200)
    assert check.p_value < 0.001
    assert check.mismatch
    assert check.expected == {"control": 5_200.0, "treatment": 5_200.0}
    assert not sample_ratio_check({"control": 5_000, "treatment": 5_100}, {"control": 1, "treatment": 1}).mismatch


def test_sample_ratio_check_rarely_fires_on_fair_splits():
    rng = np.random.default_rng(5)
    shares = {"control": 0.2, "a": 0.4, "b": 0.4}
    p_values = []
    for _ in range(2_000):
        counts = rng.multinomial(10_400, list(shares.values()))
        p_values.append(sample_ratio_check(dict(zip(shares, counts.tolist())), shares).p_value)
    p_values = np.array(p_values)
    assert (p_values < 0.001).mean() <= 0.003  # the default threshold: about 1 in 1,000 fair splits
    assert 0.035 <= (p_values < 0.05).mean() <= 0.065  # the p-values are calibrated


def test_sample_ratio_check_edges():
    assert sample_ratio_check({"a": 0, "b": 0}, {"a": 1, "b": 1}).p_value == 1.0
    assert sample_ratio_check({"a": 10, "b": 3}, {"a": 1, "b": 0}).mismatch  # decisions in an arm with no share
    with pytest.raises(ValueError, match="name arms"):
        sample_ratio_check({"a": 1}, {"a": 1, "b": 1})


# --- the sequential decision ----------------------------------------------------------------

CONTROL = summary("control", 20_000, 0.10, 1.0)
BETTER = summary("treatment", 20_000, 0.20, 1.0)  # +0.1 with a standard error of 0.01
WORSE = summary("treatment", 20_000, 0.00, 1.0)
SAME = summary("treatment", 20_000, 0.11, 1.0)


def decide(control=CONTROL, treatment=BETTER, **kwargs):
    kwargs.setdefault("target_sample", 40_000)
    kwargs.setdefault("min_sample", 1_000)
    return sequential_decision(control, treatment, **kwargs)


def unsubscribes(control_rate: float, treatment_rate: float, n: int = 20_000, tolerance: float = 0.005):
    return Guardrail("unsubscribes", summary("control", n, control_rate, 0.1), summary("treatment", n, treatment_rate, 0.1),
                     tolerance=tolerance, higher_is_better=False)


def test_decision_promotes_rolls_back_and_waits():
    promoted = decide()
    assert promoted.verdict == Verdict.PROMOTE
    assert "entirely above 0" in promoted.reason
    assert promoted.difference.entirely_above(0)
    rolled_back = decide(treatment=WORSE)
    assert rolled_back.verdict == Verdict.ROLLBACK
    assert "entirely below 0" in rolled_back.reason
    waiting = decide(treatment=SAME)
    assert waiting.verdict == Verdict.CONTINUE
    assert "contains 0" in waiting.reason


def test_decision_waits_for_the_minimum_sample():
    small = decide(summary("control", 500, 0.1, 1.0), summary("treatment", 500, 2.0, 1.0))
    assert small.verdict == Verdict.CONTINUE
    assert "minimum sample" in small.reason and "1000" in small.reason


def test_a_harmed_guardrail_rolls_back_even_a_winner():
    harmed = decide(guardrails=[unsubscribes(0.010, 0.030)])  # +0.02 unsubscribes, tolerance 0.005
    assert harmed.verdict == Verdict.ROLLBACK
    assert "guardrail unsubscribes harmed" in harmed.reason
    assert harmed.guardrail_harm["unsubscribes"].entirely_above(0.005)
    retention = Guardrail("retention", summary("control", 20_000, 0.60, 0.5), summary("treatment", 20_000, 0.50, 0.5),
                          tolerance=0.01, higher_is_better=True)  # retention fell by 0.1
    assert decide(guardrails=[retention]).verdict == Verdict.ROLLBACK


def test_a_winner_is_promoted_only_once_its_guardrails_are_shown_within_tolerance():
    safe = decide(guardrails=[unsubscribes(0.010, 0.010)])  # harm within +-0.003 of 0, tolerance 0.005
    assert safe.verdict == Verdict.PROMOTE
    assert "every guardrail is within its tolerance" in safe.reason
    unsure = decide(guardrails=[unsubscribes(0.010, 0.012, n=2_000)])  # too few to rule out harm of 0.005
    assert unsure.verdict == Verdict.CONTINUE
    assert "not yet shown within tolerance" in unsure.reason and "unsubscribes" in unsure.reason


def test_a_sample_ratio_mismatch_never_promotes_and_says_so():
    srm = sample_ratio_check({"control": 5_000, "treatment": 5_400}, {"control": 0.5, "treatment": 0.5})
    broken = decide(sample_ratio=srm)
    assert broken.verdict == Verdict.CONTINUE
    assert "sample ratio mismatch" in broken.reason
    assert decide(treatment=WORSE, sample_ratio=srm).verdict == Verdict.CONTINUE
    fair = sample_ratio_check({"control": 5_000, "treatment": 5_050}, {"control": 0.5, "treatment": 0.5})
    assert decide(sample_ratio=fair).verdict == Verdict.PROMOTE


def test_experiment_report_gives_every_arm_and_comparison():
    arms = [summary("control", 2_000, 0.10, 1.0), summary("model", 2_000, 0.25, 1.0), summary("default", 1_000, 0.1, 1.0)]
    report = experiment_report(arms, control="control", shares={"control": 0.4, "model": 0.4, "default": 0.2},
                               target_sample=10_000)
    assert [a.arm.name for a in report.arms] == ["control", "model", "default"]
    assert [(c.control, c.treatment) for c in report.comparisons] == [("control", "model"), ("control", "default")]
    model = report.comparisons[0]
    assert model.difference.estimate == pytest.approx(0.15)
    assert model.difference.interval.entirely_above(0) and model.sequence.entirely_above(0)
    assert model.sequence.width > model.difference.interval.width  # anytime validity costs width
    for arm in report.arms:
        assert arm.sequence.width > arm.interval.width > 0
    assert not report.sample_ratio.mismatch
    with pytest.raises(ValueError, match="control arm"):
        experiment_report(arms, control="missing", shares={"control": 1}, target_sample=10)
