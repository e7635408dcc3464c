"""The serving runtime: a registered CatBoost model loaded once and scoring decisions'
feature values through the model-input encoding it was trained with."""

from __future__ import annotations

from pathlib import Path

from services.decisions.record import FeatureScalar
from services.models.registry import ModelKind, ModelMeta


class ServingModel:
    def __init__(self, meta: ModelMeta, artifact: Path):
        from catboost import CatBoostClassifier, CatBoostRegressor

        self.meta = meta
        self.version = meta.version
        self.input = meta.input
        self._model = CatBoostClassifier() if meta.kind == ModelKind.CLASSIFIER else CatBoostRegressor()
        self._model.load_model(str(artifact))

    def score(self, rows: list[dict[str, FeatureScalar]]) -> list[float]:
        """One score per row: the positive label's probability, or the predicted value."""
        return self.score_encoded([self.input.row(r) for r in rows])

    def score_encoded(self, data) -> list[float]:
        """Scores rows already encoded (a list of input rows or an encoded frame)."""
        if self.meta.kind == ModelKind.CLASSIFIER:
            return [float(p[1]) for p in self._model.predict(data, prediction_type="Probability", thread_count=1)]
        return [float(v) for v in self._model.predict(data, thread_count=1)]
