"""A ranking's candidates are checked and encoded a column at a time when their values are
plain (the usual case), and one value at a time otherwise. The shortcut never changes what
a caller is told or what a model reads: each check here compares it with the long way."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from services.blueprints.spec import load_blueprint_yaml
from services.decision import decider
from services.decision.decider import CandidateInput, DecideCommand, validate_command
from services.models.encoding import ModelInput, categorical_value, numeric_value
from services.platform.errors import InvalidArgument
from services.platform.validation import MAX_STRING, are_valid_ids, is_valid_id

FEED = load_blueprint_yaml("""
name: feed
decision_type: ranking
entities: [user_id]
default_decision: as_given
features: {candidate: {price: double, stock: int64, tag: string, fresh: bool}}
label: {outcome: clicked, window: 1h}
""")
LAYOUT = load_blueprint_yaml("""
name: layout
decision_type: multi_action
entities: [user_id]
actions: [grid, list, cards]
default_decision: list
features: {candidate: {price: double, stock: int64, tag: string, fresh: bool}}
label: {outcome: clicked, window: 1h}
""")
VALUES = {
    "price": [1.5, 0, -2, None, float("nan"), float("inf"), -float("inf"), True, "1.5", 1e308, 10 ** 400],
    "stock": [3, -1, None, 2.0, False, "3", 2 ** 70],
    "tag": ["new", "", None, "x" * MAX_STRING, "x" * (MAX_STRING + 1), 1, True],
    "fresh": [True, False, None, 1, "true"],
    "colour": ["red"],  # not declared
}
IDS = ["item-1", "item-2", "item-3", "bad id", "", "x" * 129, "a\nb", "ok:1.2_3-4"]


def told(command: DecideCommand) -> list[tuple[str, str]]:
    try:
        validate_command(FEED if command.use_case == "feed" else LAYOUT, command)
    except InvalidArgument as err:
        return [(v.field, v.reason) for v in err.violations]
    return []


def candidates(rng: random.Random, count: int, oddity: float, ids: list[str] | None = None
               ) -> tuple[CandidateInput, ...]:
    """Plain candidates (ids ``item-<i>``, else the next of ``ids``), with each value (and id)
    odd with probability ``oddity``."""
    made = []
    for i in range(count):
        features = {"price": rng.random() * 50, "stock": rng.randrange(100), "tag": f"t{i % 3}", "fresh": i % 2 == 0}
        for name in list(features) + ["colour"]:
            if rng.random() < oddity:
                value = rng.choice(VALUES[name])
                if value is None and rng.random() < 0.5:
                    features.pop(name, None)  # absent rather than null
                else:
                    features[name] = value
        action_id = rng.choice(IDS) if rng.random() < oddity else ids[i % len(ids)] if ids else f"item-{i}"
        made.append(CandidateInput(action_id, features))
    return tuple(made)


def test_the_column_checks_tell_a_caller_exactly_what_the_checks_one_value_at_a_time_do(monkeypatch):
    rng = random.Random(7)
    commands = [DecideCommand("feed", f"d-{n}", {"user_id": "u"}, candidates=candidates(rng, rng.randrange(1, 12), odd))
                for n in range(600) for odd in (0.0, 0.02, 0.3)]
    commands += [DecideCommand("layout", f"l-{n}", {"user_id": "u"},
                               candidates=candidates(rng, rng.randrange(1, 4), odd, ["grid", "cards", "list", "tiles"]))
                 for n in range(300) for odd in (0.0, 0.1)]
    shortcut = [told(c) for c in commands]
    monkeypatch.setattr(decider, "_plainly_typed", lambda features, declared: False)
    monkeypatch.setattr(decider, "_plainly_distinct", lambda blueprint, action_ids: False)
    assert shortcut == [told(c) for c in commands]
    assert sum(1 for found in shortcut if found) > 500, "too few requests had a problem to compare"


def test_plain_candidates_take_the_column_checks():
    plain = candidates(random.Random(3), 100, 0.0)
    assert decider._plainly_typed([c.features for c in plain], FEED.candidate_features)
    assert decider._plainly_distinct(FEED, [c.action_id for c in plain])


@pytest.mark.parametrize("values", [
    ["a", "b-1", "c:2.x_y"], [], ["x" * 128], ["a", ""], ["a\nb"], ["a\n"], ["x" * 129], ["ok", "bad/"], ["é"]])
def test_ids_checked_together_are_accepted_exactly_when_each_is(values):
    assert are_valid_ids(values) == all(is_valid_id(v) for v in values)


def test_a_model_reads_the_same_matrix_whichever_way_a_column_is_encoded():
    rng = random.Random(11)
    model_input = ModelInput(("price", "stock", "tag", "action"), frozenset({"tag", "action"}))
    numeric = [1.5, 0, -3, None, float("nan"), float("inf"), True, "x", 2.5]
    text = ["a", "", None, 1, 2.5, float("nan"), False, "b"]
    for _ in range(300):
        count = rng.randrange(1, 8)
        plain = rng.random() < 0.5
        rows = [{"price": rng.random() if plain else rng.choice(numeric),
                 "stock": rng.randrange(9) if plain else rng.choice(numeric),
                 "tag": f"t{i}" if plain else rng.choice(text), "action": f"a{i}"} for i in range(count)]
        if rng.random() < 0.2:
            rows[0].pop("stock")
        expected = [[categorical_value(r.get(c)) if c in model_input.categorical else numeric_value(r.get(c))
                     for c in model_input.columns] for r in rows]
        got = model_input.matrix(rows)
        assert got.dtype == object and got.shape == (count, 4)
        for row, wanted in zip(got.tolist(), expected):
            assert [type(v) for v in row] == [type(v) for v in wanted]
            assert all(a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))
                       for a, b in zip(row, wanted)), (row, wanted)


def test_numbers_too_large_for_a_float_fail_as_they_did_one_at_a_time():
    model_input = ModelInput(("price",), frozenset())
    with pytest.raises(OverflowError):
        numeric_value(10 ** 400)
    with pytest.raises(OverflowError):
        model_input.matrix([{"price": 1.0}, {"price": 10 ** 400}])
    assert np.isnan(model_input.matrix([{"price": None}])[0, 0])
