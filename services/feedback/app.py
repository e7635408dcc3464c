"""Assembles the Feedback service: the recorder and the label joiner."""

from __future__ import annotations

from services.core.background import PeriodicJob
from services.core.blueprint_store import BlueprintStore
from services.core.data_dir import DataDir
from services.core.feature_store import feature_store, publish_subject_counts
from services.core.grpc_runtime import ServiceBinding
from services.core.settings import Settings
from services.core.training_table import TrainingTable
from services.feedback.label_joiner import LabelJoiner
from services.feedback.recorder import FeedbackRecorder
from services.feedback.server import binding


def create(settings: Settings, data: DataDir) -> ServiceBinding:
    blueprints = BlueprintStore(data.blueprints)
    recorder = FeedbackRecorder(blueprints, data.feedback_log)
    features = feature_store(settings, data)
    joiner = LabelJoiner(blueprints, data.decision_log, data.feedback_log, data.state,
                         TrainingTable(data.offline),
                         on_subject_counts=lambda bp, rows: publish_subject_counts(features, bp, rows))
    join_job = PeriodicJob("label-joiner", settings.join_interval, joiner.run_once).start()

    def shutdown() -> None:
        recorder.close()
        join_job.stop()
        joiner.close()

    return binding(recorder, joiner, shutdown)
