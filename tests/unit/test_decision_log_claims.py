"""The decision log's answers at the edges of its idempotency window and of its claims: how
a refusal names the window, a batch where single requests fail, a write that fails, a claim
still held by another process, a dead process's log, and retention day by day."""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from services.decisions import log as log_module
from services.decisions.log import CONSUMERS, DecisionLog, DecisionStream, iter_decisions
from services.decisions.record import DecisionRecord
from services.platform.data_dir import DataDir
from services.platform.durable_log import DurableLog
from services.platform.errors import FailedPrecondition, Unavailable
from services.platform.id_index import IdempotencyIndex
from tests.unit.test_decision_log import dead_owner

T0 = datetime(2026, 4, 1, 9, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self, now=T0):
        self.now = now

    def __call__(self):
        return self.now


def record(decision_id, action="true", at=T0, use_case="uc") -> DecisionRecord:
    return DecisionRecord(decision_id=decision_id, use_case=use_case, blueprint_version=1, decide_time=at,
                          subject={"user_id": "u"}, features={}, context={}, action=action, score=0.5,
                          propensity=1.0, is_exploration=False, model_version="")


@pytest.fixture()
def paths(tmp_path):
    return DataDir(tmp_path).ensure().decisions


@pytest.mark.parametrize("window, text", [
    (timedelta(days=1), "1d"), (timedelta(hours=25), "25h"), (timedelta(hours=1), "1h"),
    (timedelta(minutes=90), "90m"), (timedelta(seconds=60), "1m"), (timedelta(seconds=45), "45s"),
])
def test_a_refused_retry_names_the_window_in_its_largest_whole_unit(paths, window, text):
    clock = Clock()
    log = DecisionLog(paths, window=lambda: window, clock=clock)
    try:
        log.record_once("uc", "d1", lambda: record("d1"))
        clock.now = T0 + window + timedelta(seconds=1)
        with pytest.raises(FailedPrecondition) as refused:
            log.find("uc", "d1")
        assert str(refused.value) == (f"decision id 'd1' of use case 'uc' was used more than {text} ago, "
                                      "outside the idempotency window; use a new decision id")
    finally:
        log.close()


def test_a_retry_at_the_very_end_of_the_window_is_still_replayed(paths):
    clock = Clock()
    log = DecisionLog(paths, window=lambda: timedelta(hours=1), clock=clock)
    try:
        made, _ = log.record_once("uc", "d1", lambda: record("d1"))
        clock.now = T0 + timedelta(hours=1)
        assert log.record_once("uc", "d1", lambda: record("d1", "false")) == (made, True)
    finally:
        log.close()


def test_in_a_batch_each_request_gets_its_own_answer_or_its_own_error(paths):
    clock = Clock()
    log = DecisionLog(paths, window=lambda: timedelta(hours=1), clock=clock)
    try:
        old, _ = log.record_once("uc", "old", lambda: record("old"))
        clock.now = T0 + timedelta(minutes=30)
        earlier, _ = log.record_once("uc", "earlier", lambda: record("earlier", at=clock.now))
        clock.now = T0 + timedelta(minutes=90)  # "old" is now outside the window, "earlier" inside
        broken = RuntimeError("feature store down")

        def fail():
            raise broken
        now = clock.now
        answers = log.record_many([("uc", "old", lambda: record("old", "false", at=now)),
                                   ("uc", "earlier", lambda: record("earlier", "false", at=now)),
                                   ("uc", "fails", fail),
                                   ("uc", "new", lambda: record("new", at=now)),
                                   ("other", "new", lambda: record("new", at=now, use_case="other"))])
        assert isinstance(answers[0], FailedPrecondition)
        assert answers[1] == (earlier, True) and answers[2] is broken
        assert answers[3] == (record("new", at=now), False)
        assert answers[4] == (record("new", at=now, use_case="other"), False)
        assert log.find("uc", "new") == record("new", at=now) and log.find("other", "new").use_case == "other"
        # the failed request released its id: a retry decides it
        assert log.record_once("uc", "fails", lambda: record("fails", at=now)) == (record("fails", at=now), False)
    finally:
        log.close()


def test_decisions_recorded_together_are_made_in_one_call_for_the_new_ids_only(paths):
    log = DecisionLog(paths, clock=Clock())
    try:
        earlier, _ = log.record_once("uc", "earlier", lambda: record("earlier"))
        asked = []

        def decide(positions):
            asked.append(positions)
            return [record("a") if p == 0 else RuntimeError("this one failed") for p in positions]
        answers = log.record_together([("uc", "a"), ("uc", "earlier"), ("uc", "b"), ("uc", "a")], decide)
        assert asked == [[0, 2]], "one call, for the first occurrence of each new id"
        assert answers[0] == (record("a"), False) and answers[1] == (earlier, True)
        assert isinstance(answers[2], RuntimeError) and answers[3] == (record("a"), True)
        assert log.record_once("uc", "b", lambda: record("b")) == (record("b"), False)  # its claim was released
        with pytest.raises(ValueError):  # a decide that raises fails the call and frees its ids
            log.record_together([("uc", "c")], lambda positions: (_ for _ in ()).throw(ValueError("boom")))
        assert log.record_once("uc", "c", lambda: record("c")) == (record("c"), False)
    finally:
        log.close()


