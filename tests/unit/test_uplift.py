"""The meta-learners, the Qini curve, effects by segment and the uplift policy's value on
seeded synthetic data whose true effect is known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from services.evaluation.uplift import (SLearner, TLearner, XLearner, arm_weights, difference_in_means,
                                        effects_by_segment, load_learner, make_learner, policy_value, qini_coefficient,
                                        qini_curve, save_learner, treated_probability, uplift_policy,
                                        uplift_policy_value)

PARAMS = {"iterations": 150, "depth": 4}


def binary_population(n: int, seed: int):
    """Returns within a population: the baseline probability depends on x2 and the segment,
    the effect on x1 (from -0.3 to +0.3) and the segment (b: +0.1)."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"x1": rng.uniform(0, 1, n), "x2": rng.uniform(0, 1, n), "segment": rng.choice(["a", "b", "c"], n)})
    p0 = 1 / (1 + np.exp(-(-0.5 + 1.5 * X.x2 - 0.5 * (X.segment == "c"))))
    p1 = np.clip(p0 + 0.3 * np.tanh(4 * (X.x1 - 0.5)) + 0.1 * (X.segment == "b"), 0.01, 0.99)
    return X, p0.to_numpy(), (p1 - p0).to_numpy()


def randomized(p0, effect, share: float, seed: int):
    rng = np.random.default_rng(seed)
    t = (rng.random(len(p0)) < share).astype(int)
    y = (rng.random(len(p0)) < p0 + t * effect).astype(float)
    return t, y


@pytest.fixture(scope="module")
def binary():
    X, p0, effect = binary_population(4000, seed=1)
    t, y = randomized(p0, effect, 0.5, seed=2)
    X_new, _, effect_new = binary_population(2000, seed=3)
    return X, t, y, X_new, effect_new


@pytest.mark.parametrize("learner", [TLearner, XLearner])
def test_t_and_x_learners_recover_a_heterogeneous_effect_from_randomized_binary_outcomes(binary, learner):
    X, t, y, X_new, truth = binary
    fitted = learner(params=PARAMS, cat_features=["segment"]).fit(X, t, y)
    estimate = fitted.effect(X_new)
    assert np.corrcoef(estimate, truth)[0, 1] > 0.9
    assert abs(estimate.mean() - truth.mean()) < 0.03
    untreated, treated = fitted.outcomes(X_new)
    assert ((0 <= untreated) & (untreated <= 1)).all() and ((0 <= treated) & (treated <= 1)).all()


def test_the_t_learner_predicts_both_potential_outcomes_and_their_difference_is_its_effect(binary):
    X, t, y, X_new, _ = binary
    fitted = TLearner(params={"iterations": 50}, cat_features=["segment"]).fit(X, t, y)
    untreated, treated = fitted.outcomes(X_new)
    assert np.allclose(treated - untreated, fitted.effect(X_new))


