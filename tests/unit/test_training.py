"""Building the training set and fitting: the time-based holdout split, the model-input
encoding (the same one serving uses), and a clear refusal when every label has one class."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
import yaml

from services.blueprints.spec import ModelSpec, parse_blueprint
from services.platform.errors import FailedPrecondition
from services.trainer.pipeline import fit
from services.trainer.training_set import build_training_set
from tests.conftest import SIMPLE_BLUEPRINT

BLUEPRINT = parse_blueprint(yaml.safe_load(SIMPLE_BLUEPRINT))  # context: hour_of_day int64, platform string
T0 = datetime(2026, 2, 1, tzinfo=timezone.utc)


def table(labels: list[float]) -> pd.DataFrame:
    n = len(labels)
    return pd.DataFrame({
        "decision_id": [f"d{i}" for i in range(n)],
        "event_timestamp": [T0 + timedelta(minutes=i) for i in range(n)],
        "user_id": [f"u{i % 3}" for i in range(n)],
        "action": ["true" if i % 2 else "false" for i in range(n)],
        "propensity": [0.9] * n,
        "hour_of_day": [i % 24 for i in range(n)],
        "platform": [None if i == 0 else ("ios" if i % 3 else "web") for i in range(n)],
        "label": labels,
    })


def test_the_holdout_is_the_newest_fifth_of_the_rows():
    dataset = build_training_set(BLUEPRINT, table([float(i % 2) for i in range(10)]))
    train, holdout = dataset.split()
    assert list(train.times) == [T0 + timedelta(minutes=i) for i in range(8)]
    assert list(holdout.times) == [T0 + timedelta(minutes=i) for i in (8, 9)]
    assert holdout.actions.tolist() == ["false", "true"] and holdout.labels.tolist() == [0.0, 1.0]
    assert len(build_training_set(BLUEPRINT, table([0.0, 1.0, 1.0])).split()[1].labels) == 1  # never empty


def test_columns_are_the_blueprints_inputs_typed_for_catboost():
    dataset = build_training_set(BLUEPRINT, table([0.0, 2.0, 0.0, 1.0]))
    assert list(dataset.features.columns) == list(dataset.input.columns) == ["hour_of_day", "platform", "action"]
    assert dataset.input.categorical_columns == ["platform", "action"]
    assert dataset.features["platform"].tolist() == ["", "ios", "ios", "web"]  # missing category: ""
    assert dataset.features["hour_of_day"].dtype == float
    assert dataset.targets.tolist() == [0, 1, 0, 1] and dataset.labels.tolist() == [0.0, 2.0, 0.0, 1.0]


def test_a_feature_the_table_lacks_is_missing_not_an_error():
    dataset = build_training_set(BLUEPRINT, table([0.0, 1.0]).drop(columns=["hour_of_day"]))
    assert np.isnan(dataset.features["hour_of_day"]).all()


def test_one_label_class_is_refused_with_a_reason():
    train, _ = build_training_set(BLUEPRINT, table([0.0] * 30)).split()
    with pytest.raises(FailedPrecondition, match="has only one class"):
        fit(BLUEPRINT, train)


def test_fit_learns_the_signal():
    labels = [float(i % 24 >= 12) for i in range(200)]
    train, holdout = build_training_set(BLUEPRINT, table(labels)).split()
    small = BLUEPRINT.model_copy(update={"model": ModelSpec(params={"iterations": 30, "depth": 2})})
    model = fit(small, train)
    late, early = holdout.features.copy(), holdout.features.copy()
    late["hour_of_day"], early["hour_of_day"] = 20.0, 3.0
    assert (model.predict_proba(late)[:, 1] > model.predict_proba(early)[:, 1]).all()


def test_training_and_serving_encode_a_logged_value_alike():
    from services.models.encoding import ModelInput

    table_ = table([0.0, 1.0, 1.0])
    dataset = build_training_set(BLUEPRINT, table_)
    served = [dataset.input.row(row) for row in table_.to_dict("records")]
    trained = dataset.features.astype(object).values.tolist()
    assert [[("nan" if v != v else v) for v in r] for r in served] == \
        [[("nan" if v != v else v) for v in r] for r in trained]
    assert ModelInput.from_meta(dataset.input.to_meta()) == dataset.input
