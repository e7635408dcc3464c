"""Experiment statistics over per-arm summaries: fixed-horizon intervals, anytime-valid
confidence sequences, the sample-ratio-mismatch check and the sequential promote/rollback rule.

Everything here works from an arm's sufficient statistics (``ArmSummary``: the count, the sum
and the sum of squares of the per-decision product value), so a report can be built from three
numbers per arm kept in SQLite, never from the raw values.

Why confidence sequences. A 95% confidence interval is valid at one sample size fixed in
advance. An on-call engineer who looks at it every hour and stops the experiment the first time
it excludes zero has, over many looks, a far larger chance than 5% of declaring a difference
that does not exist (the A/A simulation in ``tests/unit/test_sequential.py`` measures it). A
confidence sequence ``(C_t)`` holds *uniformly over time*: ``P(for all t: mu in C_t) >= 1 -
alpha``, so it may be looked at after every decision and the experiment stopped whenever it
excludes zero.

The sequence used is the asymptotic confidence sequence of Waudby-Smith, Arbour, Sinha,
Kennedy and Ramdas, "Time-uniform central limit theory and asymptotic confidence sequences"
(arXiv 2103.06476, Annals of Statistics 2024): Robbins' normal-mixture boundary applied to the
standardized running sum, with the variance replaced by its running estimate,

    C_t = mean_t +- sd_t * sqrt( 2 (t rho^2 + 1) / (t^2 rho^2) * log( sqrt(t rho^2 + 1) / alpha ) )

valid in the limit (like the central limit theorem behind a t-interval, but uniformly over
time). The mixture is symmetric in the sign of the drift, so the sequence is two-sided at level
``alpha`` as written (no ``alpha / 2``). ``rho`` is a tuning parameter fixed *before* the data
are seen: any ``rho > 0`` gives a valid sequence; it only decides when the sequence is
tightest. The paper's choice

    rho^2 = ( -2 log alpha + log(1 - 2 log alpha) ) / t*

makes it (about) tightest at the planned sample size ``t*`` (``target_sample``). Choosing
``rho`` from the data seen so far (e.g. ``t* = t``) would break time-uniformity.

For the difference treatment - control the same boundary is applied to the augmented
inverse-propensity (AIPW) pseudo-outcomes of the units in the two arms, the paper's
construction for randomized experiments, with each arm's mean as the outcome model. Where the
paper uses outcome estimates from past data only and the design's assignment probability, this
plugs in the current arm means and the observed share ``pi = n_T / N`` (``N = n_T + n_C``),
which agree with them asymptotically and let the sequence be computed from the summaries. The
pseudo-outcomes then average to ``mean_T - mean_C`` and have variance
``s_T^2 / pi + s_C^2 / (1 - pi)``, so the sequence is

    C_N = (mean_T - mean_C) +- se_Welch * sqrt(N) * m(N)

where ``se_Welch = sqrt(s_T^2 / n_T + s_C^2 / n_C)`` and ``m(N)`` is the unit-variance margin
above. At a fixed N this is Welch's interval with the normal quantile 1.96 replaced by
``sqrt(N) m(N)`` (about 2.5-2.8 near ``t*`` at alpha = 0.05): the price of being allowed to peek.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

DEFAULT_ALPHA = 0.05
DEFAULT_SRM_THRESHOLD = 0.001


@dataclass(frozen=True)
class ArmSummary:
    """The sufficient statistics of one arm's per-decision product value: how many decisions
    (``n``), the sum of their values and the sum of their squares. Summaries of disjoint sets
    of decisions add up (``merged``).

    The variance is computed as ``(sum_sq - sum^2 / n) / (n - 1)``, which loses precision when
    the mean is many standard deviations away from zero (e.g. latencies near 1000 ms varying by
    1 ms); product values per decision (an outcome's worth minus a cost) are not like that.
    """

    name: str
    n: int
    sum: float
    sum_sq: float

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError(f"arm {self.name!r}: n must be >= 0, got {self.n}")
        if not (math.isfinite(self.sum) and math.isfinite(self.sum_sq)):
            raise ValueError(f"arm {self.name!r}: sum and sum_sq must be finite")
        if self.sum_sq < 0:
            raise ValueError(f"arm {self.name!r}: sum_sq must be >= 0, got {self.sum_sq}")

    @classmethod
    def of(cls, name: str, values: Iterable[float]) -> ArmSummary:
        """The summary of the values of one arm's decisions."""
        array = np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=float)
        return cls(name, int(array.size), float(array.sum()), float(np.square(array).sum()))

    def merged(self, other: ArmSummary) -> ArmSummary:
        """This arm's summary with another set of its decisions added."""
        return ArmSummary(self.name, self.n + other.n, self.sum + other.sum, self.sum_sq + other.sum_sq)

    def plus(self, values: Iterable[float]) -> ArmSummary:
        """This arm's summary with more decisions' values added."""
        return self.merged(ArmSummary.of(self.name, values))

    @property
    def mean(self) -> float:
        return self.sum / self.n if self.n else math.nan

    @property
    def variance(self) -> float:
        """The sample variance (n - 1 in the denominator); NaN below two decisions."""
        if self.n < 2:
            return math.nan
        return max(0.0, (self.sum_sq - self.sum * self.sum / self.n) / (self.n - 1))

    @property
    def std(self) -> float:
        return math.sqrt(self.variance)

    @property
    def standard_error(self) -> float:
        """The standard error of the mean: std / sqrt(n)."""
        return self.std / math.sqrt(self.n) if self.n >= 2 else math.nan


