"""Heterogeneous treatment effects of a binary treatment (send or not, show or not) from
randomized decisions, or from decisions whose propensities were logged: meta-learners over
CatBoost that predict each row's conditional average treatment effect (CATE), the effect
per segment, the Qini curve of a scorer with its coefficient, and the value of a policy
(the uplift policy's above all) estimated from the logged decisions.

Notation: ``treatment`` is 1 where the product acted and 0 where it did not; ``y`` is the
outcome; ``propensity`` is the logged probability of the action that was taken, so that
P(T=1 | x) is ``propensity`` on treated rows and ``1 - propensity`` on control rows.
Without propensities the decisions are taken to be randomized with the sample's treated
share.

The learners (Künzel, Sekhon, Bickel and Yu, "Metalearners for estimating heterogeneous
treatment effects using machine learning", PNAS 2019):

- S-learner: one outcome model with the treatment as an input; CATE = mu(x, 1) - mu(x, 0).
  Looper's ordinary binary model is one (the action is an input). Nothing makes its trees
  split on the treatment, so it tends to shrink effects toward zero.
- T-learner: one outcome model per arm, mu0 on the control rows and mu1 on the treated
  rows; CATE = mu1(x) - mu0(x). It predicts both potential outcomes.
- X-learner: the T-learner's mu0 and mu1, then each arm's imputed effects (treated rows:
  y - mu0(x); control rows: mu1(x) - y) regressed on x as tau1 and tau0, blended by the
  treated share g: CATE = g * tau0(x) + (1 - g) * tau1(x). When one arm is small, the blend
  leans on the effects imputed with the large arm's outcome model, which is why it does
  better than the T-learner when the groups are unbalanced.

With logged propensities every model weights a row by 1 / P(T=t | x) (inverse propensity
weighting, normalized within each arm), so that each arm's model describes the whole
population and not only the subjects the logging policy tended to put in that arm.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

# Small models by default: a few thousand rows of a handful of features need no more.
DEFAULT_PARAMS = {"iterations": 200, "depth": 4, "learning_rate": 0.08, "l2_leaf_reg": 3.0, "random_seed": 0}
MAX_THREADS = 4
PROPENSITY_FLOOR = 0.01  # weights are at most 1 / PROPENSITY_FLOOR
MIN_ARM_ROWS = 10
TREATMENT_COLUMN = "__treatment"  # the S-learner's extra input
OUTCOME_PARTS = ("mu", "mu0", "mu1")  # models of an outcome (classifiers for a 0/1 outcome)


def default_threads() -> int:
    return max(1, min(MAX_THREADS, os.cpu_count() or 1))


# --- inputs ------------------------------------------------------------------------------

def as_treatment(treatment) -> np.ndarray:
    """0/1 integers from booleans, 0/1 numbers, or Looper's binary actions "true"/"false"."""
    values = np.asarray(treatment)
    if values.dtype == object or values.dtype.kind in "US":
        values = np.array([str(v).lower() in ("true", "1") for v in values.tolist()])
    result = values.astype(int)
    if not np.isin(result, (0, 1)).all():
        raise ValueError("treatment must be 0/1 (or true/false)")
    return result


def treated_probability(treatment, propensity=None) -> np.ndarray:
    """P(T=1 | x) per row: from the logged propensity of the action taken, or the sample's
    treated share when none was logged (randomized decisions)."""
    t = as_treatment(treatment)
    if propensity is None:
        return np.full(len(t), t.mean() if len(t) else math.nan)
    p = np.asarray(propensity, dtype=float)
    if len(p) != len(t) or not np.all(np.isfinite(p)) or np.any((p <= 0) | (p > 1)):
        raise ValueError("propensity must be one probability in (0, 1] per row")
    return np.where(t == 1, p, 1 - p)


def arm_weights(treatment, propensity=None) -> np.ndarray:
    """Inverse propensity weights 1 / P(T=t | x), normalized to a mean of 1 within each arm
    (all 1 without propensities)."""
    t = as_treatment(treatment)
    if propensity is None:
        return np.ones(len(t))
    p1 = treated_probability(t, propensity)
    weights = 1 / np.clip(np.where(t == 1, p1, 1 - p1), PROPENSITY_FLOOR, None)
    for arm in (0, 1):
        mask = t == arm
        if mask.any():
            weights[mask] /= weights[mask].mean()
    return weights


