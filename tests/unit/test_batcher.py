"""The micro-batchers: concurrent callers (on threads, or on an asyncio loop) share one call
of the batch function, each gets its own result or error, and nobody waits past their
deadline."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from services.decision.batcher import AsyncBatcher, BatchTimeout, MicroBatcher


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


def _polled(condition, seconds=10.0):
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.001)


def _answered(pending, seconds=10.0):
    return pending.result(seconds)


def _after_a_batch(items: list, linger: float = 0.0, returning: list = ()) -> tuple[MicroBatcher, list]:
    """A batcher that has just answered a batch of ``items[1:]`` (queued while ``items[0]``
    held its worker) and of ``returning`` (enqueued once it is released, as the first
    item's caller coming back), and the batches it processed."""
    calls: list = []
    gate = threading.Event()

    def process(batch):
        calls.append(list(batch))
        gate.wait(5)
        return batch

    batcher = MicroBatcher("test", process, linger=linger)
    first = batcher.enqueue(items[0])
    _polled(lambda: calls)  # the worker holds the first while the others queue
    queued = [batcher.enqueue(x) for x in items[1:]]
    gate.set()
    assert _answered(first) == items[0]
    time.sleep(0.1)  # a worker that did not linger (1 s here) would have taken the queued ones alone by now
    queued += [batcher.enqueue(x) for x in returning]
    assert [_answered(p) for p in queued] == [*items[1:], *returning]
    assert calls == [items[:1], [*items[1:], *returning]]
    return batcher, calls


def test_calls_split_in_two_groups_merge_the_first_caller_back_joins_those_that_queued_meanwhile():
    """One call held the worker while four queued: five callers are about. The next batch
    waits for the fifth rather than alternating between a group of one and a group of four."""
    batcher, calls = _after_a_batch(list("abcde"), linger=1.0, returning=["f"])
    batcher.close()
    assert calls[1] == list("bcdef")


def test_after_a_batch_of_n_the_next_lingers_for_n_items_then_shrinks_when_they_stop_coming():
    batcher, calls = _after_a_batch(list("abcd"), linger=1.0, returning=["e"])
    try:
        arriving = [batcher.enqueue("f")]  # they come back one by one, as answered callers do
        time.sleep(0.1)  # a worker that did not linger (1 s here) would have taken "f" alone by now
        arriving += [batcher.enqueue(x) for x in "ghi"]
        assert [_answered(p) for p in arriving] == list("fghi")
        assert calls[2] == list("fghi"), "the batch after one of four waited for four, not the first to come"
        alone = batcher.enqueue("j")  # only one comes: it goes after the linger, and the size resets
        assert _answered(alone) == "j" and calls[3] == ["j"]
        assert _answered(batcher.enqueue("k")) == "k" and calls[4] == ["k"]
        assert batcher.batches == 5 and batcher.items == 11
    finally:
        batcher.close()


def test_without_linger_a_batch_takes_what_has_queued_and_never_waits_for_more():
    batcher, calls = _after_a_batch([1, 2, 3, 4])
    try:
        assert _answered(batcher.enqueue(5)) == 5
        assert calls[-1] == [5], "a lone item after a batch of three went alone at once"
    finally:
        batcher.close()


# --- AsyncBatcher: callers on an event loop ---------------------------------------------
def _gated(calls: list, gate: threading.Event, fail_on=None):
    """A batch function that records its batches and holds its thread until ``gate``."""

    def process(items):
        calls.append((list(items), threading.current_thread().name))
        gate.wait(5)
        if fail_on in items:
            raise RuntimeError("the batch failed")
        return [ValueError(f"bad {i}") if i == "bad" else i * 2 for i in items]

    return process


def test_calls_on_the_loop_that_queue_while_a_batch_runs_go_together_each_answered_in_its_place():
    calls, gate = [], threading.Event()
    batcher = AsyncBatcher("test", _gated(calls, gate))

    async def scenario():
        first = asyncio.ensure_future(batcher.submit(1))
        while not calls:  # the loop stays free while the first batch holds the batcher's thread
            await asyncio.sleep(0.001)
        rest = [asyncio.ensure_future(batcher.submit(x)) for x in (2, "bad", 4)]
        await asyncio.sleep(0.05)
        gate.set()
        answers = await asyncio.gather(first, *rest, return_exceptions=True)
        return answers

    try:
        answers = asyncio.run(scenario())
    finally:
        batcher.close()
    assert answers[:2] == [2, 4] and isinstance(answers[2], ValueError) and answers[3] == 8
    assert [batch for batch, _ in calls] == [[1], [2, "bad", 4]]
    assert all(thread.startswith("test-batcher") for _, thread in calls), "a batch ran on the loop's thread"
    assert (batcher.batches, batcher.items) == (2, 4)


def test_a_failed_batch_on_the_loop_tells_every_caller_and_the_next_batch_runs():
    calls, gate = [], threading.Event()
    gate.set()
    batcher = AsyncBatcher("test", _gated(calls, gate, fail_on="boom"))

    async def scenario():
        failed = await asyncio.gather(batcher.submit("boom"), return_exceptions=True)
        return failed, await batcher.submit(3)

    try:
        failed, after = asyncio.run(scenario())
    finally:
        batcher.close()
    assert isinstance(failed[0], RuntimeError) and after == 6


def test_a_closed_batcher_on_the_loop_refuses_callers_instead_of_leaving_them_waiting():
    calls, gate = [], threading.Event()
    gate.set()
    batcher = AsyncBatcher("test", _gated(calls, gate))

    async def scenario():
        first = await batcher.submit(1)
        batcher.close()  # waits for nothing: the first batch was answered
        with pytest.raises(RuntimeError, match="closed"):
            await asyncio.wait_for(batcher.submit(2), 5)
        return first

    assert asyncio.run(scenario()) == 2 and [batch for batch, _ in calls] == [[1]]


def test_closing_the_batcher_on_the_loop_waits_for_the_batch_being_processed():
    calls, gate, closed = [], threading.Event(), threading.Event()
    batcher = AsyncBatcher("test", _gated(calls, gate))

    async def scenario():
        first = asyncio.ensure_future(batcher.submit(1))
        while not calls:
            await asyncio.sleep(0.001)
        closer = threading.Thread(target=lambda: (batcher.close(), closed.set()))
        closer.start()
        await asyncio.sleep(0.05)
        assert not closed.is_set(), "close returned while a batch was being processed"
        gate.set()
        answer = await first
        closer.join(5)
        return answer

    assert asyncio.run(scenario()) == 2 and closed.is_set()


def test_a_caller_on_the_loop_waits_no_longer_than_its_timeout_and_its_item_is_still_processed():
    calls, gate = [], threading.Event()
    batcher = AsyncBatcher("test", _gated(calls, gate))

    async def scenario():
        started = time.monotonic()
        with pytest.raises(BatchTimeout):
            await batcher.submit(5, timeout=0.05)
        waited = time.monotonic() - started
        gate.set()
        return waited, await batcher.submit(6, timeout=5)

    try:
        waited, later = asyncio.run(scenario())
    finally:
        batcher.close()
    assert waited < 2 and later == 12
    assert [batch for batch, _ in calls] == [[5], [6]], "the timed-out item was not processed"


def test_on_the_loop_a_batch_after_one_of_n_callers_lingers_for_n_then_shrinks_when_they_stop_coming():
    """Four callers answered together come back one by one: with a linger they go together
    again (not the first alone and then the rest); when only one comes, it goes after the
    linger, and the next lone caller does not wait."""
    calls, gate = [], threading.Event()
    gate.set()
    batcher = AsyncBatcher("test", _gated(calls, gate), linger=1.0)

    async def one_by_one(items):
        arriving = []
        for item in items:
            arriving.append(asyncio.ensure_future(batcher.submit(item)))
            await asyncio.sleep(0.02)  # a batcher that did not linger would have taken the first alone
        return await asyncio.gather(*arriving)

    async def scenario():
        first = await asyncio.gather(*(batcher.submit(x) for x in (1, 2, 3, 4)))
        again = await one_by_one((5, 6, 7, 8))
        started = time.monotonic()
        alone = await batcher.submit(9)
        lingered = time.monotonic() - started
        started = time.monotonic()
        next_alone = await batcher.submit(10)
        return first, again, alone, lingered, next_alone, time.monotonic() - started

    try:
        first, again, alone, lingered, next_alone, waited = asyncio.run(scenario())
    finally:
        batcher.close()
    assert first == [2, 4, 6, 8] and again == [10, 12, 14, 16] and (alone, next_alone) == (18, 20)
    assert [batch for batch, _ in calls] == [[1, 2, 3, 4], [5, 6, 7, 8], [9], [10]]
    assert lingered >= 0.9, "a batch smaller than the last one's callers went without waiting for them"
    assert waited < 0.9, "a lone caller after a lone caller waited for more"


def test_on_the_loop_without_linger_a_lone_caller_after_a_batch_goes_at_once():
    calls, gate = [], threading.Event()
    gate.set()
    batcher = AsyncBatcher("test", _gated(calls, gate))

    async def scenario():
        await asyncio.gather(*(batcher.submit(x) for x in (1, 2, 3)))
        return await batcher.submit(4)

    try:
        assert asyncio.run(scenario()) == 8
    finally:
        batcher.close()
    assert [batch for batch, _ in calls] == [[1, 2, 3], [4]]


def test_on_the_loop_after_a_linger_in_vain_the_next_batches_that_would_wait_go_at_once():
    """Callers that arrive on their own (not answered ones coming back) make a linger wait in
    vain: after one, the next ``retry_linger_after`` batches that would have waited go at
    once, and then the batcher lingers again."""
    calls, gate = [], threading.Event()
    gate.set()
    batcher = AsyncBatcher("test", _gated(calls, gate), linger=1.0, retry_linger_after=2)

    async def one_by_one(items):
        arriving = []
        for item in items:
            arriving.append(asyncio.ensure_future(batcher.submit(item)))
            await asyncio.sleep(0.05)  # a batcher that lingers (1 s here) takes them together
        return await asyncio.gather(*arriving)

    async def scenario():
        await asyncio.gather(*(batcher.submit(x) for x in (1, 2, 3, 4)))
        await batcher.submit(5)  # alone after four: lingers in vain
        for start in (10, 20, 30):
            await asyncio.gather(*(batcher.submit(x) for x in range(start, start + 4)))
            await one_by_one(range(start + 4, start + 8))

    try:
        asyncio.run(scenario())
    finally:
        batcher.close()
    batches = [batch for batch, _ in calls]
    assert batches[:2] == [[1, 2, 3, 4], [5]]
    assert batches[2] == [10, 11, 12, 13] and batches[3] == [14], "a batch waited right after a wait in vain"
    first_after_20 = batches.index([20, 21, 22, 23]) + 1
    assert batches[first_after_20] == [24], "the second batch after a wait in vain waited"
    assert [30, 31, 32, 33] in batches and batches[-1] == [34, 35, 36, 37], "the batcher never lingered again"
