"""The decision log's idempotency through the shared on-disk index: every process on a data
directory gives a retried decision id the same answer, within the window and not after it;
a claim left by a dead process is resolved; retention deletes only what is old and read."""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone

import pytest

from services.decisions.log import CONSUMERS, DecisionLog, DecisionStream, iter_decisions
from services.decisions.record import DecisionRecord, DefaultReason
from services.platform.data_dir import DataDir
from services.platform.errors import FailedPrecondition
from services.platform.id_index import IdempotencyIndex

T0 = datetime(2026, 4, 1, 9, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self, now=T0):
        self.now = now

    def __call__(self):
        return self.now


def record(decision_id: str, action: str = "true", at: datetime | None = None) -> DecisionRecord:
    return DecisionRecord(decision_id=decision_id, use_case="uc", blueprint_version=1,
                          decide_time=at or datetime.now(timezone.utc),
                          subject={"user_id": "u"}, features={"x": 1.0}, context={}, action=action, score=0.5,
                          propensity=0.9, is_exploration=False, model_version="",
                          default_reason=DefaultReason.NO_MODEL)


@pytest.fixture()
def paths(tmp_path):
    return DataDir(tmp_path).ensure().decisions


def test_two_processes_on_one_data_directory_give_a_retry_the_same_answer(paths):
    first, second = DecisionLog(paths), DecisionLog(paths)  # as two Decision processes
    try:
        made, replayed = first.record_once("uc", "d1", lambda: record("d1", "true"))
        assert not replayed
        again, replayed = second.record_once("uc", "d1", lambda: record("d1", "false"))
        assert replayed and again == made
        assert second.find("uc", "d1") == made and second.find("uc", "unknown") is None
    finally:
        first.close()
        second.close()
    assert [r.action for r in iter_decisions(paths)] == ["true"]


def test_a_retry_after_the_window_is_refused_not_decided_again(paths):
    clock = Clock()
    log = DecisionLog(paths, window=lambda: timedelta(hours=1), clock=clock)
    try:
        log.record_once("uc", "d1", lambda: record("d1", at=T0))
        clock.now = T0 + timedelta(minutes=59)
        assert log.record_once("uc", "d1", lambda: record("d1", "false"))[1]
        clock.now = T0 + timedelta(minutes=61)
        with pytest.raises(FailedPrecondition, match="outside the idempotency window"):
            log.record_once("uc", "d1", lambda: record("d1", "false"))
    finally:
        log.close()
    assert len(list(iter_decisions(paths))) == 1


def test_a_failed_decision_frees_its_id(paths):
    log = DecisionLog(paths)
    try:
        with pytest.raises(RuntimeError):
            log.record_once("uc", "d1", lambda: (_ for _ in ()).throw(RuntimeError("feature store down")))
        assert log.record_once("uc", "d1", lambda: record("d1"))[1] is False
    finally:
        log.close()


def dead_owner() -> str:
    """A process that no longer exists on this host."""
    import socket
    import subprocess
    import sys

    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return f"{socket.gethostname()}-{int(child.stdout)}"


def test_a_claim_left_by_a_dead_process_is_taken_over(paths):
    index = IdempotencyIndex(paths.index)
    index.owner = dead_owner()
    index.claim("uc", ["orphaned"], T0.timestamp())  # it died before logging anything
    index.close()
    log = DecisionLog(paths)
    try:
        made, replayed = log.record_once("uc", "orphaned", lambda: record("orphaned"))
        assert not replayed and log.find("uc", "orphaned") == made
    finally:
        log.close()


def test_a_decision_logged_by_a_process_that_died_before_completing_its_claim_is_replayed(paths):
    from services.platform.durable_log import DurableLog

    owner = dead_owner()
    index = IdempotencyIndex(paths.index)
    index.owner = owner
    index.claim("uc", ["logged"], T0.timestamp())
    index.close()
    # its segment holds the decision (the process died between the fsync and the index update)
    segment = DurableLog(paths.log, "decisions")
    segment.append(record("logged", "false").to_dict())
    segment.close()
    os.rename(segment.segment_path, paths.log / f"decisions-{owner}-0001.log")
    log = DecisionLog(paths)
    try:
        again, replayed = log.record_once("uc", "logged", lambda: record("logged", "true"))
        assert replayed and again.action == "false"
    finally:
        log.close()


def test_retention_deletes_read_segments_and_forgets_ids_after_two_windows(paths):
    clock = Clock()
    log = DecisionLog(paths, window=lambda: timedelta(hours=1), segment_seconds=1, clock=clock)
    log.record_once("uc", "old", lambda: record("old", at=T0))
    log.close()
    segment = next(paths.log.glob("decisions-*.log"))
    past = time.time() - 3 * 3600
    os.utime(segment, (past, past))
    log = DecisionLog(paths, window=lambda: timedelta(hours=1), segment_seconds=1,
                      clock=lambda: datetime.now(timezone.utc))
    try:
        first = log.retention()
        assert first.segments_deleted == 0  # the joiner has not read it yet
        assert first.ids_forgotten == 1 and log.find("uc", "old") is None  # used long before two windows ago
        stream = DecisionStream(paths, CONSUMERS[0])
        for _, position in stream.pending():
            stream.advance(position)
        stream.commit()
        assert log.retention().segments_deleted == 1 and not segment.exists()
    finally:
        log.close()
