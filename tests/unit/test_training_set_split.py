"""Two cases beside test_training_set_parts: a cut inside a ranking's decision moves back one
row at a time to that decision's first row (never past it into the decision before), and
``where`` keeps the rows its mask marks true, also when the mask is given as ones and zeros."""

from __future__ import annotations

from tests.unit.test_training_set_parts import dataset


def test_the_cut_moves_back_to_the_first_row_of_the_decision_it_would_split():
    groups = ["a", "a", "a", "b", "b", "c", "c", "c"]
    train, holdout = dataset(groups, n=8).split(0.5)  # half would cut decision b in two
    assert list(train.groups) == ["a", "a", "a"]
    assert list(holdout.groups) == ["b", "b", "c", "c", "c"]


def test_where_keeps_the_rows_a_mask_of_ones_and_zeros_marks():
    kept = dataset(["a", "a", "b"], n=3).where([1, 0, 1])
    assert list(kept.actions) == ["a0", "a2"] and list(kept.groups) == ["a", "b"]
    assert list(kept.candidates) == [("a0",), ("a2",)]
