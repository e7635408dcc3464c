"""Batching across concurrent calls: items that arrive together are processed in one call.

A ``MicroBatcher`` has one worker thread. A caller submits its item and waits for its
result; the worker takes everything queued so far, processes it in one call, and hands each
caller its own result (or its own error). Under light load a batch is one item and costs
only the hand-over; under heavy load the items that queued while the previous batch ran go
together, and with a ``linger`` a batch smaller than the one before waits a moment for as
many (the callers of the last batch come back a little apart). A caller waits at most until its
deadline, so a stuck dependency (a locked feature store) costs a decision its deadline, not
more.

An ``AsyncBatcher`` does the same for callers on an asyncio event loop: while one batch is
processed on its thread, the calls that arrive queue on the loop and go together next, and
with a ``linger`` a batch smaller than the last one's callers (those answered and those that
queued meanwhile) waits a moment for them. Without it, 16 callers on one Decision process
settled into two groups of 8 taking turns (measured: 7.9 decisions a batch), each paying a
batch's fixed cost. Callers that arrive independently would make it wait in vain, so after
such a wait it goes without waiting for a while.

The Decision service's asyncio server makes concurrent Decide calls together in an
``AsyncBatcher`` (one claim of their ids, one read per feature view, one call per model, one
durable write: see ``Decider``); ``Decider.decide`` does so in a ``MicroBatcher`` for
callers on threads; and each batch's feature read is handed to a second ``MicroBatcher``, so
that a feature store that does not answer holds up no decision past its deadline.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from typing import Callable, Generic, TypeVar

log = logging.getLogger("looper.batcher")
T = TypeVar("T")
R = TypeVar("R")


class BatchTimeout(TimeoutError):
    """The result did not come before the caller's deadline."""


class Pending(Generic[T]):
    """A submitted item: ``result`` waits for what the batch gave it."""

    __slots__ = ("item", "name", "_done", "_result", "_error")

    def __init__(self, item: T, name: str):
        self.item, self.name = item, name
        # A lock held until the answer comes: acquiring it is the wait. (A threading.Event
        # does the same through a Condition written in Python, several times the cost per
        # decision.) It is released once and never acquired for good, so it stays free.
        self._done = threading.Lock()
        self._done.acquire()
        self._result = self._error = None

    def result(self, timeout: float | None = None):
        """The item's result, its error raised, or BatchTimeout after ``timeout`` seconds
        (None: no limit); it may be asked again with a longer timeout."""
        wait = -1 if timeout is None else max(0.0, min(timeout, threading.TIMEOUT_MAX))
        if not self._done.acquire(timeout=wait):
            raise BatchTimeout(f"{self.name} did not answer within the call's deadline")
        self._done.release()  # answered: every later ask returns at once
        if self._error is not None:
            raise self._error
        return self._result

    def _answer(self, result) -> None:
        if isinstance(result, BaseException):
            self._error = result
        else:
            self._result = result
        self._done.release()


class MicroBatcher(Generic[T, R]):
    def __init__(self, name: str, process: Callable[[list[T]], list[R | BaseException]], max_items: int = 512,
                 linger: float = 0.0):
        """``process`` gets the batch's items and returns, in order, each one's result or
        the exception that item alone met. With ``linger`` (seconds), a batch smaller than
        the one before waits up to that long for as many items (see ``_take``)."""
        self.name, self.process, self.max_items, self.linger = name, process, max_items, linger
        self.batches = self.items = 0  # counters: the mean batch size is items / batches
        self._wanted = 1  # how many queued items wake the worker
        self._last_size = 0  # the size of the batch last taken
        self._queue: list[Pending[T]] = []
        self._cond = threading.Condition()
        self._closed = False
        self._worker = threading.Thread(target=self._run, name=f"{name}-batcher", daemon=True)
        self._worker.start()

    def submit(self, item: T, timeout: float | None = None) -> R:
        """Processes ``item`` with whatever else is queued; its result, or its error raised
        (BatchTimeout when ``timeout`` seconds pass first)."""
        return self.enqueue(item).result(timeout)

    def enqueue(self, item: T) -> Pending[T]:
        pending = Pending(item, self.name)
        with self._cond:
            if self._closed:
                raise RuntimeError(f"the {self.name} batcher is closed")
            self._queue.append(pending)
            if len(self._queue) >= self._wanted:
                self._cond.notify()
        return pending

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._worker.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                batch = self._take()
            if not batch:
                return
            self.batches, self.items = self.batches + 1, self.items + len(batch)
            self._answer(batch)

    def _take(self) -> list[Pending[T]]:
        """The next batch (empty once closed and drained). Under a steady load of n calls at
        once, each batch is answered together and its callers come back a little apart;
        the calls that queued meanwhile are the rest of the n. Lingering until the last
        batch's callers and those have queued (or ``linger`` passes) keeps the n in one batch,
        rather than in several small ones that then alternate for good."""
        callers = self._last_size + len(self._queue)  # the last batch's, and those that came meanwhile
        while not self._queue and not self._closed:
            self._cond.wait()
        wanted = min(callers, self.max_items)
        if self.linger and len(self._queue) < wanted:
            deadline = time.monotonic() + self.linger
            self._wanted = wanted
            while len(self._queue) < wanted and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0 or not self._cond.wait(left):
                    break
            self._wanted = 1
        batch, self._queue = self._queue[:self.max_items], self._queue[self.max_items:]
        self._last_size = len(batch)
        return batch

    def _answer(self, batch: list[Pending[T]]) -> None:
        results = _processed(self.name, self.process, [p.item for p in batch])
        for pending, result in zip(batch, results):
            pending._answer(result)


