"""A busy DurableLog writes into spare segments made ready ahead of need (zeros, synced), so
that its fsyncs flush no file-system metadata; readers must never mistake those zeros for
records, and retention and the backlog must count records, not zeros."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from services.platform import durable_log
from services.platform.durable_log import (DurableLog, LogConsumer, data_end, deletable_segments, iter_records,
                                          list_segments, process_owner)

SEGMENT = 64 * 1024


def busy_log(folder, **options) -> DurableLog:
    """A log that keeps a spare of SEGMENT bytes once it has written 1 KiB."""
    return DurableLog(folder, "t", segment_bytes=SEGMENT, spare_after_bytes=1024, **options)


def wait_for_spare(log: DurableLog) -> None:
    deadline = time.monotonic() + 10
    while not log._spares.ready():
        assert time.monotonic() < deadline, "no spare segment was made"
        time.sleep(0.01)


def records(folder) -> list[int]:
    return [r["i"] for s in list_segments(folder, "t") for r, _ in iter_records(s)]


def test_a_busy_log_moves_into_a_spare_of_zeros_and_cuts_each_segment_to_its_records(tmp_path):
    log = busy_log(tmp_path)
    for i in range(20):  # 20 records of ~110 bytes: past the KiB that makes the log busy
        log.append({"i": i, "pad": "x" * 100})
    wait_for_spare(log)  # the first spare went into use at once (the first segment had no room), this is the next
    [spare] = tmp_path.glob("t-*.spare")
    assert spare.stat().st_size == SEGMENT and spare.read_bytes() == bytes(SEGMENT)
    log.append({"i": 20})
    current = log.segment_path
    assert current.stat().st_size == SEGMENT > data_end(current), "written into the room, not past it"
    for i in range(21, 1000):  # fills the spare and the next ones
        log.append({"i": i, "pad": "x" * 100})
    wait_for_spare(log)  # each spare taken is replaced
    log.close()
    assert records(tmp_path) == list(range(1000))
    segments = list_segments(tmp_path, "t")
    assert len(segments) > 2 and not list(tmp_path.glob("t-*.spare")), "closing removed the unused spare"
    for segment in segments:
        assert segment.stat().st_size == data_end(segment), f"{segment.name} keeps zeros past its records"
        assert segment.stat().st_size <= SEGMENT


def test_a_segment_left_by_a_crash_keeps_its_zeros_and_readers_stop_at_them(tmp_path):
    log = busy_log(tmp_path / "log")
    for i in range(20):
        log.append({"i": i, "pad": "x" * 100})
    wait_for_spare(log)
    for i in range(20, 25):
        log.append({"i": i})
    crashed = tmp_path / "crashed"  # the files as a SIGKILL would leave them: the log never closed
    shutil.copytree(tmp_path / "log", crashed, ignore=shutil.ignore_patterns("*.spare"))
    log.close()
    segments = list_segments(crashed, "t")
    last = segments[-1]
    assert last.stat().st_size == SEGMENT > data_end(last)
    assert records(crashed) == list(range(25))
    reader = LogConsumer(crashed, "t", tmp_path / "consumers", "joiner")
    assert reader.backlog_bytes() == sum(data_end(s) for s in segments), "zeros are no backlog"
    for _, position in reader.pending():
        reader.advance(position)
    reader.save()
    assert reader.backlog_bytes() == 0
    old = time.time() - 7200
    for segment in segments:
        os.utime(segment, (old, old))
    assert deletable_segments(crashed, "t", tmp_path / "consumers", ["joiner"],
                              older_than=time.time() - 3600) == segments, "read to its records' end"


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 5000, 8192, 3 * 4096 + 7])
@pytest.mark.parametrize("zeros", [0, 1, 4095, 4096, 4097, 40000])
def test_data_end_finds_the_end_of_the_records_before_any_zeros(tmp_path, size, zeros):
    path = tmp_path / "t-x.log"
    frames = b""
    i = 0
    while len(frames) < size:  # whole records (their headers hold zero bytes), about ``size`` bytes
        frames += durable_log._frame(durable_log._encoded({"i": i, "pad": "x" * (i % 300)}))
        i += 1
    path.write_bytes(frames + bytes(zeros))
    assert data_end(path) == len(frames)
    assert sum(1 for _ in iter_records(path)) == i


def test_a_failed_write_into_a_spare_is_cut_back_and_the_log_goes_on(tmp_path, monkeypatch):
    import errno

    from services.platform.errors import Unavailable

    log = busy_log(tmp_path)
    for i in range(20):
        log.append({"i": i, "pad": "x" * 100})
    wait_for_spare(log)
    log.append({"i": 20})  # now in the spare
    real_write_all = durable_log._write_all

    def disk_full(fd, data):
        real_write_all(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(durable_log, "_write_all", disk_full)
    with pytest.raises(Unavailable):
        log.append({"i": 21, "pad": "x" * 100})
    monkeypatch.setattr(durable_log, "_write_all", real_write_all)
    log.append({"i": 22})
    log.close()
    assert records(tmp_path) == list(range(21)) + [22]
    for segment in list_segments(tmp_path, "t"):
        assert segment.stat().st_size == data_end(segment)


def test_spares_left_by_a_dead_process_are_removed_and_a_live_ones_kept(tmp_path):
    import socket
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f"t-{socket.gethostname()}-{dead.pid}-0001.spare"
    live = tmp_path / f"t-{process_owner()}-0009.spare"
    elsewhere = tmp_path / "t-another.host-12-0001.spare"
    for path in (stale, live, elsewhere):
        path.write_bytes(bytes(10))
    DurableLog(tmp_path, "t").close()
    assert not stale.exists() and live.exists() and elsewhere.exists()


def test_no_spare_is_made_where_it_would_take_the_logs_last_room(tmp_path, monkeypatch):
    import threading
    from types import SimpleNamespace

    looked = threading.Event()

    def statvfs(folder):  # a block short of room for two spares
        looked.set()
        return SimpleNamespace(f_bavail=2 * SEGMENT // 4096 - 1, f_frsize=4096)

    monkeypatch.setattr(durable_log.os, "statvfs", statvfs)
    log = busy_log(tmp_path)
    for i in range(20):
        log.append({"i": i, "pad": "x" * 100})
    assert looked.wait(10), "the spare thread never checked the free space"
    deadline = time.monotonic() + 0.5  # time enough to make a spare of 64 KiB, had it gone on
    while time.monotonic() < deadline:
        assert not log._spares.ready() and not list(tmp_path.glob("t-*.spare"))
        time.sleep(0.02)
    log.append({"i": 20})
    log.close()
    assert records(tmp_path) == list(range(21))
