"""Training runs: long-running work with an id to poll. ``TrainingRunner`` builds the
training set, fits, evaluates the new and the live model on the same holdout, registers
the new version and promotes it when it wins on the product metric."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from opentelemetry import context as otel_context
from opentelemetry.trace import StatusCode

from services.core import telemetry as otel
from services.core.blueprint import Blueprint, feast_column
from services.core.blueprint_store import BlueprintStore
from services.core.errors import LooperError, NotFound
from services.core.feature_store import LooperFeatureStore
from services.core.files import write_file_durably
from services.core.model_registry import ModelMeta, ModelRegistry, ServingModel
from services.core.telemetry import Telemetry
from services.core.training_table import TrainingTable
from services.trainer.evaluation import evaluate
from services.trainer.training import build_training_set, fit, model_kind

log = logging.getLogger("looper.trainer")

QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
MANUAL, MIN_ROWS, SCHEDULE = "manual", "min_rows", "schedule"
MIN_TRAINING_ROWS = 20


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


@dataclass(frozen=True)
class TrainingRun:
    run_id: str
    use_case: str
    blueprint_version: int
    state: str
    trigger: str
    create_time: str
    end_time: str = ""
    model_version: str = ""
    promoted: bool = False
    error: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    live_metrics: dict[str, float] = field(default_factory=dict)
    row_count: int = 0
    traceparent: str = ""


class TrainingRunStore:
    """One JSON file per run under ``<runs>/<use_case>/``."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def save(self, run: TrainingRun) -> None:
        folder = self.root / run.use_case
        folder.mkdir(exist_ok=True)
        write_file_durably(folder / f"{run.run_id}.json", json.dumps(asdict(run)).encode())

    def get(self, run_id: str) -> TrainingRun:
        for path in self.root.glob(f"*/{run_id}.json"):
            return TrainingRun(**json.loads(path.read_text()))
        raise NotFound(f"training run {run_id!r} was not found")

    def list(self, use_case: str, limit: int = 50) -> list[TrainingRun]:
        runs = [TrainingRun(**json.loads(p.read_text())) for p in (self.root / use_case).glob("*.json")]
        return sorted(runs, key=lambda r: r.create_time, reverse=True)[:limit]


