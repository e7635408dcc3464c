"""Numeric decisions: the policy picks the grid value with the best predicted product value,
explores around it with a logged propensity, and the value is a model input; the default
value without a model."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from services.blueprints.spec import parse_blueprint
from services.decision.policies import choose_value
from services.models.registry import ModelRegistry
from services.platform.data_dir import DataDir
from services.platform.errors import InvalidArgument
from services.labels.training_table import TrainingTable
from services.trainer.pipeline import TrainingPipeline
from services.trainer.runs import RunState, TrainingRun, Trigger

SPEC = {"name": "bitrate", "decision_type": "numeric", "entities": ["user_id"], "default_decision": 1000,
        "numeric": {"min": 200, "max": 3000, "step": 200, "exploration_width": 2},
        "features": {"context": {"bandwidth": "double"}},
        "labels": [{"outcome": "watched", "aggregation": "sum", "window": "1h"},
                   {"outcome": "rebuffered", "window": "1h"}],
        "product_metric": {"weights": {"watched": 1.0, "rebuffered": -20.0}},
        "policy": {"exploration_rate": 0.2}, "model": {"params": {"iterations": 60, "depth": 3}}}
BLUEPRINT = parse_blueprint(SPEC)
GRID = BLUEPRINT.numeric.grid


def test_the_best_predicted_value_wins_and_the_default_serves_without_a_model():
    greedy = BLUEPRINT.model_copy(update={"policy": BLUEPRINT.policy.model_copy(update={"exploration_rate": 0.0})})
    watched = [v / 100 for v in GRID]  # more bitrate, more watching...
    rebuffered = [0.0 if v <= 1600 else 1.0 for v in GRID]  # ...until the stream stalls (worth -20)
    choice = choose_value(greedy, "d", {"watched": watched, "rebuffered": rebuffered})
    assert choice.value == 1600 and choice.action == "1600" and choice.propensity == 1.0
    assert choose_value(greedy, "d", None).value == 1000


def test_exploration_stays_near_the_best_value_with_the_propensity_it_logs():
    counts = Counter()
    scores = {"watched": [0.0] * len(GRID), "rebuffered": [0.0] * len(GRID)}
    scores["watched"][7] = 1.0  # 1600 is best
    for i in range(5000):
        choice = choose_value(BLUEPRINT, f"id-{i}", scores)
        counts[choice.value] += 1
        expected = 0.2 / 5 + 0.8 * (choice.value == 1600)
        assert choice.propensity == pytest.approx(expected)
    assert set(counts) == {1200, 1400, 1600, 1800, 2000}  # two steps either side
    assert counts[1600] / 5000 == pytest.approx(0.8 + 0.04, abs=0.02)


@pytest.mark.parametrize("changes, field", [
    ({"numeric": None}, "numeric"),
    ({"numeric": {"min": 5, "max": 1, "step": 1}}, "numeric.max"),
    ({"numeric": {"min": 0, "max": 10000, "step": 1}}, "numeric.step"),
    ({"default_decision": 5000}, "default_decision"),
])
def test_a_numeric_blueprint_needs_a_sensible_range(changes, field):
    with pytest.raises(InvalidArgument) as raised:
        parse_blueprint({**SPEC, **changes})
    assert field in [v.field for v in raised.value.violations]


def test_the_value_is_a_model_input_and_the_best_value_is_learned(tmp_path):
    rng = np.random.default_rng(2)
    n = 800
    bandwidth = rng.uniform(500, 3000, n)
    value = rng.choice(GRID, n)
    stalls = value > bandwidth
    frame = pd.DataFrame({
        "decision_id": [f"d{i}" for i in range(n)], "user_id": "u",
        "event_timestamp": [datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=i) for i in range(n)],
        "action": [f"{v:g}" for v in value], "value": value, "propensity": 1 / len(GRID), "bandwidth": bandwidth,
        "label__watched": np.where(stalls, 1.0, value / 100), "label__rebuffered": stalls.astype(float),
    })
    frame["label"] = frame["label__watched"]
    data = DataDir(tmp_path).ensure()
    (data.labels.training / "bitrate").mkdir(parents=True)
    frame.to_parquet(data.labels.training / "bitrate" / "part-1-1.parquet", index=False)
    registry = ModelRegistry(data.models)
    run = TrainingRun("run-000000000002", "bitrate", 1, RunState.RUNNING, Trigger.MANUAL, "2026-01-01T00:00:00+00:00")
    done = TrainingPipeline(TrainingTable(data.labels.training), registry)(run, BLUEPRINT.with_version(1), False)
    assert done.state == RunState.SUCCEEDED and "value" in registry.get("bitrate", done.model_version).feature_columns
    assert done.metrics["product_value"] > done.metrics["logged_value"]  # knowing the bandwidth pays
