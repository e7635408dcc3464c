"""The serving runtime: a registered model version (one CatBoost model per label) loaded
once, predicting decisions' outcomes from their feature values through the model-input
encoding it was trained with."""

from __future__ import annotations

from pathlib import Path

from services.decisions.record import FeatureScalar
from services.models.registry import ModelKind, ModelMeta, artifact_name


class ServingModel:
    def __init__(self, meta: ModelMeta, artifact: Path):
        """``artifact`` is the primary label's file; the other labels' lie beside it."""
        self.meta = meta
        self.version = meta.version
        self.input = meta.input
        self._models = {outcome: _load(kind, Path(artifact).with_name(artifact_name(meta, outcome)))
                        for outcome, kind in meta.labels.items()}

    def score(self, rows: list[dict[str, FeatureScalar]]) -> list[float]:
        """One score per row for the primary label: its probability, or its predicted value."""
        return self.score_encoded([self.input.row(r) for r in rows])

    def predict(self, rows: list[dict[str, FeatureScalar]]) -> dict[str, list[float]]:
        """Per outcome, one prediction per row (the policy weighs them)."""
        return self.predict_encoded([self.input.row(r) for r in rows])

    def score_encoded(self, data) -> list[float]:
        """Scores rows already encoded (a list of input rows or an encoded frame)."""
        return _predict(self.meta.kind, self._models[self.meta.label], data)

    def predict_encoded(self, data) -> dict[str, list[float]]:
        return {outcome: _predict(self.meta.labels[outcome], model, data) for outcome, model in self._models.items()}


def _load(kind: ModelKind, path: Path):
    from catboost import CatBoostClassifier, CatBoostRegressor

    model = CatBoostClassifier() if kind == ModelKind.CLASSIFIER else CatBoostRegressor()
    model.load_model(str(path))
    return model


def _predict(kind: ModelKind, model, data) -> list[float]:
    if kind == ModelKind.CLASSIFIER:
        return [float(p[1]) for p in model.predict(data, prediction_type="Probability", thread_count=1)]
    return [float(v) for v in model.predict(data, thread_count=1)]