class AsyncBatcher(Generic[T, R]):
    def __init__(self, name: str, process: Callable[[list[T]], list[R | BaseException]], max_items: int = 512,
                 linger: float = 0.0, retry_linger_after: int = 16):
        """``process`` as MicroBatcher's; it runs on the batcher's one thread, never on the loop.
        With ``linger`` (seconds), a batch waits up to that long for as many items as the last
        batch had callers; after a wait in vain, the next ``retry_linger_after`` batches that
        would wait do not (see ``_linger``)."""
        self.name, self.process, self.max_items, self.linger = name, process, max_items, linger
        self.retry_linger_after = retry_linger_after
        self.batches = self.items = 0
        self._queue: list[tuple[T, asyncio.Future, asyncio.TimerHandle | None]] = []
        self._draining: asyncio.Task | None = None
        self._callers = 1  # the last batch's callers and those that queued while it ran
        self._enough: asyncio.Future | None = None  # True once that many have queued, False when the linger ends
        self._not_lingering = 0  # batches left that go without waiting, after a wait in vain
        # Batches go to their thread through a queue, and come back by call_soon_threadsafe:
        # a round trip of 44-47 us against 70-95 through loop.run_in_executor, whose futures
        # and callbacks cost the rest (a decision in one process: 1.48-1.53 ms against
        # 1.54-1.56, three alternating runs each).
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._worker: threading.Thread | None = None  # started with the first batch
        self._closed = False

    async def submit(self, item: T, timeout: float | None = None) -> R:
        """Processes ``item`` with the others that queue meanwhile; its result, or its error
        raised (BatchTimeout when ``timeout`` seconds pass first: the item is still processed)."""
        if self._closed:
            raise RuntimeError(f"the {self.name} batcher is closed")
        loop = asyncio.get_running_loop()
        answer = loop.create_future()
        # A timer that answers BatchTimeout unless the batch answers first (asyncio.wait_for
        # and a shield cost several times more, for every call that has a deadline)
        timer = None if timeout is None else loop.call_later(max(0.0, timeout), self._expire, answer)
        self._queue.append((item, answer, timer))
        if self._enough is not None and len(self._queue) >= self._callers and not self._enough.done():
            self._enough.set_result(True)
        if self._draining is None:
            self._draining = asyncio.create_task(self._drain())
        return await answer

    async def _linger(self) -> None:
        """Waits, at most ``linger``, until as many items have queued as the last batch had
        callers: its answered callers come back a little apart, and without waiting the
        first of them would start a batch of its own. When they do not all come (callers
        that arrive on their own, as a product's traffic does, not answered ones coming
        back), waiting only delays the ones that did: after such a wait in vain, the next
        ``retry_linger_after`` batches that would wait go at once. (Decide at 500 Poisson
        arrivals a second on one process: p50 4.4-4.6 ms without a linger, 6.7-7.3 with a
        4 ms one that always waited, 4.9-5.2 with this.)"""
        if not self.linger or len(self._queue) >= self._callers:
            return
        if self._not_lingering:
            self._not_lingering -= 1
            return
        loop = asyncio.get_running_loop()
        self._enough = enough = loop.create_future()
        timer = loop.call_later(self.linger, lambda: enough.done() or enough.set_result(False))
        try:
            if not await enough:
                self._not_lingering = self.retry_linger_after
        finally:
            timer.cancel()
            self._enough = None

    def _expire(self, answer: asyncio.Future) -> None:
        if not answer.done():
            answer.set_exception(BatchTimeout(f"{self.name} did not answer within the call's deadline"))

    def close(self) -> None:
        """Waits for the batch being processed (the loop answers no more callers after it stops)."""
        self._closed = True
        if self._worker is not None:
            self._jobs.put(None)
            self._worker.join()

    def _processed_on_thread(self, loop: asyncio.AbstractEventLoop, items: list[T]) -> asyncio.Future:
        """The batch's results, from the batcher's thread."""
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name=f"{self.name}-batcher", daemon=True)
            self._worker.start()
        done = loop.create_future()
        self._jobs.put((loop, done, items))
        return done

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            loop, done, items = job
            results = _processed(self.name, self.process, items)
            try:
                loop.call_soon_threadsafe(_settle, done, results)
            except RuntimeError:  # the loop is closed: nobody waits for these any more
                pass

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                await self._linger()
                batch, self._queue = self._queue[:self.max_items], self._queue[self.max_items:]
                self.batches, self.items = self.batches + 1, self.items + len(batch)
                results = await self._processed_on_thread(loop, [item for item, _, _ in batch])
                self._callers = min(len(batch) + len(self._queue), self.max_items)
                for (_, answer, timer), result in zip(batch, results):
                    if timer is not None:
                        timer.cancel()
                    if answer.done():  # its caller's deadline passed, or it was cancelled
                        continue
                    if isinstance(result, BaseException):
                        answer.set_exception(result)
                    else:
                        answer.set_result(result)
        finally:
            self._draining = None


def _settle(done: asyncio.Future, results: list) -> None:
    if not done.done():  # not cancelled meanwhile
        done.set_result(results)


def _processed(name: str, process: Callable[[list[T]], list[R | BaseException]], items: list[T]) -> list:
    try:
        return process(items)
    except BaseException as err:  # noqa: BLE001 - the whole batch failed: every caller is told
        log.exception("%s batch of %d failed", name, len(items))
        return [err] * len(items)
