"""An outcome that names a ranking's item must name one its decision showed: the refusal
names the event's field as the caller spelled it (``event`` for a single event sent alone,
``events[i]`` in a batch), lists the items shown, and checks every event of a batch."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.decision.decider import CandidateInput, DecideCommand
from services.labels.outcomes import OutcomeEvent
from services.platform.errors import InvalidArgument
from tests.unit.test_ranking import T0, world  # noqa: F401 - world is a fixture


def shown(decider, decision_id: str) -> list[str]:
    record, _ = decider.decide(DecideCommand("feed", decision_id, {"user_id": "u"}, {},
                                             (CandidateInput("a"), CandidateInput("b"))))
    return [r.action_id for r in record.ranking]


def click(event_id: str, decision_id: str, item: str = "") -> OutcomeEvent:
    return OutcomeEvent(event_id, "feed", decision_id, "clicked", 1.0, T0 + timedelta(minutes=1), action_id=item)


def refused(recorder, events, field_prefix="events") -> list[tuple[str, str]]:
    with pytest.raises(InvalidArgument) as raised:
        recorder.record(events, field_prefix)
    return [(v.field, v.reason) for v in raised.value.violations]


def test_a_single_event_sent_alone_is_refused_under_its_own_field_name(world):  # noqa: F811
    decider, recorder, *_ = world
    items = shown(decider, "d1")
    assert refused(recorder, [click("e1", "d1", "zzz")], "event") == [
        ("event.action_id", f"is not one of the decision's items {items}")]


def test_every_event_of_a_batch_is_checked_after_one_that_names_no_item(world):  # noqa: F811
    decider, recorder, *_ = world
    items = shown(decider, "d1")
    events = [click("e1", "d1"), click("e2", "d1", "zzz")]
    assert refused(recorder, events) == [("events[1].action_id", f"is not one of the decision's items {items}")]
    assert recorder.record([click("e1", "d1"), click("e2", "d1", items[1])]) == [True, True]
