"""The serving runtime: a registered model version (one CatBoost model per label, or one
meta-learner per label for an uplift version) loaded once, predicting decisions' outcomes
from their feature values through the model-input encoding it was trained with."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from services.decisions.record import FeatureScalar
from services.models.encoding import ACTION_COLUMN
from services.models.registry import ModelKind, ModelMeta, artifact_name, label_file


def open_model(meta: ModelMeta, artifact: Path) -> "ServingModel":
    """Loads a registered version: an ``UpliftModel`` when it is a meta-learner, else a
    ``ServingModel``. Raises when a file is missing or unreadable."""
    return UpliftModel(meta, artifact) if meta.uplift else ServingModel(meta, artifact)


class ServingModel:
    def __init__(self, meta: ModelMeta, artifact: Path):
        """``artifact`` is the primary label's file; the other labels' lie beside it."""
        self.meta = meta
        self.version = meta.version
        self.input = meta.input
        self._models = {outcome: _load(kind, Path(artifact).with_name(artifact_name(meta, outcome)))
                        for outcome, kind in meta.labels.items()}
        self._categorical = self._models[meta.label].get_cat_feature_indices()

    def score(self, rows: list[dict[str, FeatureScalar]]) -> list[float]:
        """One score per row for the primary label: its probability, or its predicted value."""
        return self.score_encoded(self.input.matrix(rows))

    def predict(self, rows: list[dict[str, FeatureScalar]]) -> dict[str, list[float]]:
        """Per outcome, one prediction per row (the policy weighs them)."""
        return self.predict_encoded(self.input.matrix(rows))

    def score_encoded(self, data) -> list[float]:
        """Scores rows already encoded (input rows as lists or an array, or an encoded frame)."""
        return _predict(self.meta.kind, self._models[self.meta.label], self._pool(data))

    def predict_encoded(self, data) -> dict[str, list[float]]:
        pool = self._pool(data)
        return {outcome: _predict(self.meta.labels[outcome], model, pool) for outcome, model in self._models.items()}

    def _pool(self, data):
        """The rows as one CatBoost Pool for every label's model. Building it is about half
        of a small batch's prediction; on one thread (CatBoost's default is every core, whose
        hand-offs cost more than the work for a few rows) it takes about a quarter less."""
        from catboost import Pool

        if isinstance(data, np.ndarray) and data.ndim == 2:
            return _serving_pool(data, self._categorical)
        return Pool(data, cat_features=self._categorical, thread_count=1)


def _serving_pool(rows: np.ndarray, categorical: list[int]):
    """A Pool of serving rows (``ModelInput.matrix``'s array) built by CatBoost's own
    initializer without ``Pool.__init__``'s checks of its arguments, which guard data a
    caller passes in any form; these rows are ours. The checks cost as much as building a
    notification's 2 rows: inside the decision flow 76-86 us a Pool against 110-116. It
    relies on CatBoost's private ``_init_pool`` (the version is pinned in pyproject.toml;
    ``tests/unit/test_serving_pool.py`` compares its predictions with the public path's)."""
    from catboost import Pool

    pool = Pool.__new__(Pool)
    unused = dict.fromkeys(("label", "text_features", "embedding_features", "embedding_features_data", "pairs",
                            "graph", "weight", "group_id", "group_weight", "subgroup_id", "pairs_weight", "baseline",
                            "timestamp", "feature_names", "feature_tags"))
    pool._init_pool(data=rows, cat_features=categorical, thread_count=1, **unused)
    return pool


def _load(kind: ModelKind, path: Path):
    from catboost import CatBoostClassifier, CatBoostRegressor

    model = CatBoostClassifier() if kind == ModelKind.CLASSIFIER else CatBoostRegressor()
    model.load_model(str(path))
    return model


def _predict(kind: ModelKind, model, data) -> list[float]:
    if kind == ModelKind.CLASSIFIER:
        return model.predict(data, prediction_type="Probability", thread_count=1)[:, 1].tolist()
    return model.predict(data, thread_count=1).tolist()


class UpliftModel(ServingModel):
    """An uplift version: per label, a meta-learner (``services/evaluation/uplift.py``) whose
    models take the subject's inputs without the action. It predicts each row's potential
    outcome under the row's action, so the policy compares acting ("true") with not acting
    ("false") by the learner's effect: a T-learner's mu1(x) and mu0(x); an X-learner's
    mu0(x) + CATE(x) and mu0(x), whose difference is its blended effect estimate."""

    def __init__(self, meta: ModelMeta, artifact: Path):
        from services.evaluation.uplift import LEARNERS, load_learner

        self.meta = meta
        self.version = meta.version
        self.input = meta.input
        name = meta.uplift["learner"]
        folder = Path(artifact).parent
        self._learners = {
            outcome: load_learner(name, {part: folder / label_file(meta.label, outcome, part)
                                         for part in LEARNERS[name].parts},
                                  binary=kind == ModelKind.CLASSIFIER, treated_share=meta.uplift["treated_share"])
            for outcome, kind in meta.labels.items()}

    def predict_encoded(self, data) -> dict[str, list[float]]:
        frame = self._frame(data)
        treated = (frame[ACTION_COLUMN] == "true").to_numpy()
        inputs = frame.drop(columns=[ACTION_COLUMN])
        predicted = {}
        for outcome, learner in self._learners.items():
            untreated, effect = learner.untreated_and_effect(inputs)
            predicted[outcome] = np.where(treated, untreated + effect, untreated).tolist()
        return predicted

    def score_encoded(self, data) -> list[float]:
        return self.predict_encoded(data)[self.meta.label]

    def effects(self, rows: list[dict[str, FeatureScalar]]) -> dict[str, list[float]]:
        """Per outcome, each row's predicted effect of acting (CATE); the rows' action is ignored."""
        return self.effects_encoded([self.input.row(r) for r in rows])

    def effects_encoded(self, data) -> dict[str, list[float]]:
        inputs = self._frame(data).drop(columns=[ACTION_COLUMN])
        return {outcome: learner.effect(inputs).tolist() for outcome, learner in self._learners.items()}

    def _frame(self, data):
        import pandas as pd

        if isinstance(data, pd.DataFrame):
            return data.reset_index(drop=True)
        return pd.DataFrame(list(data), columns=list(self.input.columns))