def _frame(X) -> pd.DataFrame:
    return X.reset_index(drop=True) if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X))


def _is_binary(y: np.ndarray) -> bool:
    return bool(np.isin(y, (0.0, 1.0)).all())


# --- meta-learners -----------------------------------------------------------------------

class MetaLearner:
    """A meta-learner's common part: fitting and predicting its CatBoost models.

    ``params`` are CatBoost's (``DEFAULT_PARAMS`` fill the rest); ``cat_features`` name the
    categorical columns of ``X``; ``binary`` says whether the outcome is 0/1 (then the
    outcome models are classifiers and predict probabilities; by default: whether every
    training outcome is 0 or 1); ``callbacks`` go to every CatBoost fit (e.g. a time limit).
    """

    name = ""
    parts: tuple[str, ...] = ()

    def __init__(self, params: Mapping | None = None, cat_features: Sequence[str] = (), thread_count: int | None = None,
                 binary: bool | None = None, callbacks: Sequence = ()):
        self.params = {**DEFAULT_PARAMS, **(params or {})}
        self.cat_features = list(cat_features)
        self.thread_count = thread_count or default_threads()
        self.binary = binary
        self.callbacks = list(callbacks)
        self.models: dict = {}
        self.treated_share = math.nan

    def fit(self, X, treatment, y, propensity=None) -> "MetaLearner":
        X = _frame(X)
        t = as_treatment(treatment)
        y = np.asarray(y, dtype=float)
        if not len(X) == len(t) == len(y):
            raise ValueError(f"X, treatment and y differ in length ({len(X)}, {len(t)}, {len(y)})")
        treated, control = int(t.sum()), int(len(t) - t.sum())
        if min(treated, control) < MIN_ARM_ROWS:
            raise ValueError(f"needs at least {MIN_ARM_ROWS} treated and {MIN_ARM_ROWS} control rows; "
                             f"got {treated} treated and {control} control")
        if self.binary is None:
            self.binary = _is_binary(y)
        self.treated_share = float(treated_probability(t, propensity).mean())
        self._fit(X, t, y, arm_weights(t, propensity))
        return self

    def effect(self, X) -> np.ndarray:
        """The predicted CATE of each row: E[Y(1) - Y(0) | x]."""
        raise NotImplementedError

    def outcomes(self, X) -> tuple[np.ndarray, np.ndarray]:
        """The predicted potential outcomes of each row, without and with the treatment."""
        raise NotImplementedError

    def untreated_and_effect(self, X) -> tuple[np.ndarray, np.ndarray]:
        """Each row's predicted outcome without the treatment and its predicted effect (what
        serving needs, with no model predicted twice)."""
        untreated, treated = self.outcomes(X)
        return untreated, treated - untreated

    def _fit(self, X: pd.DataFrame, t: np.ndarray, y: np.ndarray, w: np.ndarray) -> None:
        raise NotImplementedError

    @classmethod
    def from_models(cls, models: Mapping, binary: bool, treated_share: float) -> "MetaLearner":
        """A fitted learner from its models (as ``models`` holds them, e.g. loaded from files)."""
        missing = set(cls.parts) - set(models)
        if missing:
            raise ValueError(f"the {cls.name}-learner needs the models {sorted(missing)}")
        learner = cls(binary=binary)
        learner.models = {part: models[part] for part in cls.parts}
        learner.treated_share = float(treated_share)
        return learner

    def _new_model(self, classifier: bool):
        from catboost import CatBoostClassifier, CatBoostRegressor

        kind = CatBoostClassifier if classifier else CatBoostRegressor
        return kind(**self.params, thread_count=self.thread_count, verbose=False, allow_writing_files=False)

    def _fit_model(self, X: pd.DataFrame, y: np.ndarray, w: np.ndarray, outcome: bool):
        classifier = outcome and self.binary
        if classifier and len(np.unique(y)) < 2:
            raise ValueError(f"the outcome takes one value only ({y[0]:g}) in an arm; collect more outcomes")
        model = self._new_model(classifier)
        cats = [c for c in self.cat_features if c in X.columns]
        model.fit(X, y, sample_weight=w, cat_features=cats, callbacks=self.callbacks or None)
        return model


