"""Assembles the Decision service from the shared stores."""

from __future__ import annotations

from services.core.background import PeriodicJob
from services.core.blueprint_store import BlueprintStore
from services.core.data_dir import DataDir
from services.core.feature_store import FeastFeatureSource, feature_store
from services.core.decision_log import DecisionLog, DecisionLogFlusher
from services.core.grpc_runtime import ServiceBinding
from services.core.model_registry import LiveModelCache, ModelRegistry
from services.core.settings import Settings
from services.decision.decider import Decider
from services.decision.server import binding


def create(settings: Settings, data: DataDir) -> ServiceBinding:
    decision_log = DecisionLog(data.decision_log)
    flusher = DecisionLogFlusher(data.decision_log, data.offline, data.state)
    flush_job = PeriodicJob("decision-log-flush", settings.flush_interval, flusher.flush).start()
    decider = Decider(BlueprintStore(data.blueprints), decision_log,
                      features=FeastFeatureSource(feature_store(settings, data)),
                      models=LiveModelCache(ModelRegistry(data.models)))

    def shutdown() -> None:
        decision_log.close()
        flush_job.stop()  # the final flush moves what is left to the offline store

    return binding(decider, shutdown)
