from __future__ import annotations

import threading

from services.core.durable_log import DurableLog, LogCheckpoint, iter_records, list_segments


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

    from services.core import durable_log

    fsyncs = []
    real_fsync = os.fsync

    def slow_fsync(fd):  # a disk that takes 2 ms a flush, so appenders pile up behind it
        fsyncs.append(fd)
        time.sleep(0.002)
        real_fsync(fd)

    monkeypatch.setattr(durable_log.os, "fsync", slow_fsync)
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
    from services.core import durable_log

    synced = threading.Event()
    real_fsync = durable_log.os.fsync
    log = DurableLog(tmp_path, "t")
    gate = threading.Event()

    def gated_fsync(fd):
        assert gate.wait(10)
        real_fsync(fd)
        synced.set()

    monkeypatch.setattr(durable_log.os, "fsync", gated_fsync)
    appender = threading.Thread(target=log.append, args=({"x": 1},))
    appender.start()
    appender.join(0.2)
    assert appender.is_alive() and not synced.is_set(), "append returned before the fsync"
    gate.set()
    appender.join(10)
    assert synced.is_set() and not appender.is_alive()
    log.close()


def test_a_torn_tail_is_ignored(tmp_path):
    log = DurableLog(tmp_path, "t")
    log.append({"ok": 1})
    log.close()
    segment = list_segments(tmp_path, "t")[0]
    with open(segment, "ab") as handle:
        handle.write(b"\x10\x00\x00\x00garbage")  # a crash in the middle of a write
    assert [r for r, _ in iter_records(segment)] == [{"ok": 1}]


def test_checkpoint_replays_only_what_was_not_consumed(tmp_path):
    log = DurableLog(tmp_path / "log", "t")
    log.append_many([{"i": 0}, {"i": 1}])
    checkpoint = LogCheckpoint(tmp_path / "cp.json")
    for record, position in checkpoint.pending(tmp_path / "log", "t"):
        checkpoint.advance(position)
    checkpoint.save()
    log.append({"i": 2})
    log.close()
    again = LogCheckpoint(tmp_path / "cp.json")
    assert [r for r, _ in again.pending(tmp_path / "log", "t")] == [{"i": 2}]


def test_segments_rotate_by_size(tmp_path):
    log = DurableLog(tmp_path, "t", segment_bytes=100)
    for i in range(10):
        log.append({"payload": "x" * 40, "i": i})
    log.close()
    segments = list_segments(tmp_path, "t")
    assert len(segments) > 1
    assert [r["i"] for s in segments for r, _ in iter_records(s)] == list(range(10))
