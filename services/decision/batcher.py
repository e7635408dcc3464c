"""Batching across concurrent decisions: the Feast read and the CatBoost call of decisions
that arrive together are made once for all of them.

A ``MicroBatcher`` has one worker thread. A caller submits its item and waits for its
result; the worker takes everything queued so far, processes it in one call, and hands each
caller its own result (or its own error). It never waits for more items to arrive: under
light load a batch is one item and costs only the hand-over, under heavy load the items
that queued while the previous batch ran go together. A caller waits at most until its
deadline, so a stuck dependency (a locked feature store) costs a decision its deadline, not
more.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Callable, Generic, TypeVar

log = logging.getLogger("looper.batcher")
T = TypeVar("T")
R = TypeVar("R")


class BatchTimeout(TimeoutError):
    """The result did not come before the caller's deadline."""


@dataclass
class _Waiting(Generic[T]):
    item: T
    done: threading.Event = field(default_factory=threading.Event)
    result: object = None
    error: BaseException | None = None


class MicroBatcher(Generic[T, R]):
    def __init__(self, name: str, process: Callable[[list[T]], list[R | BaseException]], max_items: int = 512):
        """``process`` gets the batch's items and returns, in order, each one's result or
        the exception that item alone met."""
        self.name, self.process, self.max_items = name, process, max_items
        self.batches = self.items = 0  # counters: the mean batch size is items / batches
        self._queue: list[_Waiting[T]] = []
        self._cond = threading.Condition()
        self._closed = False
        self._worker = threading.Thread(target=self._run, name=f"{name}-batcher", daemon=True)
        self._worker.start()

    def submit(self, item: T, timeout: float | None = None) -> R:
        waiting = _Waiting(item)
        with self._cond:
            if self._closed:
                raise RuntimeError(f"the {self.name} batcher is closed")
            self._queue.append(waiting)
            self._cond.notify()
        if not waiting.done.wait(None if timeout is None else max(0.0, min(timeout, threading.TIMEOUT_MAX))):
            raise BatchTimeout(f"{self.name} did not answer within the call's deadline")
        if waiting.error is not None:
            raise waiting.error
        return waiting.result

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._worker.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                batch, self._queue = self._queue[:self.max_items], self._queue[self.max_items:]
            self.batches, self.items = self.batches + 1, self.items + len(batch)
            self._answer(batch)

    def _answer(self, batch: list[_Waiting[T]]) -> None:
        try:
            results = self.process([w.item for w in batch])
        except BaseException as err:  # noqa: BLE001 - the whole batch failed: every caller is told
            log.exception("%s batch of %d failed", self.name, len(batch))
            results = [err] * len(batch)
        for waiting, result in zip(batch, results):
            if isinstance(result, BaseException):
                waiting.error = result
            else:
                waiting.result = result
            waiting.done.set()