@dataclass(frozen=True)
class Interval:
    """A closed interval ``[low, high]`` for an unknown quantity; unbounded (-inf, inf) when
    there is not yet enough data to say anything."""

    low: float
    high: float

    @classmethod
    def unbounded(cls) -> Interval:
        return cls(-math.inf, math.inf)

    @property
    def width(self) -> float:
        return self.high - self.low

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def entirely_above(self, value: float) -> bool:
        return self.low > value

    def entirely_below(self, value: float) -> bool:
        return self.high < value

    def __str__(self) -> str:
        return f"[{self.low:.4g}, {self.high:.4g}]"


# --- fixed horizon --------------------------------------------------------------------------

def mean_interval(arm: ArmSummary, level: float = 0.95) -> Interval:
    """Student's t interval for the arm's mean: ``mean +- t_{n-1} * sd / sqrt(n)``. Valid once,
    at a sample size fixed in advance (see the module docstring)."""
    if arm.n < 2:
        return Interval.unbounded()
    half = stats.t.ppf(0.5 + level / 2, arm.n - 1) * arm.standard_error
    return Interval(arm.mean - half, arm.mean + half)


@dataclass(frozen=True)
class Difference:
    """Welch's comparison of treatment - control at a fixed horizon."""

    estimate: float
    standard_error: float
    degrees_of_freedom: float
    interval: Interval
    p_value: float  # two-sided, for the hypothesis of equal means


def welch_difference(control: ArmSummary, treatment: ArmSummary, level: float = 0.95) -> Difference:
    """Treatment mean minus control mean with Welch's interval and two-sided p-value, which do
    not assume the two arms have the same variance:

        se = sqrt(s_T^2 / n_T + s_C^2 / n_C)
        df = se^4 / ( (s_T^2 / n_T)^2 / (n_T - 1) + (s_C^2 / n_C)^2 / (n_C - 1) )   (Welch-Satterthwaite)
        interval = estimate +- t_df * se

    The p-value is scipy's ``ttest_ind_from_stats(..., equal_var=False)``. With fewer than two
    decisions in an arm nothing is known (unbounded interval, NaN p-value); with no variance in
    either arm the interval is the point estimate and the p-value NaN.
    """
    estimate = treatment.mean - control.mean
    if control.n < 2 or treatment.n < 2:
        return Difference(estimate, math.nan, math.nan, Interval.unbounded(), math.nan)
    part_t = treatment.variance / treatment.n
    part_c = control.variance / control.n
    se = math.sqrt(part_t + part_c)
    if se == 0:
        return Difference(estimate, 0.0, math.nan, Interval(estimate, estimate), math.nan)
    df = (part_t + part_c) ** 2 / (part_t ** 2 / (treatment.n - 1) + part_c ** 2 / (control.n - 1))
    half = stats.t.ppf(0.5 + level / 2, df) * se
    p_value = stats.ttest_ind_from_stats(treatment.mean, treatment.std, treatment.n,
                                         control.mean, control.std, control.n, equal_var=False).pvalue
    return Difference(estimate, se, df, Interval(estimate - half, estimate + half), float(p_value))


# --- anytime-valid ----------------------------------------------------------------------------