def test_a_failed_batch_write_releases_every_id_it_claimed(paths, monkeypatch):
    log = DecisionLog(paths)
    try:
        monkeypatch.setattr(log._log, "append_many", lambda records: (_ for _ in ()).throw(OSError("disk full")))
        with pytest.raises(OSError):
            log.record_many([("uc", "a", lambda: record("a")), ("other", "b", lambda: record("b", use_case="other"))])
        monkeypatch.undo()
        monkeypatch.setattr(log_module, "CLAIM_WAIT_SECONDS", 0.2)  # a claim left behind would time out
        assert log.record_many([("uc", "a", lambda: record("a")),
                                ("other", "b", lambda: record("b", use_case="other"))]) == [
            (record("a"), False), (record("b", use_case="other"), False)]
    finally:
        log.close()


def test_a_retry_waits_for_another_process_still_deciding_then_replays_or_gives_up(paths, monkeypatch):
    first, second = DecisionLog(paths), DecisionLog(paths)  # as two Decision processes
    deciding, release = threading.Event(), threading.Event()
    now = datetime.now(timezone.utc)

    def slow():
        deciding.set()
        assert release.wait(10)
        return record("d1", at=now)
    try:
        worker = threading.Thread(target=first.record_once, args=("uc", "d1", slow))
        worker.start()
        assert deciding.wait(10)
        monkeypatch.setattr(log_module, "CLAIM_WAIT_SECONDS", 0.05)
        with pytest.raises(Unavailable, match="still being made by another call"):
            second.record_once("uc", "d1", lambda: record("d1", "false", at=now))
        monkeypatch.setattr(log_module, "CLAIM_WAIT_SECONDS", 10.0)
        threading.Timer(0.05, release.set).start()
        assert second.record_once("uc", "d1", lambda: record("d1", "false", at=now)) == (record("d1", at=now), True)
        worker.join(10)
    finally:
        release.set()
        first.close()
        second.close()


def test_a_dead_process_s_logged_decision_is_found_among_its_others(paths):
    owner = dead_owner()
    index = IdempotencyIndex(paths.index)
    index.owner = owner
    index.claim("uc", ["second"], T0.timestamp())
    index.close()
    segment = DurableLog(paths.log, "decisions")
    segment.append(record("first", "false").to_dict())
    segment.append(record("second", "true", use_case="other").to_dict())
    segment.append(record("second", "false").to_dict())
    segment.close()
    os.rename(segment.segment_path, paths.log / f"decisions-{owner}-0001.log")
    log = DecisionLog(paths, clock=Clock())
    try:
        again, replayed = log.record_once("uc", "second", lambda: record("second", "true"))
        assert replayed and (again.decision_id, again.use_case, again.action) == ("second", "uc", "false")
        assert log.find("uc", "second") == again  # the recovered claim is completed
    finally:
        log.close()


def test_retention_keeps_a_window_of_segments_and_refuses_ids_for_a_second_window(paths):
    clock = Clock()
    log = DecisionLog(paths, window=lambda: timedelta(hours=1), segment_seconds=1, clock=clock)
    try:
        log.record_once("uc", "d1", lambda: record("d1"))
        segment = next(paths.log.glob("decisions-*.log"))
        os.utime(segment, (T0.timestamp(), T0.timestamp()))
        stream = DecisionStream(paths, CONSUMERS[0])
        for _, position in stream.pending():
            stream.advance(position)
        stream.commit()
        clock.now = T0 + timedelta(minutes=59)
        assert (log.retention().segments_deleted, segment.exists()) == (0, True)  # inside the window
        clock.now = T0 + timedelta(minutes=61)
        result = log.retention()
        assert (result.segments_deleted, result.ids_forgotten, segment.exists()) == (1, 0, False)
        with pytest.raises(FailedPrecondition):  # between one and two windows: refused
            log.record_once("uc", "d1", lambda: record("d1", "false"))
        clock.now = T0 + timedelta(minutes=119)
        assert log.retention().ids_forgotten == 0
        clock.now = T0 + timedelta(minutes=121)
        assert log.retention().ids_forgotten == 1
        assert log.record_once("uc", "d1", lambda: record("d1", "false", at=clock.now))[1] is False
    finally:
        log.close()


def test_a_closed_segment_goes_once_it_is_older_than_the_segment_time(paths):
    log = DecisionLog(paths, window=lambda: timedelta(seconds=1), segment_seconds=2,
                      clock=lambda: datetime.now(timezone.utc))
    try:
        log.record_once("uc", "d1", lambda: record("d1"))
        segment = next(paths.log.glob("decisions-*.log"))
        stream = DecisionStream(paths, CONSUMERS[0])
        for _, position in stream.pending():
            stream.advance(position)
        stream.commit()
        written = time.time() - 10  # written ten seconds ago: closed (2 s), and past the 1 s window
        os.utime(segment, (written, written))
        assert log.retention().segments_deleted == 1
    finally:
        log.close()
    assert list(iter_decisions(paths)) == []
