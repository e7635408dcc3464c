"""Assembles the Trainer service: blueprints, runs, the scheduler and the registry."""

from __future__ import annotations

from services.core.blueprint_store import BlueprintStore
from services.core.data_dir import DataDir
from services.core.feature_store import feature_store
from services.core.grpc_runtime import ServiceBinding
from services.core.model_registry import ModelRegistry
from services.core.settings import Settings
from services.core.telemetry import telemetry_for
from services.core.training_table import TrainingTable
from services.trainer.blueprints import BlueprintApplier
from services.trainer.runs import TrainingRunner, TrainingRunStore
from services.trainer.scheduler import RetrainingScheduler
from services.trainer.server import TrainerServicer, binding


def create(settings: Settings, data: DataDir) -> ServiceBinding:
    blueprints = BlueprintStore(data.blueprints)
    table = TrainingTable(data.offline)
    registry = ModelRegistry(data.models)
    runs = TrainingRunStore(data.runs)
    telemetry = telemetry_for("looper-trainer")
    features = feature_store(settings, data)
    runner = TrainingRunner(blueprints, table, registry, runs, features, telemetry)
    scheduler = RetrainingScheduler(blueprints, table, runs, runner, settings.retrain_interval).start()

    def shutdown() -> None:
        scheduler.stop()
        runner.shutdown()
        telemetry.shutdown()

    applier = BlueprintApplier(blueprints, features)
    return binding(TrainerServicer(blueprints, applier, runs, runner, registry), shutdown,
                   telemetry.server_interceptors())
