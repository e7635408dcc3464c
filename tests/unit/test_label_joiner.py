from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from services.blueprints.spec import Aggregation
from services.blueprints.store import BlueprintStore
from services.decisions.log import DecisionLog, DecisionStream
from services.decisions.record import DecisionRecord, DefaultReason
from services.labels.joiner import CONSUMER, LabelJoiner, aggregate
from services.labels.outcomes import OutcomeEvent, OutcomeRecorder, OutcomeStream
from services.labels.training_table import TrainingTable
from services.platform.data_dir import DataDir

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
BLUEPRINT = """
name: joins
decision_type: binary
entities: [user_id]
default_decision: false
label: {outcome: clicked, aggregation: sum, window: 10m, missing_value: 0}
"""


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self):
        return self.now


def make_joiner(tmp_path, table, clock) -> LabelJoiner:
    """A label joiner on the data directory, as a (re)started Feedback process makes it."""
    data = DataDir(tmp_path)
    return LabelJoiner(BlueprintStore(data.blueprints), DecisionStream(data.decisions, CONSUMER),
                       OutcomeStream(data.labels, CONSUMER), data.labels.joiner, table, clock)


@pytest.fixture()
def world(tmp_path):
    data = DataDir(tmp_path).ensure()
    blueprints = BlueprintStore(data.blueprints)
    blueprints.apply(BLUEPRINT)
    clock = Clock()
    decisions = DecisionLog(data.decisions, window=lambda: timedelta(days=3650))
    recorder = OutcomeRecorder(blueprints, data.labels)
    table = TrainingTable(data.labels.training)
    joiner = make_joiner(tmp_path, table, clock)
    yield decisions, recorder, joiner, table, clock
    decisions.close()
    recorder.close()
    joiner.close()


def decide(decisions, decision_id, at=T0):
    record = DecisionRecord(
        decision_id=decision_id, use_case="joins", action="true", score=0.5, model_version="",
        blueprint_version=1, propensity=0.9, default_reason=DefaultReason.NO_MODEL, is_exploration=False,
        decide_time=at, subject={"user_id": "u1"}, features={"hour_of_day": 9}, context={"hour_of_day": 9})
    decisions.record_once("joins", decision_id, lambda: record)


def outcome(recorder, event_id, decision_id, at, value=1.0, name="clicked"):
    return recorder.record([OutcomeEvent(event_id, "joins", decision_id, name, value, at)])


def test_outcomes_inside_the_window_are_summed_and_written_once_closed(world):
    decisions, recorder, joiner, table, clock = world
    decide(decisions, "d1")
    outcome(recorder, "e1", "d1", T0 + timedelta(minutes=1), 1.0)
    outcome(recorder, "e2", "d1", T0 + timedelta(minutes=10), 2.0)  # exactly at the window's end: inside
    outcome(recorder, "e3", "d1", T0 + timedelta(minutes=2), 5.0, name="viewed")  # another outcome name
    assert joiner.run_once() == 0  # window still open
    assert not joiner.label("joins", "d1").joined
    clock.now = T0 + timedelta(minutes=10, seconds=1)
    assert joiner.run_once() == 1
    label = joiner.label("joins", "d1")
    assert label.joined and label.value == 3.0
    rows = table.read("joins")
    assert list(rows["decision_id"]) == ["d1"] and rows["label"][0] == 3.0
    assert rows["hour_of_day"][0] == 9 and rows["user_id"][0] == "u1"
    assert joiner.run_once() == 0  # never written twice


def test_duplicate_events_count_once(world):
    decisions, recorder, joiner, table, clock = world
    decide(decisions, "d1")
    assert outcome(recorder, "e1", "d1", T0 + timedelta(minutes=1)) == [True]
    assert outcome(recorder, "e1", "d1", T0 + timedelta(minutes=1)) == [False]
    clock.now = T0 + timedelta(hours=1)
    joiner.run_once()
    assert joiner.label("joins", "d1").value == 1.0
    assert joiner.stats("joins").attributed_outcomes == 1


def test_no_outcome_gives_the_missing_value(world):
    decisions, recorder, joiner, table, clock = world
    decide(decisions, "quiet")
    clock.now = T0 + timedelta(hours=1)
    joiner.run_once()
    assert table.read("joins")["label"].tolist() == [0.0]


