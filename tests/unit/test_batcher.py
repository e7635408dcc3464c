"""The micro-batcher: concurrent callers share one call of the batch function, each gets its
own result or error, and nobody waits past their deadline."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from services.decision.batcher import BatchTimeout, MicroBatcher


def test_concurrent_items_are_processed_together_and_answered_in_their_own_place():
    calls = []
    gate = threading.Event()

    def process(items):
        calls.append(list(items))
        gate.wait(5)  # the first batch holds the worker while the others queue
        return [item * 10 for item in items]

    batcher = MicroBatcher("test", process)
    try:
        with ThreadPoolExecutor(8) as pool:
            first = pool.submit(batcher.submit, 0, 10)
            while not calls:
                pass
            rest = [pool.submit(batcher.submit, i, 10) for i in range(1, 8)]
            while batcher._queue and len(batcher._queue) < 7:
                pass
            gate.set()
            assert first.result() == 0 and [f.result() for f in rest] == [i * 10 for i in range(1, 8)]
        assert calls[0] == [0] and sorted(calls[1]) == list(range(1, 8)), "the queued items went in one batch"
        assert (batcher.batches, batcher.items) == (2, 8)
    finally:
        batcher.close()


def test_each_item_gets_its_own_error_and_a_failed_batch_fails_every_item():
    batcher = MicroBatcher("test", lambda items: [ValueError(f"bad {i}") if i < 0 else i for i in items])
    try:
        assert batcher.submit(3, 5) == 3
        with pytest.raises(ValueError, match="bad -1"):
            batcher.submit(-1, 5)
    finally:
        batcher.close()
    broken = MicroBatcher("test", lambda items: 1 / 0)
    try:
        with pytest.raises(ZeroDivisionError):
            broken.submit(1, 5)
    finally:
        broken.close()


def test_a_caller_waits_no_longer_than_its_deadline():
    stuck = threading.Event()
    batcher = MicroBatcher("test", lambda items: stuck.wait(10) and items)
    with pytest.raises(BatchTimeout, match="deadline"):
        batcher.submit(1, timeout=0.05)
    stuck.set()
    batcher.close()


def test_an_enqueued_item_can_be_waited_for_in_steps():
    release = threading.Event()
    batcher = MicroBatcher("test", lambda items: release.wait(10) and [item + 1 for item in items])
    try:
        pending = batcher.enqueue(1)
        with pytest.raises(BatchTimeout):
            pending.result(0.01)
        release.set()
        assert pending.result(5) == 2 and pending.result(0) == 2
    finally:
        release.set()
        batcher.close()
