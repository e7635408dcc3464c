"""The training set: rows of the training table as model inputs (through the one model-input
encoding), with what the product observed, in decision-time order, split by time into the
part a model is fitted on and the newest part it is evaluated on.

Features the blueprint names that the decisions did not log (added after they were made)
are backfilled from Feast by a point-in-time join at each decision's time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from services.blueprints.spec import Blueprint, DecisionType, feast_column
from services.features.store import LooperFeatureStore
from services.models.encoding import ACTION_COLUMN, ModelInput
from services.models.registry import ModelKind

HOLDOUT_FRACTION = 0.2


@dataclass
class TrainingSet:
    """Model inputs and what the product observed, in decision-time order."""

    input: ModelInput
    features: pd.DataFrame  # encoded model inputs, one column per input
    labels: np.ndarray  # the raw label (aggregated outcome)
    targets: np.ndarray  # what the model fits: 0/1 for classifiers, the label for regression
    actions: np.ndarray
    propensities: np.ndarray
    times: pd.Series

    def split(self, fraction: float = HOLDOUT_FRACTION) -> tuple["TrainingSet", "TrainingSet"]:
        """The oldest rows for training, the newest for the holdout (time-based)."""
        cut = len(self.labels) - max(1, int(len(self.labels) * fraction))
        return self._slice(slice(0, cut)), self._slice(slice(cut, None))

    def _slice(self, part: slice) -> "TrainingSet":
        return TrainingSet(self.input, self.features.iloc[part].reset_index(drop=True), self.labels[part],
                           self.targets[part], self.actions[part], self.propensities[part],
                           self.times.iloc[part].reset_index(drop=True))


def model_kind(blueprint: Blueprint) -> ModelKind:
    return ModelKind.REGRESSOR if blueprint.decision_type == DecisionType.REGRESSION else ModelKind.CLASSIFIER


def build_training_set(blueprint: Blueprint, table: pd.DataFrame) -> TrainingSet:
    """The blueprint's inputs from the table (absent columns are missing values)."""
    model_input = ModelInput.for_table(blueprint, table)
    labels = table["label"].to_numpy(dtype=float)
    targets = labels if model_kind(blueprint) == ModelKind.REGRESSOR else (labels > 0).astype(int)
    return TrainingSet(model_input, model_input.frame(table), labels, targets,
                       table[ACTION_COLUMN].to_numpy(dtype=object), table["propensity"].to_numpy(dtype=float),
                       table["event_timestamp"])


def backfill_features(features: LooperFeatureStore | None, blueprint: Blueprint, table: pd.DataFrame) -> pd.DataFrame:
    """Adds the Feast features the blueprint names but the table lacks, each as it was at
    the row's decision time (point-in-time join)."""
    missing = [ref for ref in blueprint.feast_features if feast_column(ref) not in table.columns]
    if not missing or features is None:
        return table
    entity_frame = table[[*blueprint.entities, "event_timestamp"]].copy()
    joined = features.historical_features(entity_frame, missing)
    for ref in missing:
        table[feast_column(ref)] = joined[feast_column(ref)].to_numpy()
    return table