def rho_squared_for(target_sample: float, alpha: float = DEFAULT_ALPHA) -> float:
    """The mixture's tuning parameter that makes the confidence sequence about tightest when
    ``target_sample`` observations have been seen (Waudby-Smith et al.):
    ``rho^2 = (-2 log alpha + log(1 - 2 log alpha)) / t*``. Fix it before the experiment."""
    if target_sample <= 0:
        raise ValueError(f"target_sample must be > 0, got {target_sample}")
    _check_alpha(alpha)
    log_alpha = math.log(alpha)
    return (-2 * log_alpha + math.log(1 - 2 * log_alpha)) / target_sample


def normal_mixture_margin(t, rho_squared: float, alpha: float = DEFAULT_ALPHA):
    """The half-width of the two-sided normal-mixture confidence sequence for the mean of
    unit-variance observations after ``t`` of them (``t`` may be an array):

        sqrt( 2 (t rho^2 + 1) / (t^2 rho^2) * log( sqrt(t rho^2 + 1) / alpha ) )

    It is Robbins' mixture: the martingale ``exp(l S_t - l^2 t / 2)`` averaged over
    ``l ~ N(0, rho^2)`` reaches ``1 / alpha`` exactly when ``|S_t| / t`` exceeds this margin,
    and Ville's inequality bounds the chance that it ever does by alpha. Multiply by the
    standard deviation for observations that are not unit-variance."""
    _check_alpha(alpha)
    t = np.asarray(t, dtype=float)
    x = t * rho_squared
    margin = np.sqrt(2 * (x + 1) / (t * x) * np.log(np.sqrt(x + 1) / alpha))
    return float(margin) if margin.ndim == 0 else margin


def mean_confidence_sequence(arm: ArmSummary, *, target_sample: float,
                             alpha: float = DEFAULT_ALPHA) -> Interval:
    """The anytime-valid interval for the arm's mean after its ``n`` decisions:
    ``mean +- sd * normal_mixture_margin(n)`` with ``rho`` tuned for ``target_sample`` of this
    arm's decisions. Unbounded below two decisions."""
    if arm.n < 2:
        return Interval.unbounded()
    half = arm.std * normal_mixture_margin(arm.n, rho_squared_for(target_sample, alpha), alpha)
    return Interval(arm.mean - half, arm.mean + half)


def difference_confidence_sequence(control: ArmSummary, treatment: ArmSummary, *, target_sample: float,
                                   alpha: float = DEFAULT_ALPHA) -> Interval:
    """The anytime-valid interval for treatment mean - control mean after ``N = n_T + n_C``
    decisions in the two arms: ``estimate +- se_Welch * sqrt(N) * normal_mixture_margin(N)``
    with ``rho`` tuned for ``target_sample`` decisions in the two arms together (see the module
    docstring for why this is the paper's sequence for a randomized experiment)."""
    if control.n < 2 or treatment.n < 2:
        return Interval.unbounded()
    total = control.n + treatment.n
    se = math.sqrt(treatment.variance / treatment.n + control.variance / control.n)
    half = se * math.sqrt(total) * normal_mixture_margin(total, rho_squared_for(target_sample, alpha), alpha)
    estimate = treatment.mean - control.mean
    return Interval(estimate - half, estimate + half)


# --- sample ratio mismatch --------------------------------------------------------------------

@dataclass(frozen=True)
class SampleRatioCheck:
    """Pearson's chi-square goodness of fit of the arms' decision counts to their configured
    shares. A tiny p-value means the split is broken (a bug in assignment, in logging or in
    which decisions reach the join), so no comparison of the arms can be trusted."""

    observed: dict[str, int]
    expected: dict[str, float]
    statistic: float
    p_value: float
    threshold: float

    @property
    def mismatch(self) -> bool:
        return self.p_value < self.threshold


