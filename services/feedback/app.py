"""Assembles the Feedback service: the recorder and the label joiner."""

from __future__ import annotations

from datetime import timedelta

from services.core import telemetry as otel
from services.core.background import PeriodicJob
from services.core.blueprint_store import BlueprintStore
from services.core.data_dir import DataDir
from services.core.feature_store import feature_store, publish_subject_counts
from services.core.grpc_runtime import ServiceBinding
from services.core.settings import Settings
from services.core.telemetry import telemetry_for
from services.core.training_table import TrainingTable
from services.feedback.label_joiner import LabelJoiner
from services.feedback.recorder import FeedbackRecorder
from services.feedback.server import binding


def create(settings: Settings, data: DataDir) -> ServiceBinding:
    telemetry = telemetry_for("looper-feedback")
    blueprints = BlueprintStore(data.blueprints)
    features = feature_store(settings, data)
    joiner = LabelJoiner(blueprints, data.decision_log, data.feedback_log, data.state,
                         TrainingTable(data.offline),
                         on_subject_counts=lambda bp, rows: publish_subject_counts(features, bp, rows),
                         tracer=telemetry.tracer, grace=timedelta(seconds=settings.join_grace))
    recorder = FeedbackRecorder(blueprints, data.feedback_log, telemetry, joiner.decision_traceparents)
    join_job = PeriodicJob("label-joiner", settings.join_interval, joiner.run_once).start()
    telemetry.observe("looper.join.outcomes", lambda: join_gauges(blueprints, joiner),
                      "Outcome events by join status (attributed, late, orphan) and labeled decisions")

    def shutdown() -> None:
        recorder.close()
        join_job.stop()
        telemetry.shutdown()  # its last export still reads the joiner's gauges
        joiner.close()

    return binding(recorder, joiner, shutdown, telemetry.server_interceptors())


def join_gauges(blueprints: BlueprintStore, joiner: LabelJoiner) -> list[tuple[int, dict]]:
    gauges = []
    for stored in blueprints.list():
        stats = joiner.stats(stored.blueprint.name)
        for status, value in (("attributed", stats.attributed_outcomes), ("late", stats.late_outcomes),
                              ("orphan", stats.orphan_outcomes), ("labeled", stats.joined_decisions)):
            gauges.append((value, {otel.USE_CASE: stored.blueprint.name, "looper.status": status}))
    return gauges