def predict_model(model, X) -> np.ndarray:
    """A CatBoost model's prediction: a classifier's probability of 1, a regressor's value."""
    from catboost import CatBoostClassifier

    if isinstance(model, CatBoostClassifier):
        return np.asarray(model.predict(X, prediction_type="Probability", thread_count=1))[:, 1]
    return np.asarray(model.predict(X, thread_count=1), dtype=float)


class SLearner(MetaLearner):
    name = "s"
    parts = ("mu",)

    def _fit(self, X, t, y, w):
        self.models = {"mu": self._fit_model(X.assign(**{TREATMENT_COLUMN: t}), y, w, outcome=True)}

    def outcomes(self, X):
        X = _frame(X)
        mu = self.models["mu"]
        return (predict_model(mu, X.assign(**{TREATMENT_COLUMN: 0})),
                predict_model(mu, X.assign(**{TREATMENT_COLUMN: 1})))

    def effect(self, X):
        mu0, mu1 = self.outcomes(X)
        return mu1 - mu0


class TLearner(MetaLearner):
    name = "t"
    parts = ("mu0", "mu1")

    def _fit(self, X, t, y, w):
        c, tr = t == 0, t == 1
        self.models = {"mu0": self._fit_model(X[c], y[c], w[c], outcome=True),
                       "mu1": self._fit_model(X[tr], y[tr], w[tr], outcome=True)}

    def outcomes(self, X):
        X = _frame(X)
        return predict_model(self.models["mu0"], X), predict_model(self.models["mu1"], X)

    def effect(self, X):
        mu0, mu1 = self.outcomes(X)
        return mu1 - mu0


class XLearner(TLearner):
    name = "x"
    parts = ("mu0", "mu1", "tau0", "tau1")

    def _fit(self, X, t, y, w):
        super()._fit(X, t, y, w)
        c, tr = t == 0, t == 1
        imputed_treated = y[tr] - predict_model(self.models["mu0"], X[tr])
        imputed_control = predict_model(self.models["mu1"], X[c]) - y[c]
        self.models["tau1"] = self._fit_model(X[tr], imputed_treated, w[tr], outcome=False)
        self.models["tau0"] = self._fit_model(X[c], imputed_control, w[c], outcome=False)

    def effect(self, X, treated_probability=None):
        """The blend g * tau0(x) + (1 - g) * tau1(x), with g the treated share of the training
        rows, or each row's P(T=1 | x) when ``treated_probability`` gives it."""
        X = _frame(X)
        g = self.treated_share if treated_probability is None else np.asarray(treated_probability, dtype=float)
        return g * predict_model(self.models["tau0"], X) + (1 - g) * predict_model(self.models["tau1"], X)

    def untreated_and_effect(self, X):
        return predict_model(self.models["mu0"], _frame(X)), self.effect(X)


LEARNERS: dict[str, type[MetaLearner]] = {"s": SLearner, "t": TLearner, "x": XLearner}


def make_learner(name: str, **kwargs) -> MetaLearner:
    """A new learner by its short name: ``s``, ``t`` or ``x``."""
    if name not in LEARNERS:
        raise ValueError(f"unknown meta-learner {name!r}; one of {sorted(LEARNERS)}")
    return LEARNERS[name](**kwargs)


def load_learner(name: str, files: Mapping[str, Path], binary: bool, treated_share: float) -> MetaLearner:
    """A fitted learner from its models' files (part -> path, as ``save_learner`` wrote them)."""
    from catboost import CatBoostClassifier, CatBoostRegressor

    models = {}
    for part, path in files.items():
        model = CatBoostClassifier() if part in OUTCOME_PARTS and binary else CatBoostRegressor()
        model.load_model(str(path))
        models[part] = model
    return LEARNERS[name].from_models(models, binary, treated_share)


