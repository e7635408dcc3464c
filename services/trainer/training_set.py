"""The training set: rows of the training table as model inputs (through the one model-input
encoding), with what the product observed, in decision-time order, split by time into the
part a model is fitted on and the newest part it is evaluated on.

Features the blueprint names that the decisions did not log (added after they were made)
are backfilled from Feast by a point-in-time join at each decision's time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from services.blueprints.spec import Blueprint, DecisionType, LabelKind, LabelSpec, feast_column
from services.features.store import LooperFeatureStore
from services.labels.training_table import CANDIDATES_COLUMN, candidate_actions, label_column
from services.models.encoding import ACTION_COLUMN, ModelInput
from services.models.registry import ModelKind

HOLDOUT_FRACTION = 0.2


@dataclass
class TrainingSet:
    """Model inputs and what the product observed, in decision-time order."""

    input: ModelInput
    features: pd.DataFrame  # encoded model inputs, one column per input
    labels: np.ndarray  # the primary label (aggregated outcome)
    targets: np.ndarray  # what the primary model fits: 0/1 for a probability, the label for a value
    actions: np.ndarray
    propensities: np.ndarray
    times: pd.Series
    outcomes: dict[str, np.ndarray] = field(default_factory=dict)  # every label's values, the primary first
    groups: np.ndarray | None = None  # ranking: the decision each row (shown item) belongs to
    positions: np.ndarray | None = None  # ranking: the slot the item was shown in
    candidates: np.ndarray | None = None  # per row, the actions the decision chose among (a tuple; () = all)

    def targets_of(self, outcome: str, kind: ModelKind) -> np.ndarray:
        values = self.outcomes[outcome]
        return (values > 0).astype(int) if kind == ModelKind.CLASSIFIER else values

    def split(self, fraction: float = HOLDOUT_FRACTION) -> tuple["TrainingSet", "TrainingSet"]:
        """The oldest rows for training, the newest for the holdout (time-based; a ranking's
        rows stay together, since they share their decision's time)."""
        cut = len(self.labels) - max(1, int(len(self.labels) * fraction))
        while self.groups is not None and 0 < cut < len(self.groups) and self.groups[cut] == self.groups[cut - 1]:
            cut -= 1
        return self._slice(slice(0, cut)), self._slice(slice(cut, None))

    def where(self, mask: np.ndarray) -> "TrainingSet":
        """The rows where ``mask`` is true, in their order."""
        return self._slice(np.asarray(mask, dtype=bool))

    def _slice(self, part: slice) -> "TrainingSet":
        return TrainingSet(self.input, self.features.iloc[part].reset_index(drop=True), self.labels[part],
                           self.targets[part], self.actions[part], self.propensities[part],
                           self.times.iloc[part].reset_index(drop=True),
                           {outcome: values[part] for outcome, values in self.outcomes.items()},
                           None if self.groups is None else self.groups[part],
                           None if self.positions is None else self.positions[part],
                           None if self.candidates is None else self.candidates[part])


def label_kind(blueprint: Blueprint, label: LabelSpec) -> ModelKind:
    """A regression use case predicts values; otherwise each label's kind says."""
    if blueprint.decision_type == DecisionType.REGRESSION or label.model_kind == LabelKind.VALUE:
        return ModelKind.REGRESSOR
    return ModelKind.CLASSIFIER


def model_kind(blueprint: Blueprint) -> ModelKind:
    """The primary label's model kind."""
    return label_kind(blueprint, blueprint.primary_label)


def build_training_set(blueprint: Blueprint, table: pd.DataFrame) -> TrainingSet:
    """The blueprint's inputs from the table (absent columns are missing values) and every
    label's values (a label the rows predate takes its missing value)."""
    model_input = ModelInput.for_table(blueprint, table)
    outcomes = {label.outcome: _label_values(table, label, primary=i == 0)
                for i, label in enumerate(blueprint.all_labels)}
    labels = next(iter(outcomes.values()))
    targets = labels if model_kind(blueprint) == ModelKind.REGRESSOR else (labels > 0).astype(int)
    ranking = blueprint.decision_type == DecisionType.RANKING and "position" in table
    return TrainingSet(model_input, model_input.frame(table), labels, targets,
                       table[ACTION_COLUMN].to_numpy(dtype=object), table["propensity"].to_numpy(dtype=float),
                       table["event_timestamp"], outcomes,
                       table["decision_id"].to_numpy(dtype=object) if ranking else None,
                       table["position"].to_numpy(dtype=int) if ranking else None,
                       offered_actions(table))


def offered_actions(table: pd.DataFrame) -> np.ndarray:
    """Per row, the actions its decision chose among, as a tuple (() = every action: also
    for rows of parts written before the table kept them)."""
    column = table[CANDIDATES_COLUMN] if CANDIDATES_COLUMN in table else pd.Series([""] * len(table))
    decoded: dict = {}
    offered = np.empty(len(table), dtype=object)
    for i, text in enumerate(column.tolist()):
        key = text if isinstance(text, str) else ""
        if key not in decoded:
            decoded[key] = candidate_actions(key)
        offered[i] = decoded[key]
    return offered


def _label_values(table: pd.DataFrame, label: LabelSpec, primary: bool) -> np.ndarray:
    column = label_column(label.outcome)
    if column not in table:
        column = "label" if primary else None  # rows written before labels had their own columns
    if column is None:
        return np.full(len(table), label.missing_value, dtype=float)
    return table[column].fillna(label.missing_value).to_numpy(dtype=float)


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
