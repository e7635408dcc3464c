"""Heterogeneous treatment effects through the real services: a randomized phase (every
decision a coin flip) from which the Trainer learns an uplift model (the blueprint's X-learner),
then the same users decided twice by that one model, first by the ``response`` objective and
then by the ``uplift`` objective, each decision valued by the simulator's truth.

``measure_hte(client)`` runs it on a Looper the caller started and returns an ``HteResult``:
``cate_corr`` (Pearson correlation of the served model's estimated effect with each user's true
effect, over the evaluated decisions), ``qini`` (the Qini coefficient the Trainer measured on
its holdout of randomized decisions), ``uplift_value`` and ``response_value`` (the true
expected product value per decision of each policy, exploration included).
"""

from __future__ import annotations

import math
import random
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np
import yaml
from looper import LooperClient

from examples.reengagement.simulator import (BLUEPRINT, NOTIFICATION_COST, RETURN_WORTH, USE_CASE,
                                             ReengagementProduct, true_effect)
from examples.simulation import live_model, wait_for
from services.evaluation.uplift import SegmentEffect, effects_by_segment, qini_coefficient, qini_curve

EVALUATION_START = 10_000_000  # decision indexes of the evaluated phases: the same users for both policies
EVALUATION_EXPLORATION = 0.1  # both policies explore alike, so their values compare


@dataclass(frozen=True)
class PolicyResult:
    objective: str
    values: list[float]  # the truth's expected product value of each decision
    sent: int

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    def ci95(self) -> tuple[float, float]:
        half = 1.96 * statistics.stdev(self.values) / math.sqrt(len(self.values))
        return self.mean - half, self.mean + half


@dataclass(frozen=True)
class HteResult:
    cate_corr: float
    qini: float
    uplift_value: float
    response_value: float
    response: PolicyResult
    uplift: PolicyResult
    send_all_value: float  # by the truth, over the same users
    send_none_value: float
    best_value: float
    disagreement: float  # the share of evaluated users whom the two objectives (without exploration) treat differently
    true_effect_qini: float  # what the true effects score on randomized trials of the holdout's size (mean)
    model_version: str
    randomized_decisions: int
    segments: tuple["Segment", ...] = ()
    # The served model's Qini curve on the evaluated decisions: (share notified first by
    # estimated effect, incremental returns per user), at every tenth; and its area above random.
    qini_points: tuple[tuple[float, float], ...] = ()
    qini_area: float = math.nan

    def difference_ci95(self) -> tuple[float, float]:
        """The 95% interval of the uplift policy's value minus the response policy's, paired
        by user (both decided the same users)."""
        differences = [u - r for u, r in zip(self.uplift.values, self.response.values)]
        mean, half = statistics.fmean(differences), 1.96 * statistics.stdev(differences) / math.sqrt(len(differences))
        return mean - half, mean + half

    def line(self) -> str:
        return (f"HTE RESULT cate_corr={self.cate_corr:.3f} qini={self.qini:.3f} "
                f"uplift_value={self.uplift_value:.4f} response_value={self.response_value:.4f}")


@dataclass(frozen=True)
class Segment:
    """One segment's effect three ways: measured in the randomized phase (difference in
    means, with its interval), estimated by the served model (mean CATE over the evaluated
    decisions), and true (the simulator's mean effect over those same decisions)."""

    column: str
    measured: SegmentEffect
    estimated: float
    true: float


def away(days: int) -> str:
    return "0-6 days" if days < 7 else "7-27 days" if days < 28 else "28+ days"


SEGMENTS = {"platform": lambda user: user.platform, "away": lambda user: away(user.days_inactive)}


def segment_effects(randomized: list, evaluated: list) -> tuple[Segment, ...]:
    """The effect per platform and per time away (``SEGMENTS``)."""
    found = []
    for column, segment_of in SEGMENTS.items():
        measured = effects_by_segment([segment_of(o.user) for o in randomized], [o.returned for o in randomized],
                                      [o.sent for o in randomized])
        for effect in measured:
            inside = [o for o in evaluated if segment_of(o.user) == effect.segment]
            found.append(Segment(column, effect, statistics.fmean(o.estimated_effect for o in inside),
                                 statistics.fmean(true_effect(o.user) for o in inside)))
    return tuple(found)


