"""The off-policy estimators on synthetic logs whose truth is known: a few contexts, three
actions with known mean rewards, a logging policy with known propensities, and target
policies whose true value is computed exactly. Over seeded repetitions the 95% intervals of
IPS, SNIPS and DR cover the truth at about the nominal rate, DR varies less than IPS when its
reward model is right, and the effective sample size is n on-policy and falls as the target
moves away. Small fixed arrays check the formulas by hand."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from services.evaluation.ope import Estimate, doubly_robust, effective_sample_size, ips, one_hot, snips

# mean reward of each action (columns) in each context (rows); contexts are equally likely
MEANS = np.array([[0.2, 0.5, 0.7], [0.6, 0.3, 0.1], [0.4, 0.45, 0.8], [0.1, 0.9, 0.3]])
LOGGING = np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6], [0.5, 0.25, 0.25], [0.7, 0.15, 0.15]])
STOCHASTIC = np.array([[0.1, 0.2, 0.7], [0.8, 0.1, 0.1], [0.1, 0.1, 0.8], [0.1, 0.8, 0.1]])
DETERMINISTIC = one_hot(MEANS.argmax(axis=1), 3)  # the best action in each context
REPETITIONS, ROWS = 200, 1000


def true_value(target: np.ndarray) -> float:
    return float((target * MEANS).sum(axis=1).mean())


def logs(rng: np.random.Generator, n: int, logging: np.ndarray = LOGGING):
    """n decisions logged by ``logging``: context, action, propensity and a 0/1 reward."""
    context = rng.integers(len(MEANS), size=n)
    action = (rng.random(n)[:, None] > logging[context].cumsum(axis=1)).sum(axis=1)
    reward = (rng.random(n) < MEANS[context, action]).astype(float)
    return context, action, logging[context, action], reward


def estimates(target: np.ndarray, rng: np.random.Generator, q: np.ndarray = MEANS) -> dict[str, Estimate]:
    context, action, propensity, reward = logs(rng, ROWS)
    pi = target[context, action]
    return {"ips": ips(reward, pi, propensity), "snips": snips(reward, pi, propensity),
            "dr": doubly_robust(reward, target[context], action, propensity, q[context])}


@pytest.mark.parametrize("target", [STOCHASTIC, DETERMINISTIC], ids=["stochastic", "deterministic"])
def test_the_95_percent_intervals_cover_the_true_value_at_about_the_nominal_rate(target):
    rng = np.random.default_rng(20260301)
    truth = true_value(target)
    runs = [estimates(target, rng) for _ in range(REPETITIONS)]
    for name in ("ips", "snips", "dr"):
        coverage = np.mean([r[name].ci_low <= truth <= r[name].ci_high for r in runs])
        assert 0.90 <= coverage <= 0.99, f"{name} covered the truth {truth:.3f} in {coverage:.1%} of the runs"
        assert np.mean([r[name].value for r in runs]) == pytest.approx(truth, abs=0.01)


def test_doubly_robust_varies_less_than_ips_when_its_reward_model_is_right():
    rng = np.random.default_rng(7)
    runs = [estimates(STOCHASTIC, rng) for _ in range(REPETITIONS)]
    spread = {name: np.std([r[name].value for r in runs]) for name in ("ips", "dr")}
    assert spread["dr"] < 0.6 * spread["ips"], spread
    assert np.mean([r["dr"].std_error for r in runs]) < 0.6 * np.mean([r["ips"].std_error for r in runs])


def test_doubly_robust_stays_unbiased_with_a_wrong_reward_model():
    rng = np.random.default_rng(11)
    wrong = np.full_like(MEANS, 0.5)  # knows nothing
    runs = [estimates(STOCHASTIC, rng, q=wrong)["dr"] for _ in range(REPETITIONS)]
    truth = true_value(STOCHASTIC)
    assert np.mean([r.value for r in runs]) == pytest.approx(truth, abs=0.01)
    assert 0.90 <= np.mean([r.ci_low <= truth <= r.ci_high for r in runs]) <= 0.99


def test_the_effective_sample_size_is_n_on_policy_and_falls_as_the_target_moves_away():
    rng = np.random.default_rng(5)
    context, action, propensity, reward = logs(rng, ROWS)
    sizes = []
    for share in (0.0, 0.25, 0.5, 0.75, 1.0):  # of the deterministic policy in a mixture with the logging one
        target = (1 - share) * LOGGING + share * DETERMINISTIC
        estimate = snips(reward, target[context, action], propensity)
        assert ips(reward, target[context, action], propensity).effective_sample_size == estimate.effective_sample_size
        sizes.append(estimate.effective_sample_size)
    assert sizes[0] == pytest.approx(ROWS)  # every weight is 1
    assert all(later < earlier for earlier, later in zip(sizes, sizes[1:])), sizes
    assert sizes[-1] < 0.5 * ROWS


def test_on_policy_every_estimator_is_the_plain_mean():
    rng = np.random.default_rng(2)
    context, action, propensity, reward = logs(rng, ROWS)
    for estimate in (ips(reward, propensity, propensity), snips(reward, propensity, propensity)):
        assert estimate.value == pytest.approx(reward.mean())
        assert estimate.std_error == pytest.approx(reward.std(ddof=1) / math.sqrt(ROWS))
        assert estimate.n == ROWS


def test_the_formulas_by_hand():
    rewards = np.array([1.0, 0.0, 2.0, 4.0])
    target = np.array([1.0, 1.0, 0.0, 0.5])
    logged = np.array([0.5, 0.25, 0.5, 1.0])  # weights 2, 4, 0, 0.5
    estimate = ips(rewards, target, logged)
    assert estimate.value == pytest.approx((2 + 0 + 0 + 2) / 4)
    terms = np.array([2.0, 0.0, 0.0, 2.0])
    assert estimate.std_error == pytest.approx(terms.std(ddof=1) / 2)
    assert estimate.ci_low == pytest.approx(1.0 - 1.959964 * estimate.std_error)
    assert estimate.ci_high == pytest.approx(1.0 + 1.959964 * estimate.std_error)
    assert estimate.effective_sample_size == pytest.approx(6.5**2 / (4 + 16 + 0.25))
    assert snips(rewards, target, logged).value == pytest.approx(4 / 6.5)
    assert ips(rewards, target, logged, clip=1.0).value == pytest.approx((1 + 0 + 0 + 2) / 4)  # weights 1, 1, 0, 0.5
    # DR: with q = 0 it is IPS; with a q that is exactly each logged reward, the direct method alone
    probs = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    index = np.array([0, 0, 0, 0])
    assert doubly_robust(rewards, probs, index, logged, np.zeros((4, 2))).value == pytest.approx(1.0)
    q = np.column_stack([rewards, np.full(4, 3.0)])
    assert doubly_robust(rewards, probs, index, logged, q).value == pytest.approx((1 + 0 + 3 + (2 + 1.5)) / 4)
    # an action the target does not know (index -1): no weight, no residual
    assert doubly_robust([1.0], [[0.0, 1.0]], [-1], [0.5], [[9.0, 2.0]]).value == pytest.approx(2.0)


def test_edges():
    nothing_matches = snips(np.array([1.0, 2.0]), np.zeros(2), np.array([0.5, 0.5]))
    assert math.isnan(nothing_matches.value) and nothing_matches.effective_sample_size == 0.0
    assert ips(np.array([1.0, 2.0]), np.zeros(2), np.array([0.5, 0.5])).value == 0.0
    one = ips(np.array([3.0]), np.array([1.0]), np.array([0.5]))
    assert one.value == 6.0 and math.isnan(one.std_error) and one.n == 1
    assert effective_sample_size(np.zeros(3)) == 0.0
    wide = ips(np.array([1.0, 0.0, 1.0]), np.ones(3), np.ones(3), level=0.99)
    narrow = ips(np.array([1.0, 0.0, 1.0]), np.ones(3), np.ones(3), level=0.5)
    assert wide.ci_low < narrow.ci_low < narrow.ci_high < wide.ci_high


@pytest.mark.parametrize("call, message", [
    (lambda: ips([1.0], [1.0], [0.0]), "logged propensities must be in (0, 1]"),
    (lambda: ips([1.0], [1.0], [1.5]), "logged propensities must be in (0, 1]"),
    (lambda: snips([1.0], [1.2], [0.5]), "target propensities must be in [0, 1]"),
    (lambda: ips([1.0, 2.0], [1.0], [0.5]), "1-d arrays of one length"),
    (lambda: ips([math.nan], [1.0], [0.5]), "rewards must be finite"),
    (lambda: ips([1.0], [1.0], [0.5], clip=0), "clip must be positive"),
    (lambda: doubly_robust([1.0], [[0.5, 0.4]], [0], [0.5], [[0.0, 0.0]]), "each row summing to 1"),
    (lambda: doubly_robust([1.0], [[0.5, 0.5]], [0], [0.5], [[0.0]]), "n x k"),
    (lambda: doubly_robust([1.0], [[0.5, 0.5]], [0.0], [0.5], [[0.0, 0.0]]), "integers"),
])
def test_bad_input_is_refused_with_a_reason(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()