def test_late_outcomes_are_kept_and_counted(world):
    decisions, recorder, joiner, table, clock = world
    decide(decisions, "d1")
    outcome(recorder, "after-window", "d1", T0 + timedelta(minutes=11))
    clock.now = T0 + timedelta(minutes=20)
    joiner.run_once()
    outcome(recorder, "after-join", "d1", T0 + timedelta(minutes=5))  # in the window, but arrived too late
    joiner.run_once()
    stats = joiner.stats("joins")
    assert stats.late_outcomes == 2 and stats.attributed_outcomes == 0
    assert table.read("joins")["label"].tolist() == [0.0]  # neither late outcome changed the label
    assert joiner.label("joins", "d1").value == 0.0


def test_orphans_are_counted_then_joined_when_the_decision_shows_up(world):
    decisions, recorder, joiner, table, clock = world
    outcome(recorder, "early", "d-later", T0 + timedelta(minutes=1), 4.0)
    joiner.run_once()
    assert joiner.stats("joins").orphan_outcomes == 1
    decide(decisions, "d-later")
    joiner.run_once()
    stats = joiner.stats("joins")
    assert stats.orphan_outcomes == 0 and stats.attributed_outcomes == 1
    clock.now = T0 + timedelta(hours=1)
    assert joiner.run_once() == 1
    assert table.read("joins")["label"].tolist() == [4.0]


def test_an_orphan_whose_decision_never_comes_stays_an_orphan(world):
    decisions, recorder, joiner, table, clock = world
    outcome(recorder, "lost", "never-decided", T0)
    clock.now = T0 + timedelta(days=2)
    assert joiner.run_once() == 0
    assert joiner.stats("joins").orphan_outcomes == 1 and len(table.read("joins")) == 0


def test_restart_resumes_without_losing_or_repeating(world, tmp_path):
    decisions, recorder, joiner, table, clock = world
    decide(decisions, "d1")
    outcome(recorder, "e1", "d1", T0, 2.0)
    clock.now = T0 + timedelta(minutes=30)
    assert joiner.run_once() == 1  # d1 labeled before the restart
    decide(decisions, "d2", at=T0 + timedelta(minutes=30))
    outcome(recorder, "e2", "d2", T0 + timedelta(minutes=31), 3.0)
    joiner.close()
    again = make_joiner(tmp_path, table, clock)
    try:
        clock.now = T0 + timedelta(hours=1)
        assert again.run_once() == 1  # only d2: d1 is not written again
        rows = table.read("joins")
        assert dict(zip(rows["decision_id"], rows["label"])) == {"d1": 2.0, "d2": 3.0}
        assert len(table.parts("joins")) == 2
        assert again.stats("joins").attributed_outcomes == 2
    finally:
        again.close()


class CrashAfterWrite(TrainingTable):
    """A training table whose process dies right after the part file is written, before
    the joiner marks the decisions joined."""

    def append(self, use_case, rows):
        super().append(use_case, rows)
        raise SystemExit("killed between writing labels and marking them")


def test_a_crash_between_writing_and_marking_labels_writes_them_again_once(world, tmp_path):
    decisions, recorder, joiner, table, clock = world
    joiner.close()
    crashing = make_joiner(tmp_path, CrashAfterWrite(DataDir(tmp_path).labels.training), clock)
    decide(decisions, "d1")
    outcome(recorder, "e1", "d1", T0 + timedelta(minutes=1), 1.0)
    clock.now = T0 + timedelta(hours=1)
    with pytest.raises(SystemExit):
        crashing.run_once()
    crashing.close()
    again = make_joiner(tmp_path, table, clock)
    try:
        assert again.run_once() == 1  # not marked before the crash: written again
        assert again.run_once() == 0
        assert len(table.parts("joins")) == 2
        rows = table.read("joins")  # the reader keeps one row per decision
        assert rows["decision_id"].tolist() == ["d1"] and rows["label"].tolist() == [1.0]
        assert again.label("joins", "d1").joined
    finally:
        again.close()


def test_a_crash_before_the_checkpoint_is_saved_ingests_nothing_twice(world, tmp_path, monkeypatch):
    from services.platform.durable_log import LogConsumer

    decisions, recorder, joiner, table, clock = world
    decide(decisions, "d1")
    outcome(recorder, "e1", "d1", T0 + timedelta(minutes=1), 1.0)
    real_save = LogConsumer.save
    monkeypatch.setattr(LogConsumer, "save", lambda self: (_ for _ in ()).throw(SystemExit("killed")))
    with pytest.raises(SystemExit):
        joiner.run_once()  # decisions are in the joiner's database, its progress is not saved
    monkeypatch.setattr(LogConsumer, "save", real_save)
    joiner.close()
    again = make_joiner(tmp_path, table, clock)
    try:
        clock.now = T0 + timedelta(hours=1)
        assert again.run_once() == 1
        stats = again.stats("joins")
        assert (stats.joined_decisions, stats.attributed_outcomes) == (1, 1)
        assert table.read("joins")["label"].tolist() == [1.0]
    finally:
        again.close()


