"""Training runs: long-running work with an id to poll. ``TrainingRunStore`` keeps one record
per run; ``TrainingRunner`` executes runs one at a time on a background thread, each in a
trace of its own, and reports every failure on the run instead of raising it."""

from __future__ import annotations

import enum
import json
import logging
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from opentelemetry import context as otel_context
from opentelemetry.trace import StatusCode

from services.blueprints.spec import Blueprint
from services.blueprints.store import BlueprintStore
from services.platform import telemetry as otel
from services.platform.errors import FailedPrecondition, LooperError, NotFound
from services.platform.files import write_file_durably
from services.platform.telemetry import Telemetry

log = logging.getLogger("looper.trainer")
_RUN_ID = re.compile(r"run-[0-9a-f]{12}")


class RunState(str, enum.Enum):
    """Mirrors ``looper.v1.TrainingRunState`` (``TRAINING_RUN_STATE_<NAME>``)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def done(self) -> bool:
        return self in (RunState.SUCCEEDED, RunState.FAILED)


class Trigger(str, enum.Enum):
    """Mirrors ``looper.v1.TrainingTrigger`` (``TRAINING_TRIGGER_<NAME>``)."""

    MANUAL = "manual"
    MIN_ROWS = "min_rows"
    SCHEDULE = "schedule"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


@dataclass(frozen=True)
class TrainingRun:
    run_id: str
    use_case: str
    blueprint_version: int
    state: RunState
    trigger: Trigger
    create_time: str
    end_time: str = ""
    model_version: str = ""
    promoted: bool = False
    error: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    live_metrics: dict[str, float] = field(default_factory=dict)
    row_count: int = 0
    traceparent: str = ""

    def to_json(self) -> bytes:
        return json.dumps({**asdict(self), "state": self.state.value, "trigger": self.trigger.value}).encode()

    @classmethod
    def from_json(cls, text: str) -> "TrainingRun":
        data = json.loads(text)
        return cls(**{**data, "state": RunState(data["state"]), "trigger": Trigger(data["trigger"])})


class TrainingRunStore:
    """One JSON file per run under ``<runs>/<use_case>/``."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def save(self, run: TrainingRun) -> None:
        folder = self.root / run.use_case
        folder.mkdir(exist_ok=True)
        write_file_durably(folder / f"{run.run_id}.json", run.to_json())

    def get(self, run_id: str) -> TrainingRun:
        if _RUN_ID.fullmatch(run_id):  # checked before it names a file
            for path in self.root.glob(f"*/{run_id}.json"):
                return TrainingRun.from_json(path.read_text())
        raise NotFound(f"training run {run_id!r} was not found")

    def list(self, use_case: str, limit: int | None = 50) -> list[TrainingRun]:
        """The use case's runs, newest first."""
        runs = [TrainingRun.from_json(p.read_text()) for p in (self.root / use_case).glob("run-*.json")]
        return sorted(runs, key=lambda r: r.create_time, reverse=True)[:limit]

    def retention(self, use_case: str, keep: int) -> int:
        """Deletes all but the newest ``keep`` finished runs; returns how many."""
        finished = [r for r in self.list(use_case, limit=None) if r.state.done]
        for run in finished[keep:]:
            (self.root / use_case / f"{run.run_id}.json").unlink(missing_ok=True)
        return max(0, len(finished) - keep)

    def interrupted(self) -> list[TrainingRun]:
        """Runs left queued or running by a Trainer that stopped before they ended."""
        return [r for use_case in sorted(p.name for p in self.root.iterdir() if p.is_dir())
                for r in self.list(use_case, limit=None) if not r.state.done]


Pipeline = Callable[[TrainingRun, Blueprint, bool], TrainingRun]


class TrainingRunner:
    """Runs training one at a time on a background thread (fitting uses both cores)."""

    def __init__(self, blueprints: BlueprintStore, runs: TrainingRunStore, pipeline: Pipeline,
                 telemetry: Telemetry | None = None):
        self.blueprints, self.runs, self.pipeline = blueprints, runs, pipeline
        self.telemetry = telemetry or Telemetry()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="training")
        self._active: set[str] = set()
        self._lock = threading.Lock()
        for run in self.runs.interrupted():  # this process is the only Trainer of the data directory
            self.runs.save(replace(run, state=RunState.FAILED, end_time=now_iso(),
                                   error="interrupted: the Trainer stopped before the run ended"))

    def start(self, use_case: str, trigger: Trigger = Trigger.MANUAL, force_promote: bool = False) -> TrainingRun:
        """Queues a run; one run per use case at a time (a second is refused while one is
        queued or running)."""
        blueprint = self.blueprints.latest(use_case)
        with self._lock:
            if use_case in self._active:
                raise FailedPrecondition(f"a training run of use case {use_case!r} is already queued or running; "
                                         f"wait for it to end")
            self._active.add(use_case)
        run = TrainingRun(run_id=f"run-{uuid.uuid4().hex[:12]}", use_case=use_case,
                          blueprint_version=blueprint.version, state=RunState.QUEUED, trigger=trigger,
                          create_time=now_iso())
        try:
            self.runs.save(run)
        except BaseException:
            with self._lock:
                self._active.discard(use_case)
            raise
        requested_by = otel.current_traceparent()  # the StartTrainingRun call, when there is one
        self._executor.submit(self._execute, run, blueprint, force_promote, requested_by)
        return run

    def is_active(self, use_case: str) -> bool:
        with self._lock:
            return use_case in self._active

    def shutdown(self) -> None:
        """Stops a fit in progress (its run fails, saying why), cancels queued runs, waits."""
        stop = getattr(self.pipeline, "stopping", None)
        if stop is not None:
            stop.set()
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _execute(self, run: TrainingRun, blueprint: Blueprint, force_promote: bool, requested_by: str) -> None:
        """Runs in its own trace (training outlives the request), linked to the request."""
        started = time.monotonic()
        with self.telemetry.tracer.start_as_current_span(
                "looper.training_run", context=otel_context.Context(), links=otel.link_to(requested_by),
                attributes={otel.USE_CASE: run.use_case, otel.RUN_ID: run.run_id, "looper.trigger": run.trigger.value,
                            otel.BLUEPRINT_VERSION: run.blueprint_version}) as span:
            self.runs.save(run := replace(run, state=RunState.RUNNING, traceparent=otel.current_traceparent()))
            try:
                run = self.pipeline(run, blueprint, force_promote)
            except LooperError as err:
                run = replace(run, state=RunState.FAILED, error=str(err))
            except Exception as err:  # noqa: BLE001 - a failed run is reported, never raised
                log.exception("training run %s failed", run.run_id)
                run = replace(run, state=RunState.FAILED, error=f"{type(err).__name__}: {err}")
            finally:
                with self._lock:
                    self._active.discard(run.use_case)
            span.set_attributes({otel.MODEL_VERSION: run.model_version, "looper.promoted": run.promoted,
                                 "looper.state": run.state.value, "looper.rows": run.row_count})
            if run.state == RunState.FAILED:
                span.set_status(StatusCode.ERROR, run.error)
        self.runs.save(replace(run, end_time=now_iso()))
        self.telemetry.training_duration.record(time.monotonic() - started,
                                                {otel.USE_CASE: run.use_case, "looper.state": run.state.value})
