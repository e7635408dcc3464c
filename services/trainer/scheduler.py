"""Starts training by itself: first when a use case reaches its blueprint's minimum number
of labeled rows, then on the blueprint's schedule (when new rows arrived since)."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Callable

from services.blueprints.store import BlueprintStore
from services.labels.training_table import TrainingTable
from services.models.registry import ModelRegistry
from services.trainer.runs import RunState, TrainingRunner, TrainingRunStore, Trigger

log = logging.getLogger("looper.trainer")


class RetrainingScheduler:
    def __init__(self, blueprints: BlueprintStore, table: TrainingTable, runs: TrainingRunStore,
                 runner: TrainingRunner, interval_seconds: float = 2.0,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 registry: ModelRegistry | None = None):
        self.blueprints, self.table, self.runs, self.runner = blueprints, table, runs, runner
        self.registry = registry
        self.clock = clock
        self.failures: Counter[str] = Counter()
        self.retry_pause = timedelta(seconds=10 * interval_seconds)

    def check_all(self) -> list[str]:
        """Starts the runs that are due; returns their ids. A use case whose check fails is
        counted in ``failures`` and the others are still checked."""
        started = []
        for use_case in self.blueprints.names():
            try:
                trigger = self.due(use_case)
                if trigger:
                    started.append(self.runner.start(use_case, trigger).run_id)
            except Exception:  # noqa: BLE001 - one use case's bad data never stops the others
                log.exception("the retraining check of %s failed", use_case)
                self.failures[use_case] += 1
        return started

    def due(self, use_case: str) -> Trigger | None:
        if self.runner.is_active(use_case) or self.blueprints.is_paused(use_case):
            return None
        blueprint = self.blueprints.latest(use_case)
        rows = self.table.row_count(use_case)
        if rows < blueprint.retraining.min_labeled_rows:
            return None
        runs = self.runs.list(use_case)
        succeeded = [r for r in runs if r.state == RunState.SUCCEEDED]
        if not succeeded:
            # Retry a failed run only after a pause, not on every tick. A run with no end time
            # while none is active was cut short by a restart: it counts from its creation.
            last = runs[0].end_time or runs[0].create_time if runs else ""
            return Trigger.MIN_ROWS if not runs or self._since(last) >= self.retry_pause else None
        schedule = blueprint.retraining.schedule
        if schedule and self._since(succeeded[0].end_time) >= schedule and rows > succeeded[0].row_count:
            return Trigger.SCHEDULE
        if self._live_model_lacks_a_label(use_case, blueprint) and self._since(runs[0].end_time
                                                                               or runs[0].create_time) >= self.retry_pause:
            return Trigger.SCHEDULE  # the blueprint gained a label, or changed its model kind, since
        return None

    def _live_model_lacks_a_label(self, use_case: str, blueprint) -> bool:
        """Whether the live model cannot serve the blueprint as it is now: it lacks a label
        the blueprint weighs, or it is another kind (``model.uplift``) than the one asked for."""
        version = self.registry.live_version(use_case) if self.registry else None
        if not version:
            return False
        meta = self.registry.get(use_case, version)
        return (not meta.predicts(blueprint.weights, blueprint.primary_label.outcome)
                or (getattr(meta, "uplift", None) or {}).get("learner") != blueprint.uplift_learner)

    def _since(self, iso_time: str) -> timedelta:
        if not iso_time:
            return timedelta(0)
        return self.clock() - datetime.fromisoformat(iso_time)
