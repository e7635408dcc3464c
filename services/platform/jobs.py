"""The one runner of background work: a job run every interval on its own thread, whose
failures are logged and retried on the next tick. A job can ask to run once more when it
stops (the label joiner's last pass), and to run in only one process of a deployment at a
time (retention: an flock in the data directory; the others skip that tick)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Callable

from services.platform.files import exclusive_lock

log = logging.getLogger("looper.jobs")


class PeriodicJob:
    def __init__(self, name: str, interval_seconds: float, job: Callable[[], object],
                 final_run: bool = False, lock: Path | None = None):
        self.name, self.interval, self.job = name, interval_seconds, job
        self.final_run, self.lock = final_run, lock
        self.failures = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> "PeriodicJob":
        self._thread.start()
        return self

    def run_now(self) -> None:
        try:
            if self.lock is None:
                self.job()
                return
            with exclusive_lock(self.lock, blocking=False) as mine:
                if mine:
                    self.job()
        except Exception:  # noqa: BLE001 - the next tick retries
            self.failures += 1
            log.exception("background job %s failed", self.name)

    def wake(self) -> None:
        """Runs the job soon rather than at its next tick (new work was just asked for)."""
        self._wake.set()

    def stop(self) -> None:
        """Stops the loop (waiting for a run in progress), then runs a final time if asked."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()
        if self.final_run:
            self.run_now()

    def _loop(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            self.run_now()
