"""Assembles the Feedback service: the outcome recorder, the label joiner with
personalization, and the retention of the outcome log and the labels."""

from __future__ import annotations

import time
from datetime import timedelta

from services.blueprints.store import BlueprintStore
from services.decisions.log import DecisionLookup, DecisionStream
from services.deletions.store import Tombstones
from services.features.personalization import SubjectCounters
from services.features.store import feature_store
from services.feedback.server import binding
from services.labels.joiner import CONSUMER, JOINER_LOCK, LabelJoiner
from services.labels.outcomes import OutcomeRecorder, OutcomeStream
from services.labels.training_table import TrainingTable
from services.platform import telemetry as otel
from services.platform.auth import CredentialStore
from services.platform.data_dir import DataDir
from services.platform.durable_log import Durability
from services.platform.grpc_runtime import ServiceBinding
from services.platform.jobs import PeriodicJob
from services.platform.settings import Settings
from services.platform.telemetry import telemetry_for


def create(settings: Settings, data: DataDir, credentials: CredentialStore) -> list[ServiceBinding]:
    telemetry = telemetry_for("looper-feedback")
    blueprints = BlueprintStore(data.blueprints)
    decisions = DecisionStream(data.decisions, CONSUMER)
    table = TrainingTable(data.labels.training)
    tombstones = Tombstones(data.deletions)  # what deletions cover is never joined
    joiner = LabelJoiner(blueprints, decisions, OutcomeStream(data.labels, CONSUMER), data.labels.joiner, table,
                         tracer=telemetry.tracer, grace=timedelta(seconds=settings.join_grace),
                         pass_lock=data.locks / JOINER_LOCK, tombstones=tombstones.active)
    counters = SubjectCounters(blueprints, feature_store(settings, data), joiner)
    joiner.on_activity = counters.refresh
    window = lambda: blueprints.idempotency_window(timedelta(seconds=settings.idempotency_window))  # noqa: E731
    lookup = DecisionLookup(data.decisions, hidden=tombstones.covers)
    recorder = OutcomeRecorder(blueprints, data.labels, telemetry, joiner.decision_traceparents, window=window,
                               segment_seconds=settings.segment_seconds, decisions=lookup.find,
                               durability=Durability(settings.durability),
                               spare_after_bytes=settings.log_spare_after_bytes)
    jobs = [
        PeriodicJob("label-joiner", settings.join_interval, joiner.run_once, final_run=True).start(),
        PeriodicJob("labels-retention", settings.retention_interval,
                    lambda: retain_labels(recorder, joiner, table, blueprints, settings),
                    lock=data.locks / "labels-retention.lock").start(),
    ]
    telemetry.observe("looper.join.outcomes", lambda: join_gauges(blueprints, joiner),
                      "Outcome events by join status (attributed, late, orphan) and labeled decisions")
    telemetry.observe("looper.decision_log.backlog", lambda: [(decisions.backlog_bytes(), {})],
                      "Decision-log bytes the label joiner has not read yet", unit="By")

    def shutdown() -> None:
        recorder.close()
        for job in jobs:
            job.stop()
        telemetry.shutdown()  # its last export still reads the joiner's gauges
        joiner.close()
        lookup.close()
        tombstones.close()

    service = binding(recorder, joiner, shutdown, telemetry.server_interceptors())
    service.serving = lambda: recorder.writable
    return [service]


def retain_labels(recorder: OutcomeRecorder, joiner: LabelJoiner, table: TrainingTable,
                  blueprints: BlueprintStore, settings: Settings) -> None:
    """Outcome segments and ids past the window; the joiner's decisions once their labels
    are written and no personalization window counts them; old training-table parts."""
    recorder.retention()
    keep = max([recorder.window(), *(s.blueprint.personalization.window for s in blueprints.list()
                                     if s.blueprint.personalization)])
    joiner.retention(keep)
    cutoff_ns = time.time_ns() - int(settings.training_retention_days * 86400e9)
    for use_case in table.use_cases():
        table.prune(use_case, cutoff_ns)


def join_gauges(blueprints: BlueprintStore, joiner: LabelJoiner) -> list[tuple[int, dict]]:
    gauges = []
    for stored in blueprints.list():
        stats = joiner.stats(stored.blueprint.name)
        for status, value in (("attributed", stats.attributed_outcomes), ("late", stats.late_outcomes),
                              ("orphan", stats.orphan_outcomes), ("early", stats.early_outcomes),
                              ("labeled", stats.joined_decisions),
                              ("failed", joiner.skipped[stored.blueprint.name])):
            gauges.append((value, {otel.USE_CASE: stored.blueprint.name, "looper.status": status}))
    return gauges
