"""Assembles the Decision service from the shared stores."""

from __future__ import annotations

from datetime import datetime, timezone

from services.core import telemetry as otel
from services.core.background import PeriodicJob
from services.core.blueprint_store import BlueprintStore
from services.core.data_dir import DataDir
from services.core.decision_log import DecisionLog, DecisionLogFlusher
from services.core.feature_store import FeastFeatureSource, feature_store
from services.core.grpc_runtime import ServiceBinding
from services.core.model_registry import LiveModelCache, ModelMeta, ModelRegistry
from services.core.settings import Settings
from services.core.telemetry import Telemetry, telemetry_for
from services.decision.decider import Decider
from services.decision.server import binding


def create(settings: Settings, data: DataDir) -> ServiceBinding:
    telemetry = telemetry_for("looper-decision")
    decision_log = DecisionLog(data.decision_log)
    flusher = DecisionLogFlusher(data.decision_log, data.offline, data.state, telemetry.tracer)
    flush_job = PeriodicJob("decision-log-flush", settings.flush_interval, flusher.flush).start()
    live_models = LiveModelCache(ModelRegistry(data.models), on_reload=reload_tracer(telemetry))
    decider = Decider(BlueprintStore(data.blueprints), decision_log,
                      features=FeastFeatureSource(feature_store(settings, data)),
                      models=live_models, telemetry=telemetry)
    telemetry.observe("looper.decision_log.backlog", lambda: [(flusher.backlog_bytes(), {})],
                      "Decision-log bytes not yet flushed to the offline store", unit="By")
    telemetry.observe("looper.model.age", lambda: model_ages(live_models),
                      "Seconds since the live model was registered", unit="s")

    def shutdown() -> None:
        decision_log.close()
        flush_job.stop()  # the final flush moves what is left to the offline store
        telemetry.shutdown()

    return binding(decider, shutdown, telemetry.server_interceptors())


def reload_tracer(telemetry: Telemetry):
    """A span per model switch, linked to the training run that produced the model."""

    def on_reload(use_case: str, load, meta: ModelMeta):
        with telemetry.tracer.start_as_current_span(
                "looper.model_reload", links=otel.link_to(meta.traceparent, **{otel.RUN_ID: meta.run_id}),
                attributes={otel.USE_CASE: use_case, otel.MODEL_VERSION: meta.version, otel.RUN_ID: meta.run_id}):
            return load()

    return on_reload


def model_ages(live_models: LiveModelCache) -> list[tuple[float, dict]]:
    now = datetime.now(timezone.utc)
    return [((now - datetime.fromisoformat(model.meta.create_time)).total_seconds(), {otel.USE_CASE: use_case})
            for use_case, model in live_models.loaded().items()]