def sample_ratio_check(counts: Mapping[str, int], shares: Mapping[str, float], *,
                       threshold: float = DEFAULT_SRM_THRESHOLD) -> SampleRatioCheck:
    """Compare each arm's count with ``total * share`` (shares are normalized to sum to one)
    by ``scipy.stats.chisquare``; ``mismatch`` when the p-value is below ``threshold``
    (0.001 by default: the check runs at every look, so it must rarely fire on a fair split).
    An arm with decisions but no share is a mismatch outright (p = 0)."""
    if set(counts) != set(shares):
        raise ValueError(f"counts name arms {sorted(counts)} but shares name {sorted(shares)}")
    if any(share < 0 for share in shares.values()) or sum(shares.values()) <= 0:
        raise ValueError("shares must be >= 0 and not all zero")
    if any(count < 0 for count in counts.values()):
        raise ValueError("counts must be >= 0")
    names = sorted(counts)
    total = sum(counts[name] for name in names)
    share_sum = sum(shares.values())
    expected = {name: total * shares[name] / share_sum for name in names}
    observed = {name: int(counts[name]) for name in names}
    if total == 0:
        return SampleRatioCheck(observed, expected, 0.0, 1.0, threshold)
    if any(expected[name] == 0 and observed[name] > 0 for name in names):
        return SampleRatioCheck(observed, expected, math.inf, 0.0, threshold)
    live = [name for name in names if expected[name] > 0]
    if len(live) < 2:
        return SampleRatioCheck(observed, expected, 0.0, 1.0, threshold)
    result = stats.chisquare([observed[name] for name in live], [expected[name] for name in live])
    return SampleRatioCheck(observed, expected, float(result.statistic), float(result.pvalue), threshold)


# --- a report over all arms -----------------------------------------------------------------

@dataclass(frozen=True)
class ArmReport:
    arm: ArmSummary
    interval: Interval  # fixed-horizon 95% (or ``level``) t interval
    sequence: Interval  # anytime-valid at 1 - alpha


@dataclass(frozen=True)
class Comparison:
    control: str
    treatment: str
    difference: Difference  # Welch, fixed horizon
    sequence: Interval  # anytime-valid interval for treatment - control


@dataclass(frozen=True)
class ExperimentReport:
    arms: list[ArmReport]
    comparisons: list[Comparison]  # each treatment against the control
    sample_ratio: SampleRatioCheck


def experiment_report(arms: Sequence[ArmSummary], *, control: str, shares: Mapping[str, float],
                      target_sample: float, alpha: float = DEFAULT_ALPHA, level: float = 0.95,
                      srm_threshold: float = DEFAULT_SRM_THRESHOLD) -> ExperimentReport:
    """Everything an experiment report shows: per arm its mean with the fixed-horizon interval
    and the confidence sequence, each treatment against the control (Welch and the confidence
    sequence of the difference), and the sample-ratio check.

    ``target_sample`` is the experiment's planned number of decisions in all arms; each
    sequence's ``rho`` is tuned for its share of it (an arm: ``target * share``; a comparison:
    ``target * (share_T + share_C)``). No correction for several treatments is applied: with
    ``k`` treatments, the chance that any of their sequences misses is at most ``k * alpha``.
    """
    by_name = {arm.name: arm for arm in arms}
    if len(by_name) != len(arms):
        raise ValueError("arm names must be unique")
    if control not in by_name:
        raise ValueError(f"control arm {control!r} is not among the arms {sorted(by_name)}")
    share_sum = sum(shares.get(name, 0.0) for name in by_name)
    if share_sum <= 0:
        raise ValueError("shares must name the arms, with a positive total")

    def share(name: str) -> float:
        return shares.get(name, 0.0) / share_sum

    reports = [ArmReport(arm, mean_interval(arm, level),
                         mean_confidence_sequence(arm, target_sample=max(target_sample * share(arm.name), 1.0),
                                                  alpha=alpha))
               for arm in arms]
    comparisons = []
    for arm in arms:
        if arm.name == control:
            continue
        pair_target = max(target_sample * (share(arm.name) + share(control)), 1.0)
        comparisons.append(Comparison(
            control, arm.name, welch_difference(by_name[control], arm, level),
            difference_confidence_sequence(by_name[control], arm, target_sample=pair_target, alpha=alpha)))
    srm = sample_ratio_check({arm.name: arm.n for arm in arms}, {name: shares.get(name, 0.0) for name in by_name},
                             threshold=srm_threshold)
    return ExperimentReport(reports, comparisons, srm)


# --- the sequential decision ------------------------------------------------------------------

class Verdict(str, enum.Enum):
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    CONTINUE = "continue"


@dataclass(frozen=True)
class Guardrail:
    """A metric the treatment must not make worse by more than ``tolerance`` (an absolute
    amount in the metric's own units, >= 0), e.g. unsubscribes per decision or errors per
    call. ``higher_is_better`` says which way is worse. The summaries are the metric's per-arm
    summaries, which may count different decisions than the product value's."""

    name: str
    control: ArmSummary
    treatment: ArmSummary
    tolerance: float
    higher_is_better: bool

    def __post_init__(self) -> None:
        if not (self.tolerance >= 0 and math.isfinite(self.tolerance)):
            raise ValueError(f"guardrail {self.name!r}: tolerance must be a finite number >= 0")

    def harm(self, difference: Interval) -> Interval:
        """How much worse the treatment is than the control, given an interval for
        treatment - control: ``control - treatment`` when higher is better, else the difference."""
        if self.higher_is_better:
            return Interval(-difference.high, -difference.low)
        return difference


