"""The serving Pool (``runtime._serving_pool``): built by CatBoost's private initializer
for speed, it must give every model exactly the predictions the public path gives, with
categorical columns, for a classifier and a regressor; anything but a 2-D array (an encoded
frame, whose column names the public Pool keeps) still goes through ``Pool``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from catboost import CatBoostClassifier, CatBoostRegressor, Pool

from services.models.encoding import ModelInput
from services.models.runtime import _predict, _serving_pool
from services.models.registry import ModelKind

INPUT = ModelInput(("tenure", "country", "price", "action"), frozenset({"country", "action"}))
CATEGORICAL = [1, 3]


def rows(count: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"tenure": float(rng.integers(0, 400)) if i % 7 else None, "country": str(rng.choice(["br", "us", "de"])),
             "price": float(rng.lognormal(3, 0.8)), "action": f"item-{rng.integers(0, 30)}"} for i in range(count)]


@pytest.fixture(scope="module")
def models():
    train = INPUT.matrix(rows(400, 1))
    rng = np.random.default_rng(2)
    clicked = (rng.random(400) < 0.3).astype(int)
    minutes = rng.random(400) * 10
    params = dict(iterations=30, depth=3, verbose=False, thread_count=1, random_seed=0)
    return {ModelKind.CLASSIFIER: CatBoostClassifier(**params).fit(Pool(train, clicked, cat_features=CATEGORICAL)),
            ModelKind.REGRESSOR: CatBoostRegressor(**params).fit(Pool(train, minutes, cat_features=CATEGORICAL))}


@pytest.mark.parametrize("kind", [ModelKind.CLASSIFIER, ModelKind.REGRESSOR])
@pytest.mark.parametrize("count", [1, 2, 100])
def test_the_serving_pool_predicts_what_the_public_pool_does(models, kind, count):
    served = INPUT.matrix(rows(count, 3 + count))  # unseen categories among them
    fast = _predict(kind, models[kind], _serving_pool(served, CATEGORICAL))
    public = _predict(kind, models[kind], Pool(served, cat_features=CATEGORICAL, thread_count=1))
    assert fast == public
    assert len(set(fast)) > 1 or count == 1


def test_the_serving_pool_holds_the_rows_and_their_categorical_columns():
    pool = _serving_pool(INPUT.matrix(rows(5, 9)), CATEGORICAL)
    assert (pool.num_row(), pool.num_col()) == (5, 4)
    assert pool.get_cat_feature_indices() == CATEGORICAL


def test_a_frame_is_scored_through_the_public_pool_which_keeps_its_column_names():
    from services.models import runtime

    model = runtime.ServingModel.__new__(runtime.ServingModel)
    model._categorical = CATEGORICAL
    frame = pd.DataFrame(INPUT.matrix(rows(4, 5)), columns=list(INPUT.columns))
    assert model._pool(frame).get_feature_names() == list(INPUT.columns)
    assert model._pool(frame.to_numpy()).num_row() == 4
