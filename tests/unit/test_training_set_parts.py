"""Parts of a training set: the time-based split never cuts a ranking's rows apart, and a
selection keeps every per-row array aligned with the rows it kept."""

from __future__ import annotations

import numpy as np
import pandas as pd

from services.models.encoding import ModelInput
from services.trainer.training_set import TrainingSet


def dataset(groups=None, n=10) -> TrainingSet:
    features = pd.DataFrame({"x": [float(i) for i in range(n)]})
    return TrainingSet(
        input=ModelInput(("x",), frozenset()), features=features,
        labels=np.arange(n, dtype=float), targets=np.arange(n) % 2,
        actions=np.array([f"a{i}" for i in range(n)], dtype=object), propensities=np.linspace(0.1, 1.0, n),
        times=pd.Series(pd.date_range("2026-01-01", periods=n, freq="min")),
        outcomes={"clicked": np.arange(n, dtype=float), "bought": -np.arange(n, dtype=float)},
        groups=None if groups is None else np.array(groups, dtype=object),
        positions=None if groups is None else np.array([i % 3 for i in range(n)]),
        # (the extra empty tuple keeps numpy from making a 2-D array of the 1-tuples)
        candidates=np.array([(f"a{i}",) for i in range(n)] + [()], dtype=object)[:n])


def rows(part: TrainingSet) -> list[float]:
    return list(part.features["x"])


def test_without_groups_the_newest_fifth_is_the_holdout():
    train, holdout = dataset().split()
    assert rows(train) == [float(i) for i in range(8)] and rows(holdout) == [8.0, 9.0]


def test_a_rankings_rows_stay_together_on_the_side_of_the_cut_where_they_begin():
    groups = ["a", "a", "a", "b", "b", "b", "c", "c", "c", "d"]
    train, holdout = dataset(groups).split()  # the cut at 8 falls inside c: c goes to the holdout whole
    assert list(train.groups) == groups[:6] and list(holdout.groups) == groups[6:]
    assert rows(holdout) == [6.0, 7.0, 8.0, 9.0]


def test_a_single_ranking_is_never_split_even_if_the_training_part_is_left_empty():
    train, holdout = dataset(["only"] * 5, n=5).split()
    assert len(train.labels) == 0 and list(holdout.groups) == ["only"] * 5


def test_a_cut_between_two_rankings_moves_nothing():
    groups = ["a"] * 4 + ["b"] * 4 + ["c"] * 2
    train, holdout = dataset(groups).split()
    assert list(holdout.groups) == ["c", "c"] and len(train.labels) == 8


def test_a_selection_keeps_every_per_row_array_aligned():
    part = dataset(["a", "a", "b", "b", "c", "c", "d", "d", "e", "e"]).where(np.arange(10) % 3 == 0)
    kept = [0, 3, 6, 9]
    assert rows(part) == [float(i) for i in kept] and list(part.features.index) == [0, 1, 2, 3]
    assert list(part.labels) == kept and list(part.targets) == [i % 2 for i in kept]
    assert list(part.actions) == [f"a{i}" for i in kept]
    assert list(part.propensities) == list(np.linspace(0.1, 1.0, 10)[kept])
    assert list(part.times) == list(pd.date_range("2026-01-01", periods=10, freq="min")[kept])
    assert list(part.times.index) == [0, 1, 2, 3]
    assert {k: list(v) for k, v in part.outcomes.items()} == {"clicked": kept, "bought": [-i for i in kept]}
    assert list(part.groups) == ["a", "b", "d", "e"] and list(part.positions) == [i % 3 for i in kept]
    assert list(part.candidates) == [(f"a{i}",) for i in kept]
