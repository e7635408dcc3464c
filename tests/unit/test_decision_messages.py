"""The Decision service's conversions between messages and the domain, without a server:
a request becomes a command with plain values, a record becomes the answer with its whole
ranking in order."""

from __future__ import annotations

from datetime import datetime, timezone

from looper import decide_request

from services.decision.server import decision_to_proto, to_command
from services.decisions.record import DecisionRecord, DefaultReason, ScoredCandidate
from services.platform.wire import to_timestamp


def test_a_request_becomes_a_command_with_its_candidates_in_order():
    request = decide_request("feed", "d1", {"user_id": "u1"}, {"hour": 9},
                             candidates=[("b", {"price": 2.5}), ("a", {"price": 1.0, "new": True})])
    command = to_command(request, deadline=12.5)
    assert (command.use_case, command.decision_id, command.subject, command.context) == (
        "feed", "d1", {"user_id": "u1"}, {"hour": 9})
    assert [(c.action_id, c.features) for c in command.candidates] == [("b", {"price": 2.5}),
                                                                        ("a", {"price": 1.0, "new": True})]
    assert command.deadline == 12.5


def test_a_record_becomes_the_decision_with_its_ranking_in_order():
    ranking = tuple(ScoredCandidate(f"item-{i}", 0.1 * i, 0.01 * i, {"price": i}) for i in (3, 1, 2))
    record = DecisionRecord(decision_id="d1", use_case="feed", blueprint_version=4,
                            decide_time=datetime(2026, 11, 26, 5, tzinfo=timezone.utc), subject={"user_id": "u1"},
                            features={}, context={}, action="item-3", score=0.3, propensity=0.5,
                            is_exploration=True, model_version="m000002", arm="canary", ranking=ranking,
                            default_reason=DefaultReason.UNSPECIFIED)
    decision = decision_to_proto(record)
    assert [(r.action_id, r.score, r.propensity) for r in decision.ranking] == [
        (c.action_id, c.score, c.propensity) for c in ranking]
    assert (decision.decision_id, decision.action, decision.model_version, decision.arm, decision.blueprint_version) == (
        "d1", "item-3", "m000002", "canary", 4)
    assert decision.is_exploration and not decision.is_default and decision.decide_time == to_timestamp(
        record.decide_time)
