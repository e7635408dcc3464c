"""The Decider's contract with a caller, field by field: what a logged decision holds, what
a numeric (regression) decision answers, how candidates are checked, and how a decision is
found again by id."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from services.blueprints.store import BlueprintStore
from services.decision.decider import MAX_CANDIDATES, CandidateInput, DecideCommand, Decider, NoModels
from services.decisions.log import DecisionLog
from services.decisions.record import DefaultReason
from services.platform.data_dir import DataDir
from services.platform.errors import InvalidArgument, NotFound

NOW = datetime(2026, 6, 1, 8, 30, tzinfo=timezone.utc)
BINARY = """
name: send
decision_type: binary
entities: [user_id]
default_decision: false
features: {context: {hour_of_day: int64, vip: bool, ratio: double}}
label: {outcome: clicked, window: 1h}
"""
MULTI = """
name: layout
decision_type: multi_action
entities: [user_id]
actions: [grid, list, cards]
default_decision: list
features: {candidate: {price: double}}
label: {outcome: clicked, window: 1h}
"""
REGRESSION = """
name: bitrate
decision_type: regression
entities: [user_id]
default_decision: 2.5
features: {context: {hour_of_day: int64}}
label: {outcome: watched, window: 1h}
"""


class Features:
    def __init__(self):
        self.asked = []

    def fetch(self, blueprint, subject):
        self.asked.append((blueprint.name, dict(subject)))
        return {"user_profile__sessions": 4.0}


class Models(NoModels):
    def __init__(self, scores):
        self.scores, self.rows = scores, []

    def get(self, use_case):
        models = self

        class Model:
            version = "m000002"

            def score(self, rows):
                models.rows.append(rows)
                return models.scores

        return Model() if self.scores is not None else None

    def load_failed(self, use_case):
        return False


@pytest.fixture()
def decider(tmp_path):
    blueprints = BlueprintStore(tmp_path / "blueprints")
    for spec in (BINARY, MULTI, REGRESSION):
        blueprints.apply(spec)
    blueprints.apply(BINARY.replace("window: 1h", "window: 2h"))  # send is at version 2
    log = DecisionLog(DataDir(tmp_path).ensure().decisions, clock=lambda: NOW)
    made = []

    def make(scores=None):
        d = Decider(blueprints, log, features=Features(), models=Models(scores), clock=lambda: NOW)
        made.append(d)
        return d
    yield make
    log.close()


def violations(decider, command):
    with pytest.raises(InvalidArgument) as raised:
        decider.decide(command)
    return [(v.field, v.reason) for v in raised.value.violations]


def test_a_logged_decision_holds_the_request_the_features_and_the_blueprint_version(decider):
    d = decider()
    record, replayed = d.decide(DecideCommand("send", "d-1", {"user_id": "u7"}, {"hour_of_day": 9}))
    assert not replayed and d.features.asked == [("send", {"user_id": "u7"})]
    assert (record.use_case, record.decision_id, record.blueprint_version) == ("send", "d-1", 2)
    assert record.subject == {"user_id": "u7"} and record.context == {"hour_of_day": 9}
    assert record.features == {"user_profile__sessions": 4.0, "hour_of_day": 9}
    assert record.decide_time == NOW and record.model_version == "" and record.default_reason == DefaultReason.NO_MODEL
    assert d.get("send", "d-1") == record


def test_a_regression_decision_is_the_models_value_or_the_default_number(decider):
    d = decider(scores=[3.75])
    record, _ = d.decide(DecideCommand("bitrate", "r-1", {"user_id": "u"}, {"hour_of_day": 20}))
    assert (record.action, record.score, record.propensity, record.is_exploration) == ("", 3.75, 1.0, False)
    assert record.model_version == "m000002" and record.ranking == ()
    assert d.models.rows == [[{"user_profile__sessions": 4.0, "hour_of_day": 20}]]  # one row, no action column
    default, _ = decider().decide(DecideCommand("bitrate", "r-2", {"user_id": "u"}))
    assert (default.action, default.score, default.propensity, default.is_exploration) == ("", 2.5, 1.0, False)


def test_multi_action_candidates_are_scored_with_their_features_and_logged(decider):
    d = decider(scores=[0.2, 0.9])
    record, _ = d.decide(DecideCommand("layout", "m-1", {"user_id": "u"},
                                       candidates=(CandidateInput("grid", {"price": 1.0}),
                                                   CandidateInput("cards", {"price": 2.0}))))
    assert record.action == "cards" and not record.is_exploration
    assert [(r.action_id, r.features) for r in record.ranking] == [("cards", {"price": 2.0}), ("grid", {"price": 1.0})]
    assert [r["action"] for r in d.models.rows[0]] == ["grid", "cards"]


def test_candidate_problems_are_each_named_by_position(decider):
    found = violations(decider(), DecideCommand("layout", "m-2", {"user_id": "u"}, candidates=(
        CandidateInput("grid"), CandidateInput("grid"), CandidateInput("bad id"), CandidateInput("tiles"),
        CandidateInput("cards", {"price": "high", "colour": 1}))))
    assert found == [
        ("candidates[1].action_id", "repeats an earlier candidate"),
        ("candidates[2].action_id", "must be 1-128 characters of [A-Za-z0-9._:-]"),
        ("candidates[2].action_id", "is not an action of the use case ['grid', 'list', 'cards']"),
        ("candidates[3].action_id", "is not an action of the use case ['grid', 'list', 'cards']"),
        ("candidates[4].features.price", "must be of type double, got str"),
        ("candidates[4].features.colour", "is not declared by the blueprint; declared: ['price']"),
    ]


@pytest.mark.parametrize("price, reason", [
    (float("nan"), "must be a finite number"),
    (float("-inf"), "must be a finite number"),
])
def test_a_candidates_value_of_the_right_type_is_still_checked_for_being_finite(decider, price, reason):
    found = violations(decider(), DecideCommand("layout", "m-3", {"user_id": "u"}, candidates=(
        CandidateInput("grid", {"price": 1.0}), CandidateInput("cards", {"price": price}))))
    assert found == [("candidates[1].features.price", reason)]


def test_at_most_500_candidates(decider):
    assert MAX_CANDIDATES == 500
    d = decider()
    too_many = tuple(CandidateInput(f"c{i}") for i in range(501))
    assert ("candidates", "must hold at most 500 items, got 501") in violations(
        d, DecideCommand("layout", "m-3", {"user_id": "u"}, candidates=too_many))
    enough = tuple(CandidateInput(f"c{i}") for i in range(500))
    assert all(f != "candidates" for f, _ in violations(
        d, DecideCommand("layout", "m-4", {"user_id": "u"}, candidates=enough)))


def test_request_problems_name_the_field_and_what_is_expected(decider):
    found = violations(decider(), DecideCommand("send", "d 2", {"team": "t"},
                                                {"hour_of_day": 1.5, "vip": 1, "ratio": True, "extra": 1,
                                                 "ratio_ok": None}, candidates=(CandidateInput("x"),)))
    assert found == [
        ("decision_id", "must be 1-128 characters of [A-Za-z0-9._:-]"),
        ("subject.user_id", "is required by the blueprint"),
        ("subject.team", "is not an entity of the use case; expected ['user_id']"),
        ("context.hour_of_day", "must be of type int64, got float"),
        ("context.vip", "must be of type bool, got int"),
        ("context.ratio", "must be of type double, got bool"),
        ("context.extra", "is not declared by the blueprint; declared: ['hour_of_day', 'ratio', 'vip']"),
        ("context.ratio_ok", "is not declared by the blueprint; declared: ['hour_of_day', 'ratio', 'vip']"),
        ("candidates", "are not allowed for a binary use case"),
    ]


def test_declared_values_of_the_right_type_or_missing_are_accepted(decider):
    record, _ = decider().decide(DecideCommand("send", "d-3", {"user_id": "u"},
                                               {"hour_of_day": 3, "vip": True, "ratio": 2}))
    assert record.context == {"hour_of_day": 3, "vip": True, "ratio": 2}
    missing, _ = decider().decide(DecideCommand("send", "d-4", {"user_id": "u"}, {"hour_of_day": None}))
    assert missing.context == {"hour_of_day": None}


def test_a_decision_is_found_again_by_its_use_case_and_id(decider):
    d = decider()
    record, _ = d.decide(DecideCommand("send", "d-5", {"user_id": "u"}))
    assert d.get("send", "d-5") == record
    with pytest.raises(NotFound, match="decision 'd-6' of use case 'send' was not found"):
        d.get("send", "d-6")
    with pytest.raises(NotFound):
        d.get("layout", "d-5")  # ids belong to their use case
    with pytest.raises(NotFound):
        d.get("unknown_case", "d-5")
