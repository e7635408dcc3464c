"""What the label joiner answers besides writing labels: a decision's label so far, the join
statistics, each subject's recent activity (personalization), the traceparents feedback
links to, the subjects reported after a pass, and what retention forgets."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from services.blueprints.store import BlueprintStore
from services.decisions.log import DecisionLog, DecisionStream
from services.decisions.record import DecisionRecord
from services.labels.joiner import CONSUMER, JoinStats, Label, LabelJoiner
from services.labels.outcomes import OutcomeEvent, OutcomeRecorder, OutcomeStream
from services.labels.training_table import TrainingTable
from services.platform.data_dir import DataDir
from services.platform.errors import NotFound

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)
CLICKS = """
name: clicks
decision_type: binary
entities: [user_id]
default_decision: false
label: {outcome: clicked, aggregation: max, window: 10m, missing_value: -1}
"""
VIEWS = """
name: views
decision_type: binary
entities: [user_id, page_id]
default_decision: false
label: {outcome: viewed, aggregation: sum, window: 1h}
"""


class World:
    def __init__(self, tmp_path):
        data = DataDir(tmp_path).ensure()
        blueprints = BlueprintStore(data.blueprints)
        blueprints.apply(CLICKS)
        blueprints.apply(VIEWS)
        self.now = T0
        self.reported: list[tuple[str, list[str]]] = []
        self.decisions = DecisionLog(data.decisions, window=lambda: timedelta(days=3650))
        self.recorder = OutcomeRecorder(blueprints, data.labels, clock=lambda: T0 + timedelta(days=30))
        self.table = TrainingTable(data.labels.training)
        self.joiner = LabelJoiner(blueprints, DecisionStream(data.decisions, CONSUMER),
                                  OutcomeStream(data.labels, CONSUMER), data.labels.joiner, self.table,
                                  clock=lambda: self.now, on_activity=lambda u, keys: self.reported.append((u, keys)),
                                  grace=timedelta(seconds=0))

    def decide(self, use_case, decision_id, user, at=T0, traceparent=""):
        subject = {"user_id": user, "page_id": "p1"} if use_case == "views" else {"user_id": user}
        record = DecisionRecord(decision_id=decision_id, use_case=use_case, blueprint_version=1, decide_time=at,
                                subject=subject, features={}, context={}, action="true", score=0.5,
                                propensity=1.0, is_exploration=False, model_version="", traceparent=traceparent)
        self.decisions.record_once(use_case, decision_id, lambda: record)

    def outcome(self, use_case, event_id, decision_id, name, value, at):
        self.recorder.record([OutcomeEvent(event_id, use_case, decision_id, name, value, at)])

    def close(self):
        self.decisions.close()
        self.recorder.close()
        self.joiner.close()


@pytest.fixture()
def world(tmp_path):
    w = World(tmp_path)
    yield w
    w.close()


def test_a_label_so_far_counts_only_the_labels_outcome_and_becomes_final_when_written(world):
    world.decide("clicks", "c1", "u1")
    world.outcome("clicks", "e1", "c1", "clicked", 0.5, T0 + timedelta(minutes=1))
    world.outcome("clicks", "e2", "c1", "clicked", 2.0, T0 + timedelta(minutes=2))
    world.outcome("clicks", "e3", "c1", "shared", 9.0, T0 + timedelta(minutes=3))  # not the label's outcome
    window_end = T0 + timedelta(minutes=10)
    assert world.joiner.label("clicks", "c1") == Label(False, 2.0, 2, window_end)  # max so far
    world.now = window_end
    assert world.joiner.run_once() == 1
    assert world.joiner.label("clicks", "c1") == Label(True, 2.0, 2, window_end)
    world.decide("clicks", "c2", "u1")
    assert world.joiner.label("clicks", "c2") == Label(False, -1.0, 0, window_end)  # the missing value
    with pytest.raises(NotFound, match="decision 'c9' of use case 'clicks' is not in the decision log"):
        world.joiner.label("clicks", "c9")


def test_join_statistics_count_decisions_and_outcomes_by_state_per_use_case(world):
    assert world.joiner.stats("clicks") == JoinStats(0, 0, 0, 0, 0, 0)
    world.decide("clicks", "c1", "u1")
    world.decide("clicks", "c2", "u1", at=T0 + timedelta(minutes=20))
    world.decide("views", "v1", "u1")
    world.outcome("clicks", "e1", "c1", "clicked", 1.0, T0 + timedelta(minutes=1))
    world.outcome("clicks", "e2", "c1", "clicked", 1.0, T0 + timedelta(minutes=11))  # after c1's window
    world.outcome("clicks", "e3", "nobody", "clicked", 1.0, T0 + timedelta(minutes=1))
    world.outcome("views", "e4", "v1", "viewed", 1.0, T0 + timedelta(minutes=1))
    world.now = T0 + timedelta(minutes=15)
    world.joiner.run_once()
    assert world.joiner.stats("clicks") == JoinStats(joined_decisions=1, pending_decisions=1,
                                                     attributed_outcomes=1, late_outcomes=1, orphan_outcomes=1,
                                                     early_outcomes=0)
    assert world.joiner.stats("views") == JoinStats(0, 1, 1, 0, 0, 0)


def test_each_pass_reports_the_subjects_with_new_decisions_or_outcomes_once(world):
    world.decide("clicks", "c1", "u2")
    world.decide("clicks", "c2", "u1")
    world.decide("views", "v1", "u3")
    world.joiner.run_once()
    assert sorted(world.reported) == [("clicks", ["u1", "u2"]), ("views", ["u3"])]
    world.reported.clear()
    world.joiner.run_once()
    assert world.reported == []  # nothing new
    world.outcome("clicks", "e1", "c1", "clicked", 1.0, T0 + timedelta(minutes=1))
    world.joiner.run_once()
    assert world.reported == [("clicks", ["u2"])]  # the subject of the decision the outcome joined


def test_subject_activity_counts_recent_decisions_and_their_outcomes(world):
    world.decide("clicks", "old", "u1", at=T0 - timedelta(days=8))
    world.decide("clicks", "c1", "u1", at=T0)
    world.decide("clicks", "c2", "u1", at=T0 + timedelta(minutes=1))
    world.decide("clicks", "c3", "u2", at=T0)
    world.decide("views", "v1", "u1", at=T0)
    world.outcome("clicks", "e0", "old", "clicked", 1.0, T0 - timedelta(days=8))
    world.outcome("clicks", "e1", "c1", "clicked", 1.0, T0 + timedelta(minutes=2))
    world.outcome("clicks", "e2", "c2", "clicked", 1.0, T0 + timedelta(minutes=30))  # late: still counts
    world.outcome("clicks", "e3", "c2", "shared", 1.0, T0 + timedelta(minutes=3))  # another outcome
    world.outcome("clicks", "e4", "gone", "clicked", 1.0, T0 + timedelta(minutes=3))  # an orphan
    world.now = T0 + timedelta(hours=1)
    world.joiner.run_once()
    since = T0 - timedelta(days=7)
    assert world.joiner.subject_activity("clicks", ["u1", "u2", "u9"], "clicked", since) == {
        "u1": (2, 2), "u2": (1, 0), "u9": (0, 0)}
    assert world.joiner.subject_activity("views", ["u1"], "clicked", since) == {"u1": (1, 0)}
    assert world.joiner.subject_activity("clicks", ["u1"], "clicked", T0 + timedelta(minutes=1)) == {"u1": (1, 2)}


def test_feedback_finds_the_traceparents_its_decisions_were_made_under(world):
    world.decide("clicks", "c1", "u1", traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01")
    world.decide("clicks", "c2", "u1")
    world.decide("views", "c1", "u1", traceparent="00-" + "c" * 32 + "-" + "d" * 16 + "-01")
    world.joiner.run_once()
    assert world.joiner.decision_traceparents("clicks", ["c1", "c2", "c3"]) == {
        "c1": "00-" + "a" * 32 + "-" + "b" * 16 + "-01", "c2": ""}
    assert world.joiner.decision_traceparents("clicks", []) == {}


def test_retention_forgets_old_joined_decisions_with_their_outcomes_and_old_orphans(world):
    world.decide("clicks", "old", "u1", at=T0)
    world.decide("clicks", "open", "u1", at=T0 + timedelta(days=1, minutes=55))
    world.decide("clicks", "recent", "u1", at=T0 + timedelta(days=1, minutes=30))
    world.outcome("clicks", "e1", "old", "clicked", 1.0, T0 + timedelta(minutes=1))
    world.outcome("clicks", "e2", "lost", "clicked", 1.0, T0 + timedelta(minutes=1))  # orphan, old
    world.outcome("clicks", "e3", "lost", "clicked", 1.0, T0 + timedelta(days=1, minutes=50))  # orphan, recent
    world.now = T0 + timedelta(days=1, minutes=59)
    world.joiner.run_once()  # "old" and "recent" are joined, "open" is not
    assert world.joiner.retention(keep=timedelta(hours=1)) == 1  # only "old": joined and older than an hour
    with pytest.raises(NotFound):
        world.joiner.label("clicks", "old")
    assert world.joiner.label("clicks", "recent").joined and not world.joiner.label("clicks", "open").joined
    assert world.joiner.stats("clicks") == JoinStats(1, 1, 0, 0, 1, 0)  # e1 went with "old", e2 as an old orphan
    assert world.table.row_count("clicks") == 2  # labels stay in the training table
