"""The one model-input encoding and the training set built through it: which columns are
categorical, how missing values look to CatBoost, how a table becomes input rows, how the
holdout keeps its rows aligned, and how features added later are backfilled from Feast."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from services.blueprints.spec import parse_blueprint
from services.models.encoding import ModelInput, categorical_value, numeric_value
from services.models.registry import ModelKind
from services.trainer.training_set import backfill_features, build_training_set, model_kind

T0 = datetime(2026, 4, 1, tzinfo=timezone.utc)


def blueprint(decision_type="binary", default=False, feast=(), context=None, candidate=None):
    return parse_blueprint({
        "name": "encoding_case", "decision_type": decision_type, "entities": ["user_id"],
        "default_decision": default, "label": {"outcome": "clicked", "window": "1h"},
        "features": {"feast": list(feast), "context": context or {}, "candidate": candidate or {}}})


def test_a_categorical_value_is_its_text_and_missing_is_the_empty_category():
    assert categorical_value(None) == "" and categorical_value(math.nan) == ""
    assert categorical_value(1.5) == "1.5" and categorical_value(3) == "3"
    assert categorical_value(True) == "True" and categorical_value("ios") == "ios"


def test_a_numeric_value_is_a_float_and_missing_or_text_is_nan():
    assert numeric_value(3) == 3.0 and isinstance(numeric_value(3), float) and numeric_value(True) == 1.0
    assert math.isnan(numeric_value(None)) and math.isnan(numeric_value("12"))


def test_declared_types_decide_categorical_columns_and_undeclared_feast_columns_follow_the_table():
    bp = blueprint(feast=["user_profile:country", "user_profile:tenure_days", "user_profile:absent"],
                   context={"hour_of_day": "int64", "platform": "string", "is_vip": "bool"})
    table = pd.DataFrame({
        "user_profile__country": ["de", "fr"],  # text: categorical
        "user_profile__tenure_days": [3.0, 40.0],  # numbers: numeric
        "hour_of_day": [None, None],  # declared int64: numeric even though the table holds no number
    })
    encoding = ModelInput.for_table(bp, table)
    assert encoding.columns == ("user_profile__country", "user_profile__tenure_days", "user_profile__absent",
                                "hour_of_day", "is_vip", "platform", "action")
    # platform and is_vip are declared categorical though the table lacks them; an absent Feast column is numeric
    assert encoding.categorical_columns == ["user_profile__country", "is_vip", "platform", "action"]


def test_a_regression_model_takes_no_action_column():
    bp = blueprint(decision_type="regression", default="1.0", context={"hour_of_day": "int64"})
    assert ModelInput.for_table(bp, pd.DataFrame()).columns == ("hour_of_day",)


def test_a_table_becomes_one_input_row_per_table_row_in_input_order():
    encoding = ModelInput(("x", "kind", "action"), frozenset({"kind", "action"}))
    table = pd.DataFrame({"action": ["a", "b"], "kind": [None, "k"], "x": [1, None]}, index=[10, 20])
    frame = encoding.frame(table)
    assert list(frame.columns) == ["x", "kind", "action"] and list(frame.index) == [0, 1]
    assert frame["kind"].tolist() == ["", "k"] and frame["action"].tolist() == ["a", "b"]
    assert frame["x"].iloc[0] == 1.0 and math.isnan(frame["x"].iloc[1])
    assert len(ModelInput((), frozenset()).frame(table)) == 2  # even with no inputs, one row per row


def table(labels, propensities=None):
    n = len(labels)
    return pd.DataFrame({
        "decision_id": [f"d{i}" for i in range(n)], "user_id": [f"u{i}" for i in range(n)],
        "event_timestamp": [T0 + timedelta(minutes=i) for i in range(n)],
        "action": ["true" if i % 2 else "false" for i in range(n)],
        "propensity": propensities or [1] * n, "hour_of_day": list(range(n)), "label": labels})


def test_a_classifier_fits_whether_the_label_is_positive_and_a_regressor_fits_the_label():
    assert model_kind(blueprint()) == ModelKind.CLASSIFIER
    regression = blueprint(decision_type="regression", default="0", context={"hour_of_day": "int64"})
    assert model_kind(regression) == ModelKind.REGRESSOR
    classified = build_training_set(blueprint(context={"hour_of_day": "int64"}), table([0, 3, 1, 0]))
    assert classified.targets.tolist() == [0, 1, 1, 0] and classified.labels.tolist() == [0.0, 3.0, 1.0, 0.0]
    regressed = build_training_set(regression, table([0, 3, 1, 0]))
    assert regressed.targets.tolist() == [0.0, 3.0, 1.0, 0.0]
    assert regressed.labels.dtype == float and regressed.propensities.dtype == float


def test_the_split_keeps_every_part_of_a_row_together():
    dataset = build_training_set(blueprint(context={"hour_of_day": "int64"}),
                                 table([float(i % 2) for i in range(10)], propensities=[0.1 * i for i in range(10)]))
    train, holdout = dataset.split()
    assert holdout.propensities.tolist() == pytest.approx([0.8, 0.9])
    assert holdout.features["hour_of_day"].tolist() == [8.0, 9.0] and list(holdout.features.index) == [0, 1]
    assert list(holdout.features.columns) == ["hour_of_day", "action"]
    assert train.targets.tolist() == [0, 1] * 4 and holdout.actions.tolist() == ["false", "true"]
    assert list(train.features.index) == list(range(8)) and list(train.times.index) == list(range(8))
    assert list(holdout.times.index) == [0, 1]


class FakeFeast:
    """Feast's point-in-time join, faked: a feature's value is the row's hour times ten."""

    def __init__(self):
        self.calls = []

    def historical_features(self, entity_frame, refs):
        self.calls.append((entity_frame.copy(), list(refs)))
        hours = [t.hour * 60 + t.minute for t in entity_frame["event_timestamp"]]
        return pd.DataFrame({ref.replace(":", "__"): [h * 10 for h in hours] for ref in refs})


def test_features_named_after_the_decisions_were_made_are_backfilled_as_of_each_decision():
    bp = blueprint(feast=["user_profile:sessions", "user_profile:tenure"])
    logged = table([0, 1, 0]).assign(user_profile__sessions=[5, 6, 7])
    feast = FakeFeast()
    filled = backfill_features(feast, bp, logged)
    assert filled["user_profile__tenure"].tolist() == [0, 10, 20]
    assert filled["user_profile__sessions"].tolist() == [5, 6, 7]  # logged values are kept, not refetched
    entity_frame, refs = feast.calls[0]
    assert refs == ["user_profile:tenure"]
    assert list(entity_frame.columns) == ["user_id", "event_timestamp"]
    assert entity_frame["user_id"].tolist() == ["u0", "u1", "u2"]


def test_nothing_is_fetched_when_every_feature_was_logged_or_there_is_no_feature_store():
    bp = blueprint(feast=["user_profile:sessions"])
    logged = table([0, 1]).assign(user_profile__sessions=[5, 6])
    feast = FakeFeast()
    assert backfill_features(feast, bp, logged) is logged and feast.calls == []
    unlogged = table([0, 1])
    assert backfill_features(None, bp, unlogged) is unlogged
    assert "user_profile__sessions" not in unlogged.columns
    assert np.isnan(build_training_set(bp, unlogged).features["user_profile__sessions"]).all()