class TrainingRunner:
    """Runs training one at a time on a background thread (fitting uses both cores)."""

    def __init__(self, blueprints: BlueprintStore, table: TrainingTable, registry: ModelRegistry,
                 runs: TrainingRunStore, features: LooperFeatureStore | None = None,
                 telemetry: Telemetry | None = None):
        self.blueprints, self.table, self.registry, self.runs = blueprints, table, registry, runs
        self.features = features
        self.telemetry = telemetry or Telemetry()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="training")
        self._active: set[str] = set()
        self._lock = threading.Lock()

    def start(self, use_case: str, trigger: str = MANUAL, force_promote: bool = False) -> TrainingRun:
        blueprint = self.blueprints.latest(use_case)
        run = TrainingRun(run_id=f"run-{uuid.uuid4().hex[:12]}", use_case=use_case,
                          blueprint_version=blueprint.version, state=QUEUED, trigger=trigger,
                          create_time=_now())
        self.runs.save(run)
        with self._lock:
            self._active.add(use_case)
        requested_by = otel.current_traceparent()  # the StartTrainingRun call, when there is one
        self._executor.submit(self._execute, run, blueprint, force_promote, requested_by)
        return run

    def is_active(self, use_case: str) -> bool:
        with self._lock:
            return use_case in self._active

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _execute(self, run: TrainingRun, blueprint: Blueprint, force_promote: bool, requested_by: str) -> None:
        """Runs in its own trace (training outlives the request), linked to the request."""
        started = time.monotonic()
        with self.telemetry.tracer.start_as_current_span(
                "looper.training_run", context=otel_context.Context(), links=otel.link_to(requested_by),
                attributes={otel.USE_CASE: run.use_case, otel.RUN_ID: run.run_id, "looper.trigger": run.trigger,
                            otel.BLUEPRINT_VERSION: run.blueprint_version}) as span:
            self.runs.save(run := replace(run, state=RUNNING, traceparent=otel.current_traceparent()))
            try:
                run = self._train(run, blueprint, force_promote)
            except LooperError as err:
                run = replace(run, state=FAILED, error=str(err))
            except Exception as err:  # noqa: BLE001 - a failed run is reported, never raised
                log.exception("training run %s failed", run.run_id)
                run = replace(run, state=FAILED, error=f"{type(err).__name__}: {err}")
            finally:
                with self._lock:
                    self._active.discard(run.use_case)
            span.set_attributes({otel.MODEL_VERSION: run.model_version, "looper.promoted": run.promoted,
                                 "looper.state": run.state, "looper.rows": run.row_count})
            if run.state == FAILED:
                span.set_status(StatusCode.ERROR, run.error)
        self.runs.save(replace(run, end_time=_now()))
        self.telemetry.training_duration.record(time.monotonic() - started,
                                                {otel.USE_CASE: run.use_case, "looper.state": run.state})

    def _train(self, run: TrainingRun, blueprint: Blueprint, force_promote: bool) -> TrainingRun:
        tracer = self.telemetry.tracer
        with tracer.start_as_current_span("looper.training_set.build") as span:
            table = self.table.read(run.use_case)
            if len(table) < MIN_TRAINING_ROWS:
                raise LooperError(f"only {len(table)} labeled rows; at least {MIN_TRAINING_ROWS} are needed")
            table = backfill_features(self.features, blueprint, table)
            dataset = build_training_set(blueprint, table)
            train, holdout = dataset.split()
            span.set_attributes({"looper.rows": len(table), "looper.holdout_rows": len(holdout.labels)})
        with tracer.start_as_current_span("looper.fit"):
            model = fit(blueprint, train)
        with tempfile.TemporaryDirectory() as scratch:
            artifact = Path(scratch) / "model.cbm"
            model.save_model(str(artifact))
            fields = dict(
                use_case=run.use_case, blueprint_version=blueprint.version, run_id=run.run_id,
                create_time=_now(), kind=model_kind(blueprint), feature_columns=list(train.features.columns),
                categorical_columns=train.categorical_columns, data_start_time=str(dataset.times.iloc[0]),
                data_end_time=str(dataset.times.iloc[-1]), row_count=len(table), traceparent=run.traceparent)
            with tracer.start_as_current_span("looper.evaluate"):
                candidate = ServingModel(ModelMeta(version="candidate", **fields), artifact)
                base_rate = float(train.targets.mean())
                metrics = evaluate(blueprint, candidate, holdout, base_rate)
                live = self._live_model(run.use_case)
                live_metrics = evaluate(blueprint, live, holdout, base_rate) if live else {}
            with tracer.start_as_current_span("looper.register") as span:
                meta = self.registry.register({**fields, "metrics": metrics},
                                              lambda path: shutil.copyfile(artifact, path))
                promoted = force_promote or wins(metrics, live_metrics)
                if promoted:
                    self.registry.promote(run.use_case, meta.version)
                span.set_attributes({otel.MODEL_VERSION: meta.version, "looper.promoted": promoted})
        return replace(run, state=SUCCEEDED, model_version=meta.version, promoted=promoted,
                       metrics=metrics, live_metrics=live_metrics, row_count=len(table))

    def _live_model(self, use_case: str) -> ServingModel | None:
        version = self.registry.live_version(use_case)
        if not version:
            return None
        return ServingModel(self.registry.get(use_case, version), self.registry.artifact(use_case, version))


def backfill_features(features: LooperFeatureStore | None, blueprint: Blueprint, table):
    """Feast features the blueprint names but the decisions did not log (added after
    they were made) come from a point-in-time join at each decision's time."""
    missing = [ref for ref in blueprint.feast_features if feast_column(ref) not in table.columns]
    if not missing or features is None:
        return table
    entity_frame = table[[*blueprint.entities, "event_timestamp"]].copy()
    joined = features.historical_features(entity_frame, missing)
    for ref in missing:
        table[feast_column(ref)] = joined[feast_column(ref)].to_numpy()
    return table


def wins(new: dict[str, float], live: dict[str, float]) -> bool:
    """The new model wins on the product metric when both have one, else on AUC/RMSE."""
    if not live:
        return True
    for key, higher_is_better in (("product_value", True), ("auc", True), ("rmse", False)):
        a, b = new.get(key), live.get(key)
        if a is not None and b is not None and a == a and b == b:
            return a > b if higher_is_better else a < b
    return False
