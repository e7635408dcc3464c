"""An uplift version's training (``model.uplift`` in the blueprint): per label, a T- or
X-learner over CatBoost (``services/evaluation/uplift.py``) fitted on the decisions whose
propensity was logged, the treatment being the logged action ("true": the product acted)
and each row weighted by 1 / the probability of its action; and the uplift metrics of a
model on the holdout: the Qini coefficient of its predicted effects, among others.

Every decision Looper logs carries the propensity of its action, so the rows are those of a
randomized experiment when the policy explored at random (the blueprint's default with
``exploration_rate: 1``), and otherwise a mix that inverse propensity weighting corrects.
Where the logging policy never explored (propensity 1), one arm has no data: exploration is
what makes the effect learnable.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from services.blueprints.spec import Blueprint
from services.evaluation.uplift import (MetaLearner, difference_in_means, make_learner, qini_coefficient, qini_curve,
                                        save_learner)
from services.models.encoding import ACTION_COLUMN
from services.models.registry import ModelKind, label_file
from services.platform.errors import FailedPrecondition
from services.trainer.training_set import TrainingSet, label_kind


def with_propensity(dataset: TrainingSet) -> TrainingSet:
    """The rows whose logged propensity is a probability (older or foreign rows may lack one)."""
    p = dataset.propensities
    return dataset.where(np.isfinite(p) & (p > 0) & (p <= 1))


def treatment_of(dataset: TrainingSet) -> np.ndarray:
    """1 where the product acted (the logged action "true"), else 0."""
    return (dataset.actions == "true").astype(int)


def learner_inputs(dataset: TrainingSet) -> pd.DataFrame:
    """The subject's inputs without the action (the treatment is not an input of the arms' models)."""
    return dataset.features.drop(columns=[ACTION_COLUMN])


def outcome_of(dataset: TrainingSet, blueprint: Blueprint, outcome: str) -> np.ndarray:
    """What a label's models fit: 0/1 for a probability, the value for a value."""
    label = next(label for label in blueprint.all_labels if label.outcome == outcome)
    kind = label_kind(blueprint, label)
    return dataset.targets_of(outcome, kind) if dataset.outcomes else dataset.targets


def fit_learners(blueprint: Blueprint, train: TrainingSet, limit) -> dict[str, MetaLearner]:
    """One fitted meta-learner per label (the primary first), within the run's ``limit``."""
    rows = with_propensity(train)
    inputs, treatment = learner_inputs(rows), treatment_of(rows)
    categorical = [c for c in rows.input.categorical_columns if c != ACTION_COLUMN]
    learners = {}
    for label in blueprint.predicted_labels:  # not the product goal, which no model predicts
        learner = make_learner(blueprint.uplift_learner, params=blueprint.model_params, cat_features=categorical,
                               binary=label_kind(blueprint, label) == ModelKind.CLASSIFIER, callbacks=[limit])
        try:
            learner.fit(inputs, treatment, outcome_of(rows, blueprint, label.outcome), rows.propensities)
        except ValueError as err:
            raise FailedPrecondition(f"the uplift model of label {label.outcome!r} cannot be trained from the "
                                     f"{len(treatment)} decisions with a propensity: {err}") from None
        if limit.reason:
            raise FailedPrecondition(f"training stopped: {limit.reason}")
        learners[label.outcome] = learner
    return learners


def save_learners(learners: dict[str, MetaLearner], primary: str, folder: Path) -> dict[str, Path]:
    """Writes every model of every learner into ``folder`` under its name in a version
    (``registry.label_file``); returns file name -> path."""
    files = {}
    for outcome, learner in learners.items():
        saved = save_learner(learner, lambda part: Path(folder) / label_file(primary, outcome, part))
        files.update({path.name: path for path in saved.values()})
    return files


def uplift_meta(learners: dict[str, MetaLearner], blueprint: Blueprint) -> dict:
    """What the registry records of the meta-learner (``ModelMeta.uplift``)."""
    return {"learner": blueprint.uplift_learner,
            "treated_share": next(iter(learners.values())).treated_share}


def predicted_effects(model, dataset: TrainingSet, outcome: str) -> np.ndarray:
    """A model's predicted effect of acting on each row: an uplift model's CATE, or any
    binary model's prediction with the action "true" minus with "false" (an S-learner's)."""
    effects = getattr(model, "effects_encoded", None)
    if effects is not None:
        return np.asarray(effects(dataset.features)[outcome])
    acting = model.predict_encoded(dataset.features.assign(**{ACTION_COLUMN: "true"}))
    waiting = model.predict_encoded(dataset.features.assign(**{ACTION_COLUMN: "false"}))
    if len(acting) == 1:  # a model of one label predicts the primary one
        acting, waiting = {outcome: next(iter(acting.values()))}, {outcome: next(iter(waiting.values()))}
    return np.asarray(acting[outcome]) - np.asarray(waiting[outcome])


def uplift_metrics(blueprint: Blueprint, model, holdout: TrainingSet) -> dict[str, float]:
    """On the holdout's decisions with a propensity, for the primary label: ``qini`` (the
    Qini coefficient of the predicted effect: 0 is random targeting, 1 the best ordering of
    these rows), ``qini_area`` (incremental outcomes per decision, between the Qini curve
    and random targeting), ``cate_mean`` (the mean predicted effect) and ``ate`` with
    ``ate_ci_low``/``ate_ci_high`` (the effect measured on these rows: the difference in
    mean outcomes, inverse propensity weighted, with its 95% interval)."""
    rows = with_propensity(holdout)
    treatment = treatment_of(rows)
    if len(rows.labels) == 0 or treatment.min() == treatment.max():
        return {}
    primary = blueprint.primary_label.outcome
    y = outcome_of(rows, blueprint, primary)
    effects = predicted_effects(model, rows, primary)
    ate, low, high = difference_in_means(y, treatment, rows.propensities)
    return {"qini": qini_coefficient(y, treatment, effects, rows.propensities),
            "qini_area": qini_curve(y, treatment, effects, rows.propensities).area,
            "cate_mean": float(np.mean(effects)), "ate": ate, "ate_ci_low": low, "ate_ci_high": high}
