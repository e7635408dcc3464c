"""Two processes writing the shared id index: a transaction waits for the other's to end
(however short it is) and then goes on; one that waits past the limit is Unavailable."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from services.platform import id_index
from services.platform.errors import Unavailable
from services.platform.id_index import IdempotencyIndex


def hold_lock(path, held: threading.Event, release: threading.Event) -> threading.Thread:
    """Another process's writer: takes the write lock and keeps it until told."""
    def run():
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        held.set()
        release.wait(10)
        other.execute("COMMIT")
        other.close()

    thread = threading.Thread(target=run)
    thread.start()
    assert held.wait(10)
    return thread


def test_a_claim_waits_for_another_writer_and_then_goes_on(tmp_path):
    index = IdempotencyIndex(tmp_path / "ids.sqlite")
    held, release = threading.Event(), threading.Event()
    writer = hold_lock(tmp_path / "ids.sqlite", held, release)
    claimed: list = []
    claimer = threading.Thread(target=lambda: claimed.append(index.claim("uc", ["d1"], 1.0)))
    claimer.start()
    claimer.join(0.3)
    assert claimer.is_alive() and not claimed, "the claim went ahead while another process held the lock"
    release.set()
    claimer.join(10)
    writer.join(10)
    assert claimed == [{}] and index.get("uc", "d1").owner == index.owner
    index.close()


def test_a_claim_that_waits_past_the_limit_is_unavailable_and_the_index_still_serves(tmp_path, monkeypatch):
    monkeypatch.setattr(id_index, "LOCK_WAIT_SECONDS", 0.2)
    index = IdempotencyIndex(tmp_path / "ids.sqlite")
    held, release = threading.Event(), threading.Event()
    writer = hold_lock(tmp_path / "ids.sqlite", held, release)
    try:
        with pytest.raises(Unavailable, match="database is locked"):
            index.claim("uc", ["d1"], 1.0)
    finally:
        release.set()
        writer.join(10)
    assert index.claim("uc", ["d1"], 1.0) == {} and index.count() == 1
    index.close()