def save_learner(learner: MetaLearner, path_of_part) -> dict[str, Path]:
    """Saves each of the learner's models where ``path_of_part(part)`` says; returns them."""
    paths = {}
    for part, model in learner.models.items():
        paths[part] = Path(path_of_part(part))
        model.save_model(str(paths[part]))
    return paths


# --- the Qini curve ----------------------------------------------------------------------

@dataclass(frozen=True)
class QiniCurve:
    """Radcliffe's Qini curve: treating the top ``fraction`` of the population by score
    gains ``gain`` incremental outcomes per subject of the whole population. Among the top
    rows, treated outcomes - control outcomes * treated / control estimates the incremental
    outcomes of their treated rows; over all treated rows (a random part of the population)
    it is per subject, so the curve ends at the average effect. Points are at the ends of
    groups of equal scores, so a scorer that cannot tell subjects apart draws the random line."""

    fraction: np.ndarray
    gain: np.ndarray

    @property
    def area(self) -> float:
        """The area between the curve and the random targeting line (the straight line to
        the same end point): positive when the scorer ranks the effect better than chance."""
        random_line = self.fraction * self.gain[-1]
        return float(np.trapezoid(self.gain - random_line, self.fraction))


def qini_curve(y, treatment, scores, propensity=None) -> QiniCurve:
    """The Qini curve of ``scores`` (higher: target first) on decisions with outcomes ``y``;
    with ``propensity`` each row counts 1 / P(T=t | x) times."""
    t = as_treatment(treatment)
    y = np.asarray(y, dtype=float)
    scores = np.asarray(scores, dtype=float)
    w = arm_weights(t, propensity) if propensity is not None else np.ones(len(t))
    order = np.argsort(-scores, kind="stable")
    t, y, w, s = t[order], y[order], w[order], scores[order]
    n_treated = np.cumsum(w * t)
    n_control = np.cumsum(w * (1 - t))
    y_treated = np.cumsum(w * y * t)
    y_control = np.cumsum(w * y * (1 - t))
    ratio = np.divide(n_treated, n_control, out=np.zeros_like(n_treated), where=n_control > 0)
    gain = (y_treated - y_control * ratio) / max(n_treated[-1], 1e-12)
    ends = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]  # the last row of each group of equal scores
    fraction = (np.cumsum(w) / w.sum())[ends]
    return QiniCurve(np.r_[0.0, fraction], np.r_[0.0, gain[ends]])


def qini_coefficient(y, treatment, scores, propensity=None) -> float:
    """The Qini curve's area normalized by that of the best ordering of these very rows
    (treated rows with high outcomes first, control rows with high outcomes last): 0 for
    random targeting, 1 for the best ordering, negative when the scorer ranks the effect
    backwards. NaN when even the best ordering does no better than random."""
    t = as_treatment(treatment)
    y = np.asarray(y, dtype=float)
    perfect = qini_curve(y, t, y * (2 * t - 1), propensity).area
    if not perfect > 0:
        return math.nan
    return qini_curve(y, t, scores, propensity).area / perfect


# --- effects per segment -----------------------------------------------------------------

@dataclass(frozen=True)
class SegmentEffect:
    """The effect of the treatment within one segment (a value of a categorical column):
    the difference in mean outcomes between its treated and control rows (inverse propensity
    weighted when propensities were logged), with a normal confidence interval; and the mean
    of the learner's predicted CATE over the segment's rows, when given (a model's summary,
    without an interval: it does not know the model's error)."""

    segment: str
    rows: int
    treated: int
    control: int
    effect: float
    ci_low: float
    ci_high: float
    mean_cate: float = math.nan


