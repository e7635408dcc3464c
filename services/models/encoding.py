"""The one model-input encoding: which columns a model takes, in which order, which are
categorical, and how a value becomes what CatBoost reads. Training, offline evaluation and
serving all go through it, so a value the Decision service logged is encoded at serving
time exactly as it was when the model was trained (no train/serve skew).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from services.blueprints.spec import Blueprint, DecisionType
from services.decisions.record import FeatureScalar

# The action (or ranked item) is an input too: one model scores every action, so the policy
# can compare "send" with "don't send" for the same subject.
ACTION_COLUMN = "action"
# A numeric decision's chosen value is an input instead: the model predicts the outcomes of
# each value, and the policy picks the best.
VALUE_COLUMN = "value"


def categorical_value(value: FeatureScalar) -> str:
    """A categorical value: missing is the empty category, everything else its text."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def numeric_value(value: FeatureScalar) -> float:
    """A numeric value: missing or non-numeric is NaN (CatBoost's missing value)."""
    if value is None or isinstance(value, str):
        return math.nan
    return float(value)


def _encoded_column(values: list, categorical: bool) -> list | np.ndarray:
    """A column's values as ``categorical_value`` or ``numeric_value`` gives each, without a
    call per value when the column holds what it usually does (only text in a categorical
    column, only numbers in a numeric one). The bench's ranking of 100 candidates encodes 700
    values a call: 62 us against 83 one call a value."""
    kinds = set(map(type, values))
    if categorical:
        return values if kinds <= {str} else [categorical_value(v) for v in values]
    if kinds <= {float, int} and kinds:
        try:
            return np.asarray(values, dtype=np.float64)
        except OverflowError:  # an int too large for a float
            pass
    return [numeric_value(v) for v in values]


@dataclass(frozen=True)
class ModelInput:
    columns: tuple[str, ...]
    categorical: frozenset[str]

    @classmethod
    def for_table(cls, blueprint: Blueprint, table: pd.DataFrame) -> "ModelInput":
        """The blueprint's inputs; a column is categorical when the blueprint declares it a
        string or bool, when it is the action, or (Feast features, whose types the blueprint
        does not state) when the table holds text in it."""
        columns = list(blueprint.feature_names)
        if blueprint.decision_type == DecisionType.NUMERIC:
            columns.append(VALUE_COLUMN)
        elif blueprint.decision_type != DecisionType.REGRESSION:
            columns.append(ACTION_COLUMN)
        categorical = set()
        for column in columns:
            declared = blueprint.feature_type(column)
            if column == ACTION_COLUMN or (declared is not None and declared.is_categorical):
                categorical.add(column)
            elif declared is None and column in table and table[column].dtype == object:
                categorical.add(column)
        return cls(tuple(columns), frozenset(categorical))

    @property
    def categorical_columns(self) -> list[str]:
        """The categorical columns in input order (what CatBoost's ``cat_features`` wants)."""
        return [c for c in self.columns if c in self.categorical]

    def row(self, features: dict[str, FeatureScalar]) -> list:
        """One model input row from a decision's feature values."""
        return [categorical_value(features.get(c)) if c in self.categorical else numeric_value(features.get(c))
                for c in self.columns]

    def matrix(self, rows: list[dict[str, FeatureScalar]]) -> np.ndarray:
        """Model input rows from decisions' feature values (serving): one object array,
        filled column by column, which CatBoost reads about 2.5 times faster than the same
        rows as lists (100 rows with two categorical columns: 0.25 ms against 0.65)."""
        data = np.empty((len(rows), len(self.columns)), dtype=object)
        for j, column in enumerate(self.columns):
            data[:, j] = _encoded_column([row.get(column) for row in rows], column in self.categorical)
        return data

    def frame(self, table: pd.DataFrame) -> pd.DataFrame:
        """Model input rows from a table of logged values (training, evaluation); a column
        the table lacks is missing in every row."""
        encoded = {}
        for column in self.columns:
            encode = categorical_value if column in self.categorical else numeric_value
            values = table[column].tolist() if column in table else [None] * len(table)
            encoded[column] = [encode(v) for v in values]
        return pd.DataFrame(encoded, columns=list(self.columns), index=range(len(table)))

    def to_meta(self) -> dict:
        return {"feature_columns": list(self.columns), "categorical_columns": self.categorical_columns}

    @classmethod
    def from_meta(cls, meta: dict) -> "ModelInput":
        return cls(tuple(meta["feature_columns"]), frozenset(meta["categorical_columns"]))
