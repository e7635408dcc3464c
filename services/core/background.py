"""A periodic background job that runs one last time when stopped, so shutdown flushes."""

from __future__ import annotations

import logging
import threading
from typing import Callable

log = logging.getLogger("looper.background")


class PeriodicJob:
    def __init__(self, name: str, interval_seconds: float, job: Callable[[], object]):
        self.name, self.interval, self.job = name, interval_seconds, job
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> "PeriodicJob":
        self._thread.start()
        return self

    def run_now(self) -> None:
        try:
            self.job()
        except Exception:  # noqa: BLE001 - the next tick retries
            log.exception("background job %s failed", self.name)

    def stop(self) -> None:
        """Stops the loop and runs the job a final time (the shutdown flush)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.run_now()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.run_now()
