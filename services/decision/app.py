"""Assembles the Decision service: the decider over the blueprints, the decision log, Feast
and the live models, and the decision log's retention job."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from services.blueprints.store import BlueprintStore
from services.decision.decider import Decider
from services.decision.server import binding
from services.decisions.log import DecisionLog
from services.deletions.store import Tombstones
from services.experiments.store import ExperimentStore
from services.features.store import FeastFeatureSource, feature_store
from services.models.live import LiveModels
from services.models.registry import ModelMeta, ModelRegistry
from services.platform import telemetry as otel
from services.platform.auth import CredentialStore
from services.platform.data_dir import DataDir
from services.platform.durable_log import Durability
from services.platform.grpc_runtime import ServiceBinding
from services.platform.jobs import PeriodicJob
from services.platform.settings import Settings
from services.platform.telemetry import Telemetry, telemetry_for


def create(settings: Settings, data: DataDir, credentials: CredentialStore) -> list[ServiceBinding]:
    telemetry = telemetry_for("looper-decision")
    blueprints = BlueprintStore(data.blueprints)
    window = lambda: blueprints.idempotency_window(timedelta(seconds=settings.idempotency_window))  # noqa: E731
    tombstones = Tombstones(data.deletions)  # decisions being deleted are no longer found
    decision_log = DecisionLog(data.decisions, window=window, segment_seconds=settings.segment_seconds,
                               durability=Durability(settings.durability), hidden=tombstones.covers,
                               spare_after_bytes=settings.log_spare_after_bytes)
    live_models = LiveModels(ModelRegistry(data.models), on_reload=reload_tracer(telemetry))
    features = FeastFeatureSource(feature_store(settings, data))
    decider = Decider(blueprints, decision_log, features=features, models=live_models, telemetry=telemetry,
                      experiments=ExperimentStore(data.experiments))
    retention = PeriodicJob("decision-log-retention", settings.retention_interval, decision_log.retention,
                            lock=data.locks / "decision-retention.lock").start()
    telemetry.observe("looper.model.age", lambda: model_ages(live_models),
                      "Seconds since the live model was registered", unit="s")

    def shutdown() -> None:
        retention.stop()
        decider.close()
        decision_log.close()
        tombstones.close()
        telemetry.shutdown()

    service = binding(decider, shutdown, telemetry.server_interceptors(asynchronous=True), threads=settings.threads)
    service.serving = lambda: decision_log.writable
    service.dependencies = lambda: features.healthy
    return [service]


def reload_tracer(telemetry: Telemetry):
    """A span per model switch, linked to the training run that produced the model."""

    def on_reload(use_case: str, load, meta: ModelMeta):
        with telemetry.tracer.start_as_current_span(
                "looper.model_reload", links=otel.link_to(meta.traceparent, **{otel.RUN_ID: meta.run_id}),
                attributes={otel.USE_CASE: use_case, otel.MODEL_VERSION: meta.version, otel.RUN_ID: meta.run_id}):
            return load()

    return on_reload


def model_ages(live_models: LiveModels) -> list[tuple[float, dict]]:
    now = datetime.now(timezone.utc)
    return [((now - datetime.fromisoformat(model.meta.create_time)).total_seconds(), {otel.USE_CASE: use_case})
            for use_case, model in live_models.loaded().items()]
