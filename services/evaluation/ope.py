"""Off-policy evaluation: what a target policy would earn per decision, estimated from the
decisions another (logging) policy made and logged with the probability of what it chose.

Notation, per logged row ``i`` of ``n``: the reward ``r_i`` the logged action earned, the
logged propensity ``mu_i = mu(a_i | x_i)`` (the logging policy's probability of the action it
took), the target policy's probability of that same action ``pi_i = pi(a_i | x_i)`` (1 or 0
for a deterministic target), and the importance weight ``w_i = pi_i / mu_i``.

- **IPS** (inverse propensity scoring): ``V = (1/n) sum_i w_i r_i``. Unbiased when the
  logged propensities are the true probabilities and every action the target may take had a
  non-zero logging probability (support). Its variance grows with the weights: a target far
  from the logging policy makes it noisy. Clipping the weights at ``c`` lowers the variance and
  biases the estimate (towards 0: downwards for non-negative rewards).
- **SNIPS** (self-normalized IPS): ``V = sum_i w_i r_i / sum_i w_i``. A ratio of two unbiased
  means, so biased by O(1/n) (and undefined when no row has weight) but consistent; usually
  much lower variance than IPS, and unchanged when every reward is shifted by a constant.
- **DR** (doubly robust): ``V = (1/n) sum_i [ sum_a pi(a | x_i) q(x_i, a) + w_i (r_i - q(x_i, a_i)) ]``,
  the direct method (a reward model ``q`` averaged over the target's choices) corrected by the
  IPS-weighted residual of the logged action. Unbiased when the propensities are right,
  whatever ``q``; when they are wrong, biased unless ``q`` is right. When ``q`` is close to the
  truth the residuals are small and DR has much lower variance than IPS; a poor ``q`` costs
  little more than IPS's variance.

Each estimate comes with a two-sided confidence interval by the normal approximation,
``V +- z * se``: for IPS and DR ``se`` is the standard deviation of the per-row terms
(``w_i r_i``; the bracket above) over ``sqrt(n)``; for SNIPS the delta method's, from the
per-row terms ``w_i (r_i - V) / mean(w)``. The intervals are only as good as the normal
approximation: with few matching rows or a few huge weights they are too narrow. Each also
gives the effective sample size of its weights, ``(sum w)^2 / sum w^2``: ``n`` when the data
were logged by the target policy itself (every ``w = 1``), smaller as the policies diverge
(for a deterministic target under uniform exploration, about the rows where both agree).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["Estimate", "doubly_robust", "effective_sample_size", "ips", "one_hot", "snips"]


@dataclass(frozen=True)
class Estimate:
    """A policy's estimated value per decision, its confidence interval (``level``, 95% by
    default), the standard error behind it, the effective sample size of the importance
    weights and the number of logged rows."""

    value: float
    ci_low: float
    ci_high: float
    std_error: float
    effective_sample_size: float
    n: int


def effective_sample_size(weights: np.ndarray) -> float:
    """``(sum w)^2 / sum w^2``; 0 when every weight is 0."""
    weights = np.asarray(weights, dtype=float)
    squares = float((weights**2).sum())
    return float(weights.sum() ** 2 / squares) if squares > 0 else 0.0


def one_hot(chosen: np.ndarray, k: int) -> np.ndarray:
    """A deterministic policy as per-action probabilities (n x k): 1 for the action it
    chooses in each row (an index in 0..k-1), 0 for the others."""
    chosen = np.asarray(chosen, dtype=int)
    probs = np.zeros((len(chosen), k))
    probs[np.arange(len(chosen)), chosen] = 1.0
    return probs


def ips(rewards, target_propensity_of_logged_action, logged_propensity, clip: float | None = None,
        level: float = 0.95) -> Estimate:
    """Inverse propensity scoring: ``(1/n) sum w_i r_i`` with ``w_i = pi_i / mu_i``, each
    weight at most ``clip`` when given. Unbiased without clipping (given correct, positive
    logged propensities); clipped, biased towards 0."""
    r, w = _weights(rewards, target_propensity_of_logged_action, logged_propensity, clip)
    return _mean_estimate(w * r, w, level)


def snips(rewards, target_propensity_of_logged_action, logged_propensity, clip: float | None = None,
          level: float = 0.95) -> Estimate:
    """Self-normalized IPS: ``sum w_i r_i / sum w_i``, with a delta-method interval. Biased
    by O(1/n) but consistent; NaN when no logged row has weight (the target never agrees
    with what was logged)."""
    r, w = _weights(rewards, target_propensity_of_logged_action, logged_propensity, clip)
    n, total = len(r), float(w.sum())
    ess = effective_sample_size(w)
    if total <= 0:
        return Estimate(math.nan, math.nan, math.nan, math.nan, ess, n)
    value = float((w * r).sum() / total)
    terms = w * (r - value) / (total / n)  # the estimator's influence, row by row
    return _interval(value, _std_error(terms), ess, n, level)


def doubly_robust(rewards, target_probs_per_action, logged_action_index, logged_propensity, q_hat,
                  clip: float | None = None, level: float = 0.95) -> Estimate:
    """Doubly robust: the direct method's ``sum_a pi(a | x_i) q(x_i, a)`` plus the weighted
    residual ``w_i (r_i - q(x_i, a_i))``, averaged over the rows.

    ``target_probs_per_action`` and ``q_hat`` are n x k (each row of probabilities sums to
    1); ``logged_action_index`` gives each row's logged action as a column of them. An index
    outside 0..k-1 (e.g. -1) marks a logged action the target policy cannot take: its weight
    and its residual term are 0. Unbiased if the propensities are right or ``q_hat`` is."""
    probs = np.asarray(target_probs_per_action, dtype=float)
    q = np.asarray(q_hat, dtype=float)
    index = np.asarray(logged_action_index)
    n = len(index)
    if probs.ndim != 2 or probs.shape[0] != n or q.shape != probs.shape:
        raise ValueError(f"target_probs_per_action and q_hat must both be n x k with n = {n} rows; "
                         f"got {probs.shape} and {q.shape}")
    if not np.all(np.isfinite(q)):
        raise ValueError("q_hat must be finite")
    if not np.all((probs >= 0) & (probs <= 1)) or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError("target_probs_per_action must be probabilities, each row summing to 1")
    if not np.issubdtype(index.dtype, np.integer):
        raise ValueError("logged_action_index must hold integers")
    known = (index >= 0) & (index < probs.shape[1])
    at = np.where(known, index, 0)
    rows = np.arange(n)
    target_of_logged = np.where(known, probs[rows, at], 0.0)
    r, w = _weights(rewards, target_of_logged, logged_propensity, clip)
    direct = (probs * q).sum(axis=1)
    residual = np.where(known, r - q[rows, at], 0.0)
    return _mean_estimate(direct + w * residual, w, level)


def _weights(rewards, target, logged, clip: float | None) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(rewards, dtype=float)
    pi = np.asarray(target, dtype=float)
    mu = np.asarray(logged, dtype=float)
    if not (r.ndim == pi.ndim == mu.ndim == 1 and len(r) == len(pi) == len(mu)):
        raise ValueError(f"rewards and propensities must be 1-d arrays of one length; got shapes "
                         f"{r.shape}, {pi.shape} and {mu.shape}")
    if not np.all(np.isfinite(r)):
        raise ValueError("rewards must be finite")
    if not np.all((mu > 0) & (mu <= 1)):
        raise ValueError("logged propensities must be in (0, 1]: an action logged with probability 0 "
                         "cannot be reweighted")
    if not np.all((pi >= 0) & (pi <= 1)):
        raise ValueError("target propensities must be in [0, 1]")
    if clip is not None and not clip > 0:
        raise ValueError("clip must be positive")
    w = pi / mu
    return r, (np.minimum(w, clip) if clip is not None else w)


def _mean_estimate(terms: np.ndarray, weights: np.ndarray, level: float) -> Estimate:
    n = len(terms)
    value = float(terms.mean()) if n else math.nan
    return _interval(value, _std_error(terms), effective_sample_size(weights), n, level)


def _std_error(terms: np.ndarray) -> float:
    n = len(terms)
    return float(terms.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan


def _interval(value: float, std_error: float, ess: float, n: int, level: float) -> Estimate:
    if not 0 < level < 1:
        raise ValueError("level must be between 0 and 1")
    z = float(stats.norm.ppf(0.5 + level / 2))
    return Estimate(value, value - z * std_error, value + z * std_error, std_error, ess, n)