def _weighted_mean_and_variance(y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """The weighted (Hajek) mean and its sampling variance, sum w^2 (y - m)^2 / (sum w)^2
    with the n / (n - 1) small-sample factor (the usual s^2 / n for equal weights)."""
    n = len(y)
    if n < 2:
        return (float(y[0]) if n else math.nan), math.nan
    mean = float((w * y).sum() / w.sum())
    variance = float((w ** 2 * (y - mean) ** 2).sum() / w.sum() ** 2) * n / (n - 1)
    return mean, variance


def difference_in_means(y, treatment, propensity=None, level: float = 0.95) -> tuple[float, float, float]:
    """The treated rows' mean outcome minus the control rows', with its confidence interval
    at ``level`` (weighted by 1 / P(T=t | x) when propensities are given)."""
    t = as_treatment(treatment)
    y = np.asarray(y, dtype=float)
    w = arm_weights(t, propensity)
    m1, v1 = _weighted_mean_and_variance(y[t == 1], w[t == 1])
    m0, v0 = _weighted_mean_and_variance(y[t == 0], w[t == 0])
    effect = m1 - m0
    half = NormalDist().inv_cdf(0.5 + level / 2) * math.sqrt(v1 + v0)
    return effect, effect - half, effect + half


def effects_by_segment(segments, y, treatment, cate=None, propensity=None, level: float = 0.95) -> list[SegmentEffect]:
    """One ``SegmentEffect`` per distinct value of ``segments``, largest segment first."""
    segments = np.array(["" if v is None else str(v) for v in np.asarray(segments, dtype=object).tolist()])
    t = as_treatment(treatment)
    y = np.asarray(y, dtype=float)
    p = None if propensity is None else np.asarray(propensity, dtype=float)
    values, counts = np.unique(segments, return_counts=True)
    effects = []
    for value in values[np.argsort(-counts, kind="stable")]:
        rows = segments == value
        effect, low, high = difference_in_means(y[rows], t[rows], None if p is None else p[rows], level)
        effects.append(SegmentEffect(str(value), int(rows.sum()), int(t[rows].sum()), int((1 - t[rows]).sum()),
                                     effect, low, high,
                                     math.nan if cate is None else float(np.mean(np.asarray(cate)[rows]))))
    return effects


# --- the uplift policy -------------------------------------------------------------------

def uplift_policy(cate, outcome_value: float = 1.0, cost: float = 0.0, threshold: float = 0.0) -> np.ndarray:
    """Whom the uplift policy treats: where the predicted incremental value exceeds what
    acting costs by more than the threshold (CATE * outcome value - cost > threshold)."""
    return np.asarray(cate, dtype=float) * outcome_value - cost > threshold


@dataclass(frozen=True)
class PolicyValue:
    """A policy's product value per decision estimated from logged decisions, with a normal
    confidence interval; ``matched`` is how many logged decisions agreed with it."""

    value: float
    ci_low: float
    ci_high: float
    matched: int


def policy_value(treat, y, treatment, propensity=None, outcome_value: float = 1.0, cost: float = 0.0,
                 level: float = 0.95) -> PolicyValue:
    """What a policy that treats where ``treat`` is true earns per decision (outcome value
    times outcome, minus the cost where it treats), estimated from randomized or logged
    decisions by self-normalized inverse propensity weighting: the logged decisions that did
    what the policy would do, each weighted by 1 / the probability that it was done."""
    t = as_treatment(treatment)
    y = np.asarray(y, dtype=float)
    treat = np.asarray(treat, dtype=bool).astype(int)
    p1 = treated_probability(t, propensity)
    done = np.where(t == 1, p1, 1 - p1)
    match = treat == t
    if not match.any():
        return PolicyValue(math.nan, math.nan, math.nan, 0)
    earned = outcome_value * y - cost * t
    value, variance = _weighted_mean_and_variance(earned[match], 1 / np.clip(done[match], PROPENSITY_FLOOR, None))
    half = NormalDist().inv_cdf(0.5 + level / 2) * math.sqrt(variance)
    return PolicyValue(value, value - half, value + half, int(match.sum()))


def uplift_policy_value(cate, y, treatment, propensity=None, outcome_value: float = 1.0, cost: float = 0.0,
                        threshold: float = 0.0, level: float = 0.95) -> PolicyValue:
    """The uplift policy's value per decision (see ``uplift_policy`` and ``policy_value``)."""
    return policy_value(uplift_policy(cate, outcome_value, cost, threshold), y, treatment, propensity,
                        outcome_value, cost, level)
