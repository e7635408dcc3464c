"""Assembles the Trainer service: blueprints, the training pipeline and its runs, the
retraining scheduler, the model registry, the experiments and rollouts, and the retention
of runs and models."""

from __future__ import annotations

from services.access import server as access
from services.blueprints.store import BlueprintStore
from services.deletions.job import DeletionJob
from services.deletions.requests import DeletionRequests
from services.deletions.store import DeletionStore
from services.experiments.controller import ExperimentController
from services.experiments.store import ExperimentStore
from services.experiments.tuner import PolicyTuner
from services.features.store import feature_store
from services.labels.activity import DecisionActivity
from services.labels.training_table import TrainingTable
from services.models.registry import ModelRegistry
from services.platform.audit import AuditLog
from services.platform.auth import CredentialStore
from services.platform.data_dir import DataDir
from services.platform.grpc_runtime import ServiceBinding
from services.platform.jobs import PeriodicJob
from services.platform.settings import Settings
from services.platform.telemetry import telemetry_for
from services.trainer.blueprint_applier import BlueprintApplier
from services.trainer.pipeline import TrainingPipeline
from services.trainer.runs import TrainingRunner, TrainingRunStore
from services.trainer.scheduler import RetrainingScheduler
from services.trainer.server import TrainerServicer, binding


def create(settings: Settings, data: DataDir, credentials: CredentialStore) -> list[ServiceBinding]:
    blueprints = BlueprintStore(data.blueprints, settings.max_blueprint_versions)
    table = TrainingTable(data.labels.training)
    registry = ModelRegistry(data.models)
    runs = TrainingRunStore(data.runs)
    telemetry = telemetry_for("looper-trainer")
    features = feature_store(settings, data)
    runner = TrainingRunner(blueprints, runs, TrainingPipeline(table, registry, features, telemetry), telemetry)
    scheduler = RetrainingScheduler(blueprints, table, runs, runner, settings.retrain_interval, registry=registry)
    experiment_store = ExperimentStore(data.experiments)
    experiments = ExperimentController(blueprints, experiment_store, registry, table,
                                       DecisionActivity(data.labels.joiner),
                                       tuner=PolicyTuner(blueprints, experiment_store, registry, table))
    audit = AuditLog(data.access.audit)
    deletion_store = DeletionStore(data.deletions)
    deletion_job = DeletionJob(data, deletion_store, blueprints, features, table, settings.segment_seconds,
                               training_active=runner.is_active, audit=audit)
    deletions = PeriodicJob("deletions", settings.deletion_interval, deletion_job.run_once,
                            lock=data.locks / "deletions.lock")
    jobs = [
        deletions.start(),
        PeriodicJob("retraining", settings.retrain_interval, scheduler.check_all).start(),
        PeriodicJob("experiments", settings.retrain_interval, experiments.check_all,
                    lock=data.locks / "experiments.lock").start(),
        PeriodicJob("runs-and-models-retention", settings.retention_interval,
                    lambda: retain_runs_and_models(blueprints, runs, registry, settings),
                    lock=data.locks / "trainer-retention.lock").start(),
    ]

    def shutdown() -> None:
        for job in jobs:
            job.stop()
        runner.shutdown()
        deletion_job.close()
        deletion_store.close()
        telemetry.shutdown()

    applier = BlueprintApplier(blueprints, features)
    requests = DeletionRequests(deletion_store, blueprints, wake=deletions.wake)
    return [binding(TrainerServicer(blueprints, applier, runs, runner, registry, audit, experiments,
                                    deletions=requests), shutdown, telemetry.server_interceptors()),
            access.binding(credentials, audit)]


def retain_runs_and_models(blueprints: BlueprintStore, runs: TrainingRunStore, registry: ModelRegistry,
                           settings: Settings) -> None:
    for stored in blueprints.list():
        runs.retention(stored.blueprint.name, settings.runs_kept)
        registry.retention(stored.blueprint.name, settings.model_versions_kept)