def unbalanced_population(n: int, seed: int, share: float):
    """A continuous outcome whose baseline is a wiggly function of three features and whose
    effect is a simple one of the fourth; few subjects treated."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({f"x{i}": rng.uniform(-1, 1, n) for i in range(4)})
    baseline = 2 * np.sin(3 * X.x0) + 3 * X.x1 ** 2 + np.cos(4 * X.x2)
    effect = (0.5 + X.x3).to_numpy()
    t = (rng.random(n) < share).astype(int)
    return X, t, (baseline + t * effect + rng.normal(0, 0.5, n)).to_numpy(), effect


def test_with_few_treated_subjects_the_x_learner_recovers_the_effect_better_than_the_t_learner():
    X, t, y, _ = unbalanced_population(3000, seed=5, share=0.1)
    X_new, _, _, truth = unbalanced_population(2000, seed=6, share=0.1)
    errors, correlations = {}, {}
    for learner in (TLearner, XLearner):
        estimate = learner(params=PARAMS).fit(X, t, y).effect(X_new)
        errors[learner.name] = float(np.sqrt(np.mean((estimate - truth) ** 2)))
        correlations[learner.name] = float(np.corrcoef(estimate, truth)[0, 1])
    # Measured on this seed: T 0.82 / X 0.94 correlation, RMSE 0.35 / 0.19 (of an effect with sd 0.58).
    assert correlations["x"] > 0.9 and correlations["x"] > correlations["t"] + 0.05, correlations
    assert errors["x"] < 0.75 * errors["t"], errors


def test_logged_propensities_weight_each_arm_to_the_whole_population():
    """The logging policy treated the subjects with a high x1 (whose effect is high) far
    more often: the plain difference in means overstates the effect; weighting by the
    logged propensities recovers it."""
    X, p0, effect = binary_population(20000, seed=7)
    rng = np.random.default_rng(8)
    p_treat = np.where(X.x1 > 0.5, 0.9, 0.1)
    t = (rng.random(len(p0)) < p_treat).astype(int)
    y = (rng.random(len(p0)) < p0 + t * effect).astype(float)
    propensity = np.where(t == 1, p_treat, 1 - p_treat)  # as logged: the probability of the action taken
    assert np.allclose(treated_probability(t, propensity), p_treat)
    naive, _, _ = difference_in_means(y, t)
    weighted, low, high = difference_in_means(y, t, propensity)
    assert naive - effect.mean() > 0.1
    assert low <= effect.mean() <= high and abs(weighted - effect.mean()) < 0.03
    weights = arm_weights(t, propensity)
    assert weights[t == 1].mean() == pytest.approx(1.0) and weights[t == 0].mean() == pytest.approx(1.0)


def test_too_few_rows_in_an_arm_or_a_bad_propensity_is_refused():
    X, p0, effect = binary_population(100, seed=9)
    t = np.r_[np.ones(95, dtype=int), np.zeros(5, dtype=int)]
    with pytest.raises(ValueError, match="at least 10 treated and 10 control rows; got 95 treated and 5 control"):
        TLearner(params=PARAMS).fit(X, t, np.zeros(100))
    with pytest.raises(ValueError, match="propensity must be"):
        treated_probability(t, np.r_[np.full(99, 0.5), 0.0])
    with pytest.raises(ValueError, match="unknown meta-learner 'z'"):
        make_learner("z")


def test_a_fitted_learner_saved_and_loaded_predicts_the_same(binary, tmp_path):
    X, t, y, X_new, _ = binary
    fitted = XLearner(params={"iterations": 30}, cat_features=["segment"]).fit(X, t, y)
    files = save_learner(fitted, lambda part: tmp_path / f"{part}.cbm")
    assert sorted(files) == ["mu0", "mu1", "tau0", "tau1"]
    loaded = load_learner("x", files, binary=True, treated_share=fitted.treated_share)
    assert np.allclose(loaded.effect(X_new), fitted.effect(X_new))
    assert fitted.treated_share == pytest.approx(t.mean())


def test_the_s_learner_is_one_model_with_the_treatment_as_an_input(binary):
    X, t, y, X_new, truth = binary
    fitted = SLearner(params=PARAMS, cat_features=["segment"]).fit(X, t, y)
    assert list(fitted.models) == ["mu"]
    assert np.corrcoef(fitted.effect(X_new), truth)[0, 1] > 0.5


# --- the Qini curve ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def trial():
    X, p0, effect = binary_population(20000, seed=11)
    t, y = randomized(p0, effect, 0.5, seed=12)
    return t, y, effect


def test_the_qini_of_the_true_effect_beats_random_targeting_which_scores_about_zero(trial):
    t, y, effect = trial
    perfect = qini_coefficient(y, t, effect)
    random = qini_coefficient(y, t, np.random.default_rng(13).random(len(y)))
    backwards = qini_coefficient(y, t, -effect)
    # On 0/1 outcomes even the true effect is far from the best ordering of the observed rows (1).
    assert perfect > 0.1
    assert abs(random) < 0.03
    assert backwards < -0.1
    assert qini_coefficient(y, t, y * (2 * t - 1)) == pytest.approx(1.0)


def test_a_scorer_that_cannot_tell_subjects_apart_draws_the_random_line(trial):
    t, y, _ = trial
    curve = qini_curve(y, t, np.zeros(len(y)))
    assert list(curve.fraction) == [0.0, 1.0]
    assert curve.area == 0.0 and qini_coefficient(y, t, np.zeros(len(y))) == 0.0
    # The end point is the whole population's incremental outcome per subject: the effect.
    assert curve.gain[-1] == pytest.approx(y[t == 1].mean() - y[t == 0].mean(), abs=1e-9)


def test_the_qini_curve_rises_while_it_targets_subjects_with_a_positive_effect_and_falls_after(trial):
    t, y, effect = trial
    curve = qini_curve(y, t, effect)
    peak = curve.fraction[np.argmax(curve.gain)]
    assert abs(peak - (effect > 0).mean()) < 0.1
    assert curve.gain.max() > curve.gain[-1] + 0.03


# --- effects by segment and the uplift policy --------------------------------------------

def test_effects_by_segment_cover_each_segments_true_effect(trial):
    X, _, effect = binary_population(20000, seed=11)
    t, y, _ = trial
    segments = effects_by_segment(X.segment.to_numpy(), y, t, cate=effect)
    assert sorted(s.segment for s in segments) == ["a", "b", "c"]
    for s in segments:
        truth = effect[X.segment.to_numpy() == s.segment].mean()
        assert s.ci_low <= truth <= s.ci_high, s
        assert s.mean_cate == pytest.approx(truth)
        assert s.rows == s.treated + s.control and s.ci_high - s.ci_low < 0.06
    by_name = {s.segment: s for s in segments}
    assert by_name["b"].ci_low > by_name["a"].ci_high  # b's extra +0.1 is seen


def test_the_uplift_policy_treats_only_where_the_effect_is_worth_the_cost_and_earns_more(trial):
    t, y, effect = trial
    X, p0, _ = binary_population(20000, seed=11)
    cost = 0.05
    treat = uplift_policy(effect, outcome_value=1.0, cost=cost)
    assert (treat == (effect > cost)).all()

    def true_value(policy):  # what each policy earns by the truth
        return float(np.mean(p0 + policy * effect - cost * policy))

    estimate = uplift_policy_value(effect, y, t, outcome_value=1.0, cost=cost)
    everyone = policy_value(np.ones(len(y), bool), y, t, outcome_value=1.0, cost=cost)
    assert estimate.ci_low <= true_value(treat) <= estimate.ci_high
    assert everyone.ci_low <= true_value(np.ones(len(y))) <= everyone.ci_high
    assert true_value(treat) > true_value(np.ones(len(y))) + 0.05
    assert estimate.value > everyone.value and estimate.matched == int((treat == t).sum())
    assert math.isnan(policy_value(np.ones(4, bool), np.ones(4), np.zeros(4, int), np.full(4, 0.5)).value)


def test_the_x_learner_blends_by_each_rows_treated_probability_when_given(binary):
    X, t, y, X_new, _ = binary
    fitted = XLearner(params={"iterations": 30}, cat_features=["segment"]).fit(X, t, y)
    tau0, tau1 = (fitted.models[part].predict(X_new) for part in ("tau0", "tau1"))
    assert np.allclose(fitted.effect(X_new, treated_probability=np.ones(len(X_new))), tau0)
    assert np.allclose(fitted.effect(X_new, treated_probability=np.zeros(len(X_new))), tau1)
    untreated, effect = fitted.untreated_and_effect(X_new)
    assert np.allclose(untreated, fitted.outcomes(X_new)[0]) and np.allclose(effect, fitted.effect(X_new))