def blueprint_yaml(**policy) -> str:
    """The example's blueprint with some ``policy`` keys changed."""
    spec = yaml.safe_load(BLUEPRINT.read_text())
    spec["policy"] = {**spec["policy"], **policy}
    return yaml.safe_dump(spec, sort_keys=False)


def measure_hte(client: LooperClient, seed: int = 7, *, randomized_decisions: int = 6000,
                evaluation_decisions: int = 2000, concurrency: int = 8, training_timeout: float = 90,
                say: Callable[[str], None] = print) -> HteResult:
    """Runs the three phases on ``client``'s Looper (the use case ``reengagement`` is applied
    here) and measures them; the model trains once 90% of the randomized decisions are
    labeled."""
    min_rows = int(0.9 * randomized_decisions)
    spec = yaml.safe_load(BLUEPRINT.read_text())
    spec["retraining"] = {**spec.get("retraining", {}), "min_labeled_rows": min_rows}
    applied, _ = client.apply_blueprint(yaml.safe_dump(spec, sort_keys=False))
    say(f"== applied blueprint {applied.use_case} v{applied.version}: randomized decisions, "
        f"an {spec['model']['uplift']['learner'].upper()}-learner trains at {min_rows} labeled")
    product = ReengagementProduct.build(client, seed)
    started = time.monotonic()

    product.phase = "randomized"
    _run(product, range(randomized_decisions), concurrency)
    say(f"   {randomized_decisions} randomized decisions in {time.monotonic() - started:.0f}s; "
        "waiting for the Trainer's uplift model")
    model = wait_for(lambda: live_model(client, USE_CASE), training_timeout, f"a live model of {USE_CASE}")
    say(f"   model {model.version} live after {time.monotonic() - started:.0f}s: "
        + ", ".join(f"{k}={v:.3f}" for k, v in sorted(model.metrics.items())))

    results = {}
    indexes = range(EVALUATION_START, EVALUATION_START + evaluation_decisions)
    for objective in ("response", "uplift"):
        version, _ = client.apply_blueprint(blueprint_yaml(objective=objective,
                                                           exploration_rate=EVALUATION_EXPLORATION))
        product.phase = objective
        judged = _run(product, indexes, concurrency)
        results[objective] = PolicyResult(objective, [j.value for j in judged],
                                          sum(j.decision.action == "true" for j in judged))
        say(f"   {objective} policy (blueprint v{version.version}): {len(judged)} decisions, "
            f"{results[objective].sent} notified, {sum(j.decision.model_version == model.version for j in judged)} "
            f"by {model.version}")
    product.feedback.drain()

    evaluated = [product.outcomes[i] for i in indexes]  # the uplift phase's decisions (the last)
    users = [o.user for o in evaluated]
    estimated = np.array([o.estimated_effect for o in evaluated])
    truth = np.array([true_effect(u) for u in users])
    points, area = qini_of(evaluated)
    response_acts = np.array([RETURN_WORTH * _score(o, "true") for o in evaluated]) - NOTIFICATION_COST > 0
    uplift_acts = RETURN_WORTH * estimated - NOTIFICATION_COST > 0
    return HteResult(
        cate_corr=float(np.corrcoef(estimated, truth)[0, 1]), qini=float(model.metrics.get("qini", math.nan)),
        uplift_value=results["uplift"].mean, response_value=results["response"].mean,
        response=results["response"], uplift=results["uplift"],
        send_all_value=statistics.fmean(u.value(True) for u in users),
        send_none_value=statistics.fmean(u.value(False) for u in users),
        best_value=statistics.fmean(max(u.value(True), u.value(False)) for u in users),
        disagreement=float(np.mean(response_acts != uplift_acts)),
        true_effect_qini=true_effect_qini(product, int(model.metrics.get("rows", 1000)), seed),
        model_version=model.version, randomized_decisions=randomized_decisions,
        segments=segment_effects([product.outcomes[i] for i in range(randomized_decisions)], evaluated),
        qini_points=points, qini_area=area)


