from __future__ import annotations

import threading

from services.platform.durable_log import (DurableLog, LogConsumer, deletable_segments, iter_records, list_segments,
                                          read_record)


def test_appends_are_readable_after_close(tmp_path):
    log = DurableLog(tmp_path, "t")
    for i in range(5):
        log.append({"i": i})
    log.close()
    records = [r for segment in list_segments(tmp_path, "t") for r, _ in iter_records(segment)]
    assert records == [{"i": i} for i in range(5)]


def test_concurrent_appends_share_fsyncs_and_all_land(tmp_path, monkeypatch):
    import os
    import time

    from services.platform import durable_log

    fsyncs = []
    real_fsync = os.fdatasync

    def slow_fsync(fd):  # a disk that takes 2 ms a flush, so appenders pile up behind it
        fsyncs.append(fd)
        time.sleep(0.002)
        real_fsync(fd)

    monkeypatch.setattr(durable_log.os, "fdatasync", slow_fsync)
    log = DurableLog(tmp_path, "t")
    fsyncs.clear()  # opening the segment synced the folder
    threads = [threading.Thread(target=lambda n=n: [log.append({"t": n, "i": i}) for i in range(50)])
               for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    records = [r for s in list_segments(tmp_path, "t") for r, _ in iter_records(s)]
    assert sorted((r["t"], r["i"]) for r in records) == [(n, i) for n in range(8) for i in range(50)]
    assert 0 < len(fsyncs) <= 400 / 2, f"{len(fsyncs)} fsyncs for 400 appends: group commit is not grouping"


def test_an_append_returns_only_after_its_fsync(tmp_path, monkeypatch):
    from services.platform import durable_log

    synced = threading.Event()
    real_fsync = durable_log.os.fdatasync
    log = DurableLog(tmp_path, "t")
    gate = threading.Event()

    def gated_fsync(fd):
        assert gate.wait(10)
        real_fsync(fd)
        synced.set()

    monkeypatch.setattr(durable_log.os, "fdatasync", gated_fsync)
    appender = threading.Thread(target=log.append, args=({"x": 1},))
    appender.start()
    appender.join(0.2)
    assert appender.is_alive() and not synced.is_set(), "append returned before the fsync"
    gate.set()
    appender.join(10)
    assert synced.is_set() and not appender.is_alive()
    log.close()


def test_an_appender_writes_its_own_record_and_those_queued_behind_it_go_together(tmp_path, monkeypatch):
    """Group commit without a writer thread: the appender that finds no write under way
    syncs on its own thread, and the appenders that queue meanwhile share the next sync."""
    import time

    from services.platform import durable_log

    real_fsync = durable_log.os.fdatasync
    log = DurableLog(tmp_path, "t")
    syncing, gate, synced_by = threading.Event(), threading.Event(), []

    def held_fsync(fd):
        synced_by.append(threading.current_thread().name)
        syncing.set()
        assert gate.wait(10)
        real_fsync(fd)

    monkeypatch.setattr(durable_log.os, "fdatasync", held_fsync)
    first = threading.Thread(target=log.append, args=({"i": 0},), name="first")
    first.start()
    assert syncing.wait(10)
    behind = [threading.Thread(target=log.append, args=({"i": i},), name=f"behind-{i}") for i in (1, 2)]
    for thread in behind:
        thread.start()
    deadline = time.monotonic() + 10
    while len(log._queue) < 2 and time.monotonic() < deadline:  # both wait behind the first's sync
        time.sleep(0.001)
    gate.set()
    for thread in (first, *behind):
        thread.join(10)
    log.close()
    assert synced_by[0] == "first" and len(synced_by) == 2 and synced_by[1].startswith("behind-"), synced_by
    assert sorted(r["i"] for s in list_segments(tmp_path, "t") for r, _ in iter_records(s)) == [0, 1, 2]


def test_a_torn_tail_is_ignored(tmp_path):
    log = DurableLog(tmp_path, "t")
    log.append({"ok": 1})
    log.close()
    segment = list_segments(tmp_path, "t")[0]
    with open(segment, "ab") as handle:
        handle.write(b"\x10\x00\x00\x00garbage")  # a crash in the middle of a write
    assert [r for r, _ in iter_records(segment)] == [{"ok": 1}]


def test_a_consumer_resumes_where_it_saved_its_progress(tmp_path):
    log = DurableLog(tmp_path / "log", "t")
    log.append_many([{"i": 0}, {"i": 1}])
    consumer = LogConsumer(tmp_path / "log", "t", tmp_path / "consumers", "reader")
    for record, position in consumer.pending():
        consumer.advance(position)
    consumer.save()
    log.append({"i": 2})
    log.close()
    again = LogConsumer(tmp_path / "log", "t", tmp_path / "consumers", "reader")
    assert [r for r, _ in again.pending()] == [{"i": 2}]
    assert LogConsumer(tmp_path / "log", "t", tmp_path / "consumers", "another").backlog_bytes() > 0


def test_an_appended_record_can_be_read_again_at_its_address(tmp_path):
    log = DurableLog(tmp_path, "t")
    first, second = log.append_many([{"i": 0}, {"i": 1}])
    third = log.append({"i": 2})
    log.close()
    assert [read_record(tmp_path, a) for a in (first, second, third)] == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert first.segment == second.segment and first.offset < second.offset < third.offset
    assert read_record(tmp_path, type(first)("gone.log", 0)) is None


def test_retention_deletes_only_old_segments_that_every_consumer_read(tmp_path):
    import os
    import time

    log = DurableLog(tmp_path / "log", "t", segment_bytes=10)  # a segment per record
    for i in range(3):
        log.append({"i": i})
    log.close()
    segments = list_segments(tmp_path / "log", "t")
    old = time.time() - 7200
    for segment in segments[:2]:
        os.utime(segment, (old, old))
    consumers = tmp_path / "consumers"

    def deletable():
        return deletable_segments(tmp_path / "log", "t", consumers, ["joiner"], older_than=time.time() - 3600)

    assert deletable() == []  # the joiner has not read anything yet
    reader = LogConsumer(tmp_path / "log", "t", consumers, "joiner")
    for record, position in reader.pending():
        if record["i"] == 0:
            reader.advance(position)
    reader.save()
    assert deletable() == [segments[0]]  # read and old; the second is old but unread; the third is new


def test_segments_rotate_by_size(tmp_path):
    log = DurableLog(tmp_path, "t", segment_bytes=100)
    for i in range(10):
        log.append({"payload": "x" * 40, "i": i})
    log.close()
    segments = list_segments(tmp_path, "t")
    assert len(segments) > 1
    assert [r["i"] for s in segments for r, _ in iter_records(s)] == list(range(10))


def test_a_failed_write_is_refused_cut_back_and_the_log_goes_on(tmp_path, monkeypatch):
    import errno

    import pytest

    from services.platform import durable_log
    from services.platform.errors import Unavailable

    log = DurableLog(tmp_path, "t")
    log.append({"i": 0})
    real_write_all = durable_log._write_all

    def disk_full(fd, data):  # half the bytes reach the file, then the disk is full
        real_write_all(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(durable_log, "_write_all", disk_full)
    with pytest.raises(Unavailable, match="No space left"):
        log.append({"i": 1, "payload": "x" * 100})
    assert not log.healthy and log.failed_writes == 1
    monkeypatch.setattr(durable_log, "_write_all", real_write_all)
    log.append({"i": 2})  # space is back
    assert log.healthy
    log.close()
    records = [r["i"] for s in list_segments(tmp_path, "t") for r, _ in iter_records(s)]
    assert records == [0, 2], "the refused record is not stored, and nothing after it is hidden"


def test_os_durability_acknowledges_before_the_sync(tmp_path, monkeypatch):
    from services.platform import durable_log
    from services.platform.durable_log import Durability

    synced = threading.Event()
    gate = threading.Event()
    real_fsync = durable_log.os.fdatasync

    def slow_fsync(fd):
        gate.wait(10)
        real_fsync(fd)
        synced.set()

    log = DurableLog(tmp_path, "t", durability=Durability.OS)
    monkeypatch.setattr(durable_log.os, "fdatasync", slow_fsync)
    log.append({"i": 0})  # returns although the sync is held
    assert not synced.is_set()
    gate.set()
    log.close()
    assert synced.is_set() and [r for s in list_segments(tmp_path, "t") for r, _ in iter_records(s)] == [{"i": 0}]


def test_a_writer_that_dies_of_a_bug_refuses_appenders_instead_of_hanging_them(tmp_path, monkeypatch):
    import pytest

    from services.platform.errors import Unavailable

    log = DurableLog(tmp_path, "t")
    log.append({"i": 0})
    monkeypatch.setattr(log, "_write", lambda batch: 1 / 0)
    answers: list = []

    def append(i):
        try:
            answers.append(log.append({"i": i}))
        except Unavailable as err:
            answers.append(err)

    appenders = [threading.Thread(target=append, args=(i,)) for i in (1, 2)]
    for thread in appenders:
        thread.start()
    for thread in appenders:
        thread.join(10)
    assert not any(thread.is_alive() for thread in appenders), "an appender hangs on a dead writer"
    assert len(answers) == 2 and all(isinstance(a, Unavailable) and "writer stopped" in str(a) for a in answers)
    with pytest.raises(Unavailable, match="writer stopped"):
        log.append({"i": 3})  # and so does every later append
    log.close()
    assert [r for s in list_segments(tmp_path, "t") for r, _ in iter_records(s)] == [{"i": 0}]


def test_the_backlog_is_the_bytes_each_segment_holds_past_what_the_consumer_read(tmp_path):
    log = DurableLog(tmp_path / "log", "t", segment_bytes=10)  # a segment per record
    for i in range(3):
        log.append({"i": i, "pad": "x" * i})
    log.close()
    segments = list_segments(tmp_path / "log", "t")
    sizes = [s.stat().st_size for s in segments]
    reader = LogConsumer(tmp_path / "log", "t", tmp_path / "consumers", "joiner")
    assert reader.backlog_bytes() == sum(sizes)
    first, position = next(reader.pending())
    reader.advance(position)  # the whole first segment is read
    assert first == {"i": 0, "pad": ""} and reader.backlog_bytes() == sizes[1] + sizes[2]
    reader.offsets[segments[2].name] = sizes[2] - 5  # part of the third
    assert reader.backlog_bytes() == sizes[1] + 5
    reader.offsets[segments[1].name] = sizes[1] + 100  # past the end (a rewritten, shorter segment) counts 0
    assert reader.backlog_bytes() == 5


def test_a_sync_that_fails_after_the_ack_is_counted_once_and_turns_the_log_unhealthy(tmp_path, monkeypatch):
    import errno

    from services.platform import durable_log
    from services.platform.durable_log import Durability

    log = DurableLog(tmp_path, "t", durability=Durability.OS)
    log.append({"i": 0})
    assert log.healthy and log.failed_writes == 0
    failed = threading.Event()

    def broken_sync(fd):
        failed.set()
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(durable_log.os, "fdatasync", broken_sync)
    log.append({"i": 1})  # acknowledged before the sync fails
    assert failed.wait(10)
    log.close()  # the writer has finished with the failed sync
    assert log.failed_writes == 1 and not log.healthy
    assert [r for s in list_segments(tmp_path, "t") for r, _ in iter_records(s)] == [{"i": 0}, {"i": 1}]


def test_records_are_compact_json_with_str_keys_and_a_nan_read_back_as_missing(tmp_path):
    log = DurableLog(tmp_path, "t")
    log.append({"features": {"tenure": float("nan"), "country": "de"}, "by_rank": {1: "a"}, "flags": (True, None)})
    log.close()
    [record] = [r for segment in list_segments(tmp_path, "t") for r, _ in iter_records(segment)]
    assert record == {"features": {"tenure": None, "country": "de"}, "by_rank": {"1": "a"}, "flags": [True, None]}