@pytest.mark.parametrize("aggregation, expected", [(Aggregation.SUM, 6.0), (Aggregation.MAX, 3.0),
                                                   (Aggregation.FIRST, 2.0), (Aggregation.COUNT, 3.0)])
def test_aggregations(aggregation, expected):
    assert aggregate(aggregation, [(2.0, 1.0), (1.0, 2.0), (3.0, 3.0)], -1.0) == expected
    assert aggregate(aggregation, [], -1.0) == -1.0


def test_an_outcome_in_transit_during_the_grace_period_still_counts(world):
    decisions, recorder, joiner, table, clock = world
    decide(decisions, "d1")
    clock.now = T0 + timedelta(minutes=10, milliseconds=500)  # window over, grace (1s) not yet
    joiner.run_once()
    outcome(recorder, "in-transit", "d1", T0 + timedelta(minutes=9, seconds=59))
    clock.now = T0 + timedelta(minutes=10, seconds=1)
    assert joiner.run_once() == 1
    assert table.read("joins")["label"].tolist() == [1.0]


def test_an_outcome_dated_before_its_decision_is_early_and_never_counted(world):
    decisions, recorder, joiner, table, clock = world
    decide(decisions, "d1", at=T0 + timedelta(minutes=5))
    outcome(recorder, "before", "d1", T0, 7.0)
    outcome(recorder, "inside", "d1", T0 + timedelta(minutes=6), 1.0)
    clock.now = T0 + timedelta(hours=1)
    assert joiner.run_once() == 1
    stats = joiner.stats("joins")
    assert (stats.early_outcomes, stats.attributed_outcomes) == (1, 1)
    assert table.read("joins")["label"].tolist() == [1.0]


def test_one_use_case_that_cannot_be_joined_never_stops_another(world, tmp_path):
    decisions, recorder, joiner, table, clock = world
    BlueprintStore(DataDir(tmp_path).blueprints).apply(BLUEPRINT.replace("name: joins", "name: other"))
    decide(decisions, "fine")
    broken = DecisionRecord(
        decision_id="stray", use_case="other", action="true", score=0.5, model_version="", blueprint_version=9,
        propensity=0.9, is_exploration=False, decide_time=T0, subject={"user_id": "u1"}, features={}, context={})
    decisions.record_once("other", "stray", lambda: broken)  # a blueprint version that does not exist
    clock.now = T0 + timedelta(hours=1)
    assert joiner.run_once() == 1
    assert table.read("joins")["decision_id"].tolist() == ["fine"]
    assert joiner.skipped["other"] == 1 and joiner.run_once() == 0  # skipped once, not on every pass


class FailingFor(TrainingTable):
    def __init__(self, root, use_case):
        super().__init__(root)
        self.failing = use_case

    def append(self, use_case, rows):
        if use_case == self.failing:
            raise OSError("no space left for this use case's part")
        super().append(use_case, rows)


def test_a_use_case_whose_labels_cannot_be_written_is_retried_while_others_go_on(world, tmp_path):
    decisions, recorder, joiner, table, clock = world
    data = DataDir(tmp_path)
    BlueprintStore(data.blueprints).apply(BLUEPRINT.replace("name: joins", "name: other"))
    joiner.close()
    failing = make_joiner(tmp_path, FailingFor(data.labels.training, "other"), clock)
    try:
        decide(decisions, "fine")
        other = DecisionRecord(
            decision_id="o1", use_case="other", action="true", score=0.5, model_version="", blueprint_version=1,
            propensity=0.9, is_exploration=False, decide_time=T0, subject={"user_id": "u1"}, features={}, context={})
        decisions.record_once("other", "o1", lambda: other)
        clock.now = T0 + timedelta(hours=1)
        assert failing.run_once() == 1
        assert failing.stats("joins").joined_decisions == 1 and failing.stats("other").pending_decisions == 1
        failing.training_table.failing = ""
        assert failing.run_once() == 1 and failing.stats("other").joined_decisions == 1
    finally:
        failing.close()
