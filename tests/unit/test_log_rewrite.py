"""Rewriting a closed decision-log segment without one subject's records (a deletion): the
other records stay byte for byte and are still found by id, a consumer's progress moves so
that nothing is read twice or skipped, and a rewrite cut short at any step is finished by the
next reader or the next run, to the same end state."""

from __future__ import annotations

import json
import os
import pathlib
from datetime import datetime, timedelta, timezone

import pytest

from services.decisions.log import DecisionLog, DecisionStream, decision_log_eraser, finish_interrupted_rewrites
from services.decisions.record import DecisionRecord, DefaultReason
from services.platform import log_rewrite
from services.platform.data_dir import DataDir
from services.platform.durable_log import iter_records, list_segments
from services.platform.id_index import IdempotencyIndex
from services.platform.log_rewrite import next_name

T0 = datetime(2026, 4, 1, 9, 0, tzinfo=timezone.utc)
SUBJECTS = ("u1", "u2", "u3")


def record(decision_id: str, user: str, at: datetime) -> DecisionRecord:
    return DecisionRecord(decision_id=decision_id, use_case="uc", blueprint_version=1, decide_time=at,
                          subject={"user_id": user}, features={"x": 1.0, "note": "é" * (len(decision_id) % 5)},
                          context={}, action="true", score=0.5, propensity=0.9, is_exploration=False,
                          model_version="", default_reason=DefaultReason.NO_MODEL)


@pytest.fixture()
def logged(tmp_path):
    """One closed segment of 30 decisions, subjects u1, u2, u3 in turn."""
    paths = DataDir(tmp_path).ensure().decisions
    log = DecisionLog(paths, window=lambda: timedelta(days=3650), clock=lambda: T0)
    for i in range(30):
        log.record_once("uc", f"d{i:02d}", lambda i=i: record(f"d{i:02d}", SUBJECTS[i % 3], T0 + timedelta(seconds=i)))
    log.close()
    (segment,) = list_segments(paths.log, "decisions")
    old = segment.stat().st_mtime - 3600
    os.utime(segment, (old, old))  # closed: nothing written for an hour
    return paths


def of_u1(data: dict) -> bool:
    return data["subject"]["user_id"] == "u1"


def rewrite(paths, drop=of_u1):
    index = IdempotencyIndex(paths.index)
    try:
        eraser = decision_log_eraser(paths, segment_seconds=60, index=index)
        (segment,) = eraser.segments()
        assert eraser.is_closed(segment)
        return eraser.rewrite(segment, drop)
    finally:
        index.close()


def reader(paths) -> DecisionLog:
    return DecisionLog(paths, window=lambda: timedelta(days=3650), clock=lambda: T0)


def test_the_other_subjects_records_stay_and_are_found_by_id(logged):
    (before,) = list_segments(logged.log, "decisions")
    kept_bytes = b"".join(_frame_bytes(before, lambda d: not of_u1(d)))
    mtime = before.stat().st_mtime_ns
    result = rewrite(logged)
    assert result.old == before.name and result.new == next_name(before.name) and result.kept == 20
    assert len(result.dropped) == 10
    (after,) = list_segments(logged.log, "decisions")
    assert after.name == result.new and after.read_bytes() == kept_bytes  # byte for byte, in order
    assert after.stat().st_mtime_ns == mtime  # retention and ordering see the same segment
    log = reader(logged)
    try:
        for i in range(30):
            found = log.find("uc", f"d{i:02d}")
            if i % 3 == 0:
                assert found is None
            else:
                assert found is not None and found.decision_id == f"d{i:02d}" and found.subject["user_id"] != "u1"
    finally:
        log.close()
    index = IdempotencyIndex(logged.index)
    assert index.count() == 20  # the deleted decisions' ids are forgotten
    index.close()
    assert not any(p.name.startswith(".") for p in logged.log.iterdir())  # no journal, no temporary file


def test_rewriting_again_drops_nothing_more(logged):
    rewrite(logged)
    assert rewrite(logged) is None
    assert rewrite(logged, drop=lambda d: d["subject"]["user_id"] == "u2").new.endswith(".r2.log")


@pytest.mark.parametrize("read_before", [0, 1, 2, 3, 4, 13, 15, 29, 30])
def test_a_consumer_reads_each_kept_record_once_after_the_switch(logged, read_before):
    stream = DecisionStream(logged, "label-joiner")
    first = []
    for record_, position in stream.pending():
        if len(first) == read_before:
            break
        first.append(record_.decision_id)
        stream.advance(position)
    stream.commit()
    rewrite(logged)
    stream = DecisionStream(logged, "label-joiner")  # a pass starts from the saved progress
    stream.reload()
    rest = [r.decision_id for r, _ in stream.pending()]
    kept = [f"d{i:02d}" for i in range(30) if i % 3]
    assert first == [f"d{i:02d}" for i in range(read_before)]
    assert rest == [d for d in kept if d not in first]  # nothing read twice, nothing skipped


def test_a_consumer_that_never_read_the_segment_reads_the_kept_records(logged):
    rewrite(logged)
    stream = DecisionStream(logged, "label-joiner")
    assert [r.decision_id for r, _ in stream.pending()] == [f"d{i:02d}" for i in range(30) if i % 3]


