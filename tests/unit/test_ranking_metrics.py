"""A ranking's offline metrics on a holdout (NDCG@10, MRR, the logged value per decision
and the off-policy value of the model's greedy order), each against values computed by
hand on a few small decisions; ties in the model's scores keep the order the items were
listed in, so that a metric never depends on the sort algorithm."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from services.blueprints.spec import parse_blueprint
from services.models.encoding import ModelInput
from services.trainer.evaluation import evaluate, ndcg_at_k, ranking_metrics, ranking_policy_value, reciprocal_rank
from services.trainer.training_set import TrainingSet

SPEC = {"name": "feed", "decision_type": "ranking", "entities": ["user_id"], "default_decision": "as_given",
        "features": {"candidate": {"quality": "double"}}, "label": {"outcome": "clicked", "window": "10m"}}
ONE_LABEL = parse_blueprint({**SPEC, "product_metric": {"outcome_value": 2.0}})  # a click is worth 2
TWO_LABELS = parse_blueprint({
    **{k: v for k, v in SPEC.items() if k != "label"},
    "labels": [{"outcome": "clicked", "window": "10m"},
               {"outcome": "bought", "window": "10m", "aggregation": "sum"}],
    "product_metric": {"weights": {"clicked": 1.0, "bought": 3.0}}})


class ScoresQuality:
    """A one-label model that scores each item by its ``quality`` feature."""

    def score_encoded(self, frame):
        return list(frame["quality"])


class PredictsBoth:
    """A two-label model: the click probability is the ``quality`` feature, the expected
    purchases the ``bought_hint`` feature."""

    def score_encoded(self, frame):
        return list(frame["quality"])

    def predict_encoded(self, frame):
        return {"clicked": list(frame["quality"]), "bought": list(frame["bought_hint"])}


def holdout(groups, quality, labels, positions, propensities, outcomes=None, **columns) -> TrainingSet:
    n = len(labels)
    features = pd.DataFrame({"quality": quality, **columns})
    return TrainingSet(
        input=ModelInput(tuple(features.columns), frozenset()), features=features,
        labels=np.array(labels, dtype=float), targets=(np.array(labels) > 0).astype(int),
        actions=np.array([f"item{i}" for i in range(n)], dtype=object),
        propensities=np.array(propensities, dtype=float), times=pd.Series(range(n)),
        outcomes=outcomes or {},
        groups=None if groups is None else np.array(groups, dtype=object),
        positions=None if positions is None else np.array(positions, dtype=int))


# Two logged decisions. d1 shows rows 0-2: the model orders them 0, 1, 2 (quality 0.9, 0.5,
# 0.1); the logging policy put row 0 in slot 0, row 2 in slot 1 and row 1 in slot 2. d2 shows
# rows 3-4: the model orders them 4, 3; the logging policy did the same.
TWO_DECISIONS = dict(groups=["d1", "d1", "d1", "d2", "d2"], quality=[0.9, 0.5, 0.1, 0.2, 0.8],
                     labels=[1.0, 0.0, 1.0, 1.0, 0.0], positions=[0, 2, 1, 1, 0],
                     propensities=[0.25, 0.2, 0.4, 0.25, 0.5])


def test_ranking_metrics_score_the_models_order_of_each_decision_against_its_labels():
    metrics = ranking_metrics(ONE_LABEL, ScoresQuality(), holdout(**TWO_DECISIONS))
    # d1 in the model's order has gains 1, 0, 1; the ideal order 1, 1, 0
    d1 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    d2 = (1 / math.log2(3)) / 1  # gains 0, 1 in the model's order
    assert metrics["ndcg_at_10"] == pytest.approx((d1 + d2) / 2)
    assert metrics["mrr"] == pytest.approx((1 + 1 / 2) / 2)  # first relevant place: 1 in d1, 2 in d2


def test_ranking_metrics_logged_value_is_what_the_shown_items_earned_per_decision():
    metrics = ranking_metrics(ONE_LABEL, ScoresQuality(), holdout(**TWO_DECISIONS))
    # a click is worth 2: d1 earned 2 + 0 + 2, d2 earned 2 + 0
    assert metrics["logged_value"] == pytest.approx((4 + 2) / 2)


def test_ranking_metrics_product_value_counts_items_logged_where_the_model_would_put_them():
    metrics = ranking_metrics(ONE_LABEL, ScoresQuality(), holdout(**TWO_DECISIONS))
    # slot 0: the model and the log agree on row 0 (d1, weight 1/0.25, earned 2) and row 4
    # (d2, weight 1/0.5, earned 0): (4 * 2 + 2 * 0) / (4 + 2). Slot 1: only row 3 (d2, weight
    # 1/0.25, earned 2) agrees: 2. Slot 2: d1 logged row 1 where the model puts row 2: nothing.
    assert metrics["product_value"] == pytest.approx(8 / 6 + 2)


def test_ranking_metrics_of_a_holdout_without_decisions_to_group_by_are_empty():
    assert ranking_metrics(ONE_LABEL, ScoresQuality(), holdout(None, [0.5], [1.0], None, [1.0])) == {}


def test_ranking_ndcg_looks_at_the_first_ten_places_only():
    quality = [1.0 - i / 20 for i in range(12)]  # the model keeps the listed order
    labels = [0.0] * 12
    labels[10] = 1.0  # the only relevant item: eleventh in the model's order
    data = holdout(["d"] * 12, quality, labels, list(range(12)), [1.0] * 12)
    metrics = ranking_metrics(ONE_LABEL, ScoresQuality(), data)
    assert metrics["ndcg_at_10"] == 0.0
    assert metrics["mrr"] == pytest.approx(1 / 11)


def test_evaluate_of_a_ranking_weighs_every_label_and_ranks_by_expected_value():
    # one decision of two items: the model expects row 0 to be clicked more (0.9 > 0.5) but
    # row 1 to earn more (0.5 + 3 * 0.5 = 2.0 > 0.9 + 3 * 0.0); the log shows row 1 first.
    data = holdout(["d"] * 2, [0.9, 0.5], [1.0, 0.0], [1, 0], [0.5, 0.5],
                   outcomes={"clicked": np.array([1.0, 0.0]), "bought": np.array([0.0, 2.0])},
                   bought_hint=[0.0, 0.5])
    metrics = evaluate(TWO_LABELS, PredictsBoth(), data, base_rate=0.5)
    assert metrics["logged_value"] == pytest.approx(1.0 * 1 + 3.0 * 2)  # a click, and two purchases worth 3
    # the model's greedy order (row 1, row 0) is the logged one: every slot counts
    assert metrics["product_value"] == pytest.approx(6.0 + 1.0)
    # NDCG and MRR judge the primary label's scores: row 0 (clicked) first
    assert metrics["ndcg_at_10"] == pytest.approx(1.0) and metrics["mrr"] == pytest.approx(1.0)
    assert metrics["bought.rmse"] == pytest.approx(math.sqrt((0.0 ** 2 + 1.5 ** 2) / 2))
    assert metrics["auc"] == pytest.approx(1.0) and metrics["rows"] == 2.0


# Twenty items the model scores in two tiers (1.0 for the even rows, 0.5 for the odd ones):
# within a tier the model has no preference, so the items keep the order they were listed in.
TIERS = np.array([1.0, 0.5] * 10)


def test_ndcg_and_reciprocal_rank_keep_the_listed_order_among_equally_scored_items():
    relevance = np.zeros(20)
    relevance[4] = 1.0  # third of the top tier (rows 0, 2, 4, ...)
    assert ndcg_at_k(relevance, TIERS, 10) == pytest.approx(1 / math.log2(4))
    assert reciprocal_rank(relevance, TIERS) == pytest.approx(1 / 3)


def test_ranking_policy_value_keeps_the_listed_order_among_equally_valued_items():
    rows = np.arange(20)
    positions = np.array([list(range(0, 20, 2)).index(r) if r % 2 == 0 else 10 + r // 2 for r in rows])
    earned = np.zeros(20)
    earned[4] = 1.0
    propensities = np.full(20, 0.5)
    # the log shows the items in the model's order with ties kept as listed: every slot counts
    value = ranking_policy_value([rows], TIERS, positions, propensities, earned)
    assert value == pytest.approx(1.0)
    assert positions[4] == 2 and positions[6] == 3
