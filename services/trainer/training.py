"""Builds the training set from the training table and fits a CatBoost model.

The model sees exactly the feature values that were logged when each decision was made
(no train/serve skew), plus the action, so that one model scores every action: the policy
compares "send" with "don't send" for the same subject.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from services.core.blueprint import Blueprint
from services.core.errors import FailedPrecondition

HOLDOUT_FRACTION = 0.2
DEFAULT_PARAMS = {"iterations": 300, "depth": 6, "learning_rate": 0.08, "random_seed": 0}


@dataclass
class TrainingSet:
    """Model inputs and what the product observed, in decision-time order."""

    features: pd.DataFrame
    labels: np.ndarray  # the raw label (aggregated outcome)
    targets: np.ndarray  # what the model fits: 0/1 for classifiers, the label for regression
    actions: np.ndarray
    propensities: np.ndarray
    times: pd.Series
    categorical_columns: list[str]

    def split(self, fraction: float = HOLDOUT_FRACTION) -> tuple["TrainingSet", "TrainingSet"]:
        """The oldest rows for training, the newest for the holdout (time-based)."""
        cut = len(self.labels) - max(1, int(len(self.labels) * fraction))
        return self._slice(slice(0, cut)), self._slice(slice(cut, None))

    def _slice(self, part: slice) -> "TrainingSet":
        return TrainingSet(self.features.iloc[part].reset_index(drop=True), self.labels[part],
                           self.targets[part], self.actions[part], self.propensities[part],
                           self.times.iloc[part].reset_index(drop=True), self.categorical_columns)


def model_kind(blueprint: Blueprint) -> str:
    return "regressor" if blueprint.decision_type == "regression" else "classifier"


def input_columns(blueprint: Blueprint) -> list[str]:
    columns = list(blueprint.feature_names)
    return columns if blueprint.decision_type == "regression" else columns + ["action"]


def build_training_set(blueprint: Blueprint, table: pd.DataFrame) -> TrainingSet:
    """Selects the blueprint's columns (absent ones stay missing) and types them."""
    columns = input_columns(blueprint)
    features = pd.DataFrame({c: table[c] if c in table else np.nan for c in columns})
    categorical = [c for c in columns if c == "action" or blueprint.context_features.get(c) in ("string", "bool")
                   or blueprint.candidate_features.get(c) in ("string", "bool")
                   or features[c].dtype == object]
    for column in categorical:
        features[column] = features[column].map(lambda v: "" if v is None or v != v else str(v))
    for column in set(columns) - set(categorical):
        features[column] = pd.to_numeric(features[column], errors="coerce").astype(float)
    labels = table["label"].to_numpy(dtype=float)
    targets = labels if model_kind(blueprint) == "regressor" else (labels > 0).astype(int)
    return TrainingSet(features, labels, targets, table["action"].to_numpy(dtype=object),
                       table["propensity"].to_numpy(dtype=float), table["event_timestamp"], categorical)


def fit(blueprint: Blueprint, train: TrainingSet):
    """Fits the blueprint's CatBoost model on the training part."""
    from catboost import CatBoostClassifier, CatBoostRegressor

    params = {**DEFAULT_PARAMS, **blueprint.model_params, "verbose": False, "allow_writing_files": False}
    if model_kind(blueprint) == "classifier":
        if len(set(train.targets.tolist())) < 2:
            raise FailedPrecondition("the training data has only one label class; collect more outcomes")
        model = CatBoostClassifier(**params)
    else:
        model = CatBoostRegressor(**params)
    model.fit(train.features, train.targets, cat_features=train.categorical_columns)
    return model