def test_a_segment_of_only_the_subject_is_deleted(logged):
    DecisionStream(logged, "label-joiner").commit()
    result = rewrite(logged, drop=lambda d: True)
    assert result.new is None and list_segments(logged.log, "decisions") == []
    assert json.loads((logged.consumers / "label-joiner.json").read_text()) == {}


class Crash(Exception):
    pass


def crash_at(monkeypatch, step: str, paths) -> None:
    """Makes the rewrite fail at one step, as a SIGKILL there would leave it."""
    real_write, real_replace, real_unlink = log_rewrite.write_file_durably, os.replace, pathlib.Path.unlink

    def write(path, data, exclusive=False):
        if (step == "journal" and path.name.startswith(".rewrite-")) or (
                step == "consumers" and path.parent == paths.consumers):
            raise Crash(step)
        return real_write(path, data, exclusive)

    def replace(source, target):
        if step == "rename" and str(target).endswith(".r1.log"):
            raise Crash(step)
        return real_replace(source, target)

    def unlink(self, missing_ok=False):
        if (step == "old segment" and self.name.endswith("-0001.log")) or (
                step == "journal removal" and self.name.startswith(".rewrite-")):
            raise Crash(step)
        return real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(log_rewrite, "write_file_durably", write)
    monkeypatch.setattr(log_rewrite.os, "replace", replace)
    monkeypatch.setattr(pathlib.Path, "unlink", unlink)
    if step == "index":
        real_move = IdempotencyIndex.move

        def move(self, *args):
            real_move(self, *args)
            raise Crash(step)  # moved, not yet forgotten the dropped ones

        monkeypatch.setattr(IdempotencyIndex, "move", move)


STEPS = ["journal", "rename", "consumers", "index", "old segment", "journal removal"]


@pytest.mark.parametrize("step", STEPS)
def test_a_rewrite_cut_short_is_finished_by_the_next_reader(logged, monkeypatch, step):
    stream = DecisionStream(logged, "label-joiner")
    for n, (_, position) in enumerate(stream.pending()):
        if n == 14:
            break
        stream.advance(position)
    stream.commit()  # d00..d13 read
    with monkeypatch.context() as patched:
        crash_at(patched, step, logged)
        with pytest.raises(Crash):
            rewrite(logged)
    # Whatever the step, every decision is still found by id right after the crash.
    log = reader(logged)
    assert all(log.find("uc", f"d{i:02d}") is not None for i in range(30) if i % 3)
    log.close()
    if step == "journal":  # cut before the switch began: nothing changed, and it runs again
        assert [p.name for p in list_segments(logged.log, "decisions")] == [_segment_zero(logged)]
        assert rewrite(logged).kept == 20
    stream = DecisionStream(logged, "label-joiner")
    stream.reload()  # the joiner's next pass finishes the rewrite first
    assert [r.decision_id for r, _ in stream.pending()] == [f"d{i:02d}" for i in range(14, 30) if i % 3]
    assert [p.name for p in list_segments(logged.log, "decisions")] == [next_name(_segment_zero(logged))]
    assert not any(p.name.startswith(".") for p in logged.log.iterdir())
    log = reader(logged)
    try:
        assert [i for i in range(30) if log.find("uc", f"d{i:02d}") is not None] == [i for i in range(30) if i % 3]
    finally:
        log.close()
    index = IdempotencyIndex(logged.index)
    assert index.count() == 20
    index.close()


@pytest.mark.parametrize("step", STEPS[1:])
def test_the_deletion_job_finishes_a_rewrite_cut_short(logged, monkeypatch, step):
    stream = DecisionStream(logged, "label-joiner")
    for _, position in stream.pending():
        stream.advance(position)
    stream.commit()  # read to the end
    with monkeypatch.context() as patched:
        crash_at(patched, step, logged)
        with pytest.raises(Crash):
            rewrite(logged)
    assert finish_interrupted_rewrites(logged) == 1
    assert finish_interrupted_rewrites(logged) == 0
    assert [r["decision_id"] for s in list_segments(logged.log, "decisions") for r, _ in iter_records(s)] == [
        f"d{i:02d}" for i in range(30) if i % 3]
    stream = DecisionStream(logged, "label-joiner")
    assert list(stream.pending()) == []  # still read to the end


def test_an_open_segment_is_not_rewritten(tmp_path):
    paths = DataDir(tmp_path).ensure().decisions
    log = DecisionLog(paths, window=lambda: timedelta(days=3650), clock=lambda: T0)
    log.record_once("uc", "d1", lambda: record("d1", "u1", T0))
    index = IdempotencyIndex(paths.index)
    eraser = decision_log_eraser(paths, segment_seconds=60, index=index)
    try:
        (segment,) = eraser.segments()
        assert not eraser.is_closed(segment)  # written just now by a live writer
    finally:
        log.close()
        index.close()


def _segment_zero(paths) -> str:
    return f"decisions-{_owner(paths)}-0001.log"


def _owner(paths) -> str:
    import socket

    return f"{socket.gethostname()}-{os.getpid()}"


def _frame_bytes(segment, keep):
    data = segment.read_bytes()
    return [data[p.start:p.offset] for r, p in iter_records(segment) if keep(r)]