@dataclass(frozen=True)
class SequentialDecision:
    verdict: Verdict
    reason: str
    difference: Interval  # the confidence sequence of treatment - control for the product value
    guardrail_harm: dict[str, Interval] = field(default_factory=dict)  # each guardrail's harm sequence


def sequential_decision(control: ArmSummary, treatment: ArmSummary, *, target_sample: float, min_sample: int,
                        guardrails: Sequence[Guardrail] = (), sample_ratio: SampleRatioCheck | None = None,
                        alpha: float = DEFAULT_ALPHA) -> SequentialDecision:
    """Promote, roll back or keep going, from the confidence sequences, so that it may be asked
    after every batch of decisions without inflating the error rates.

    In order:
      1. a sample-ratio mismatch -> continue, and say so: a broken split makes every
         comparison suspect, in either direction, until the assignment is fixed;
      2. fewer than ``min_sample`` decisions in either arm -> continue (the sequences are
         asymptotic: they need some data before their variance estimate can be trusted);
      3. a guardrail whose harm sequence lies entirely above its tolerance -> rollback;
      4. the product value's difference sequence entirely below 0 -> rollback;
      5. entirely above 0 and every guardrail's harm sequence entirely at or below its
         tolerance (shown non-inferior, not merely not shown harmful) -> promote;
      6. otherwise continue, naming what is still undecided.

    ``target_sample`` is the planned number of decisions in the two arms together (each
    guardrail's sequence uses the same). Each sequence holds at level ``1 - alpha`` on its own:
    with ``g`` guardrails the chance of any wrong call is at most ``(1 + g) * alpha``.
    """
    difference = difference_confidence_sequence(control, treatment, target_sample=target_sample, alpha=alpha)
    harms = {g.name: g.harm(difference_confidence_sequence(g.control, g.treatment, target_sample=target_sample,
                                                           alpha=alpha))
             for g in guardrails}

    def decided(verdict: Verdict, reason: str) -> SequentialDecision:
        return SequentialDecision(verdict, reason, difference, harms)

    if sample_ratio is not None and sample_ratio.mismatch:
        return decided(Verdict.CONTINUE,
                       f"sample ratio mismatch: p={sample_ratio.p_value:.3g} < {sample_ratio.threshold:g} for counts "
                       f"{sample_ratio.observed}; the split is broken, so the arms cannot be compared until it is fixed")
    if min(control.n, treatment.n) < min_sample:
        return decided(Verdict.CONTINUE,
                       f"below the minimum sample: {control.name} has {control.n} and {treatment.name} "
                       f"{treatment.n} decisions, {min_sample} each are needed")
    for guardrail in guardrails:
        harm = harms[guardrail.name]
        if harm.entirely_above(guardrail.tolerance):
            return decided(Verdict.ROLLBACK,
                           f"guardrail {guardrail.name} harmed: the treatment is worse by {harm} (anytime-valid), "
                           f"beyond the tolerance {guardrail.tolerance:g}")
    if difference.entirely_below(0):
        return decided(Verdict.ROLLBACK,
                       f"{treatment.name} is worse than {control.name}: treatment - control is in {difference} "
                       f"(anytime-valid), entirely below 0")
    if difference.entirely_above(0):
        unproven = [g for g in guardrails if harms[g.name].high > g.tolerance]
        if not unproven:
            return decided(Verdict.PROMOTE,
                           f"{treatment.name} is better than {control.name}: treatment - control is in {difference} "
                           f"(anytime-valid), entirely above 0"
                           + (", and every guardrail is within its tolerance" if guardrails else ""))
        waiting = "; ".join(f"{g.name} harm {harms[g.name]} vs tolerance {g.tolerance:g}" for g in unproven)
        return decided(Verdict.CONTINUE,
                       f"{treatment.name} is better ({difference}) but not yet shown within tolerance on: {waiting}")
    return decided(Verdict.CONTINUE,
                   f"no difference shown yet: treatment - control is in {difference}, which contains 0")


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
