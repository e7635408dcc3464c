"""Starts training by itself: first when a use case reaches its blueprint's minimum number
of labeled rows, then on the blueprint's schedule (when new rows arrived since)."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta, timezone
from typing import Callable

from services.core.blueprint_store import BlueprintStore
from services.core.training_table import TrainingTable
from services.trainer.runs import MIN_ROWS, SCHEDULE, SUCCEEDED, TrainingRunner, TrainingRunStore

log = logging.getLogger("looper.trainer")


class RetrainingScheduler:
    def __init__(self, blueprints: BlueprintStore, table: TrainingTable, runs: TrainingRunStore,
                 runner: TrainingRunner, interval_seconds: float = 2.0,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self.blueprints, self.table, self.runs, self.runner = blueprints, table, runs, runner
        self.clock = clock
        self.interval = interval_seconds
        self.retry_pause = timedelta(seconds=10 * interval_seconds)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="retraining", daemon=True)

    def start(self) -> "RetrainingScheduler":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check_all()
            except Exception:  # noqa: BLE001 - keep scheduling the other use cases
                log.exception("retraining check failed")

    def check_all(self) -> list[str]:
        """Starts the runs that are due; returns their ids."""
        started = []
        for stored in self.blueprints.list():
            trigger = self.due(stored.blueprint.name)
            if trigger:
                started.append(self.runner.start(stored.blueprint.name, trigger).run_id)
        return started

    def due(self, use_case: str) -> str | None:
        if self.runner.is_active(use_case):
            return None
        blueprint = self.blueprints.latest(use_case)
        rows = self.table.row_count(use_case)
        if rows < blueprint.retraining.min_labeled_rows:
            return None
        runs = self.runs.list(use_case)
        succeeded = [r for r in runs if r.state == SUCCEEDED]
        if not succeeded:
            # Retry a failed run only after a pause, not on every tick. A run with no end time
            # while none is active was cut short by a restart: it counts from its creation.
            last = runs[0].end_time or runs[0].create_time if runs else ""
            return MIN_ROWS if not runs or self._since(last) >= self.retry_pause else None
        schedule = blueprint.retraining.schedule
        if schedule and self._since(succeeded[0].end_time) >= schedule and rows > succeeded[0].row_count:
            return SCHEDULE
        return None

    def _since(self, iso_time: str) -> timedelta:
        if not iso_time:
            return timedelta(0)
        return self.clock() - datetime.fromisoformat(iso_time)