def qini_of(evaluated: list) -> tuple[tuple[tuple[float, float], ...], float]:
    """The Qini curve of the served model's estimated effects over the evaluated decisions
    (their treatment chosen by the uplift policy with exploration, so each counts by the
    inverse of its logged propensity), read at every tenth of the users, and its area."""
    curve = qini_curve([o.returned for o in evaluated], [o.sent for o in evaluated],
                       [o.estimated_effect for o in evaluated],
                       [o.judged.decision.propensity for o in evaluated])
    shares = np.linspace(0.1, 1.0, 10)
    return tuple(zip(shares.tolist(), np.interp(shares, curve.fraction, curve.gain).tolist())), curve.area


def _score(outcome, action: str) -> float:
    return next(item.score for item in outcome.judged.decision.ranking if item.action_id == action)


def _run(product: ReengagementProduct, indexes: range, concurrency: int) -> list:
    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(product.decide, indexes))


def true_effect_qini(product: ReengagementProduct, rows: int, seed: int, trials: int = 20) -> float:
    """The mean Qini coefficient that scoring by the true effects gets on randomized trials
    of ``rows`` decisions of this population: the yardstick for a model's holdout Qini (on
    0/1 outcomes even the truth stays far below 1, the best ordering of the observed rows)."""
    rng = random.Random(seed)
    scores = []
    for _ in range(trials):
        users = [rng.choice(product.users) for _ in range(rows)]
        sent = np.array([rng.random() < 0.5 for _ in users], dtype=int)
        returned = np.array([rng.random() < u.return_probability(bool(s)) for u, s in zip(users, sent)], dtype=float)
        scores.append(qini_coefficient(returned, sent, [true_effect(u) for u in users]))
    return float(np.nanmean(scores))


def print_result(result: HteResult, say: Callable[[str], None] = print) -> None:
    header = f"{'policy':<34}{'notified':>10}{'value/decision':>16}{'95% CI':>22}"
    say(header)
    say("-" * len(header))
    for name, policy in (("response (P(return|sent) - cost)", result.response),
                         ("uplift (effect - cost)", result.uplift)):
        low, high = policy.ci95()
        share = policy.sent / len(policy.values)
        say(f"{name:<34}{share:>10.0%}{policy.mean:>16.4f}{f'[{low:.4f}, {high:.4f}]':>22}")
    for name, value in (("send to everyone (truth)", result.send_all_value),
                        ("send to no one (truth)", result.send_none_value),
                        ("best policy (truth)", result.best_value)):
        say(f"{name:<34}{'':>10}{value:>16.4f}")
    say("")
    header = f"{'segment':<22}{'decisions':>10}{'measured effect (95% CI)':>30}{'model (mean CATE)':>19}{'true':>8}"
    say(header)
    say("-" * len(header))
    for row in result.segments:
        m = row.measured
        measured = f"{m.effect:+.3f} [{m.ci_low:+.3f}, {m.ci_high:+.3f}]"
        say(f"{row.column + '=' + m.segment:<22}{m.rows:>10}{measured:>30}{row.estimated:>+19.3f}{row.true:>+8.3f}")
    if result.qini_points:
        say("Qini curve of the model's effects on these decisions (notify this share first by estimated effect: "
            "incremental returns per user): " + ", ".join(f"{share:.0%} {gain:+.3f}" for share, gain in result.qini_points)
            + f"; area above random targeting {result.qini_area:+.4f}")
    low, high = result.difference_ci95()
    say(f"uplift minus response: {result.uplift_value - result.response_value:+.4f} per decision "
        f"(95% CI [{low:+.4f}, {high:+.4f}], paired by user)")
    say(f"the two objectives treat {result.disagreement:.0%} of these users differently; the estimated effect "
        f"correlates {result.cate_corr:.3f} with the true one; holdout Qini {result.qini:.3f} (the true effects "
        f"score {result.true_effect_qini:.3f} on trials of that size; random targeting 0)")
