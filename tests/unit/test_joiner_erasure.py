"""A deletion's side in the label joiner's state (``erase_joined``): a subject's decisions
made up to the request, with their outcome events and the orphaned events of decisions
deleted elsewhere, or a whole use case; nothing of anyone else's."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest

from services.decisions.record import DecisionRecord, DefaultReason
from services.labels.joiner import JoinedErasure, erase_joined
from services.labels.outcomes import OutcomeEvent
from services.platform.data_dir import DataDir
from tests.unit.test_label_joiner import T0, world  # noqa: F401 - the fixture


def decide(decisions, decision_id, user, at):
    record = DecisionRecord(
        decision_id=decision_id, use_case="joins", action="true", score=0.5, model_version="",
        blueprint_version=1, propensity=0.9, default_reason=DefaultReason.NO_MODEL, is_exploration=False,
        decide_time=at, subject={"user_id": user}, features={}, context={})
    decisions.record_once("joins", decision_id, lambda: record)


def state(path) -> tuple[list[str], list[str]]:
    with sqlite3.connect(path) as db:
        return ([r[0] for r in db.execute("SELECT decision_id FROM decisions ORDER BY decision_id")],
                [r[0] for r in db.execute("SELECT event_id FROM outcomes ORDER BY event_id")])


@pytest.fixture()
def joined(world, tmp_path):  # noqa: F811
    decisions, recorder, joiner, table, clock = world
    decide(decisions, "d1", "u1", T0)
    decide(decisions, "d2", "u2", T0)
    decide(decisions, "d3", "u1", T0 + timedelta(minutes=20))  # after the deletion request
    for event_id, decision_id in (("e1", "d1"), ("e2", "d2"), ("e3", "d3"), ("e9", "dX")):  # dX: not seen
        recorder.record([OutcomeEvent(event_id, "joins", decision_id, "clicked", 1.0, T0 + timedelta(minutes=1))])
    clock.now = T0 + timedelta(minutes=2)
    joiner.run_once()  # every window still open: all of it waits in the state
    path = DataDir(tmp_path).labels.joiner
    assert state(path) == (["d1", "d2", "d3"], ["e1", "e2", "e3", "e9"])
    return path


def test_a_subjects_decisions_up_to_the_request_go_with_their_events_and_the_orphans_named(joined):
    erased = erase_joined(joined, "joins", {"user_id": "u1"}, until=T0 + timedelta(minutes=5),
                          decision_ids={"dX"})
    assert erased == JoinedErasure(["d1"], ["e1", "e9"], 1)
    assert state(joined) == (["d2", "d3"], ["e2", "e3"])


def test_another_use_case_or_subject_loses_nothing(joined):
    assert erase_joined(joined, "other", {"user_id": "u1"}, until=T0 + timedelta(hours=1)) == \
        JoinedErasure([], [], 0)
    assert erase_joined(joined, "joins", {"user_id": "u7"}, until=T0 + timedelta(hours=1)) == \
        JoinedErasure([], [], 0)
    assert state(joined) == (["d1", "d2", "d3"], ["e1", "e2", "e3", "e9"])


def test_a_whole_use_case_goes_with_every_event(joined):
    erased = erase_joined(joined, "joins")
    assert sorted(erased.decision_ids) == ["d1", "d2", "d3"] and sorted(erased.event_ids) == ["e1", "e2", "e3", "e9"]
    assert erased.decisions == 3 and state(joined) == ([], [])


def test_a_joiner_that_never_ran_has_nothing_to_erase(tmp_path):
    assert erase_joined(tmp_path / "absent.sqlite", "joins") == JoinedErasure([], [], 0)
    assert not (tmp_path / "absent.sqlite").exists()
