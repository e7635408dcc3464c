"""The promotion rule as a table: a new model replaces the live one only when it is better
on the product metric, or, when the product metric cannot be compared, on AUC then RMSE."""

from __future__ import annotations

import pytest

from services.trainer.pipeline import wins

NAN = float("nan")


@pytest.mark.parametrize("new, live, promoted", [
    ({"product_value": -1.0, "auc": 0.1}, {}, True),  # no live model: the first model goes live
    ({"product_value": 0.2, "auc": 0.5}, {"product_value": 0.1, "auc": 0.9}, True),  # value beats a better AUC
    ({"product_value": 0.1, "auc": 0.9}, {"product_value": 0.2, "auc": 0.5}, False),
    ({"product_value": 0.1, "auc": 0.9}, {"product_value": 0.1, "auc": 0.5}, False),  # a tie keeps the live model
    ({"product_value": NAN, "auc": 0.8}, {"product_value": 0.3, "auc": 0.7}, True),  # NaN value: fall back to AUC
    ({"product_value": 0.5, "auc": 0.6}, {"product_value": NAN, "auc": 0.7}, False),  # on either side
    ({"auc": 0.71}, {"auc": 0.70}, True),
    ({"auc": 0.70}, {"auc": 0.71}, False),
    ({"auc": 0.70}, {"auc": 0.70}, False),
    ({"rmse": 1.0}, {"rmse": 2.0}, True),  # regression: lower error wins
    ({"rmse": 2.0}, {"rmse": 1.0}, False),
    ({"rmse": 1.0}, {"rmse": 1.0}, False),
    ({"auc": NAN, "rmse": 1.0}, {"auc": 0.6, "rmse": 3.0}, True),  # NaN AUC: fall back to RMSE
    ({"auc": NAN}, {"auc": NAN}, False),  # nothing comparable: keep the live model
    ({"product_value": 0.9}, {"auc": 0.6}, False),  # no metric in common
])
def test_promotion_rule(new, live, promoted):
    assert wins(new, live) is promoted
