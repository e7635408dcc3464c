"""The retraining scheduler over real stores with several use cases: each use case is
judged on its own rows, runs and activity, and only the due ones start, under their names."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from services.blueprints.store import BlueprintStore
from services.decisions.record import DecisionRecord
from services.labels.training_table import LabeledDecision, TrainingTable
from services.trainer.runs import RunState, TrainingRun, TrainingRunStore, Trigger
from services.trainer.scheduler import RetrainingScheduler

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)


def spec(name: str, min_rows: int) -> str:
    return (f"name: {name}\ndecision_type: binary\nentities: [user_id]\ndefault_decision: false\n"
            f"label: {{outcome: clicked, window: 1h}}\nretraining: {{min_labeled_rows: {min_rows}, schedule: 1h}}\n")


def rows(table: TrainingTable, use_case: str, n: int) -> None:
    table.append(use_case, [LabeledDecision(DecisionRecord(
        decision_id=f"{use_case}-{i}", use_case=use_case, blueprint_version=1, decide_time=NOW,
        subject={"user_id": "u"}, features={}, context={}, action="true", score=0.0, propensity=1.0,
        is_exploration=False, model_version=""), {"clicked": (1.0, 1)}) for i in range(n)])


class Runner:
    def __init__(self, active=()):
        self.active, self.started = set(active), []

    def is_active(self, use_case):
        return use_case in self.active

    def start(self, use_case, trigger):
        self.started.append((use_case, trigger))
        return TrainingRun(run_id=f"run-{use_case}", use_case=use_case, blueprint_version=1,
                           state=RunState.QUEUED, trigger=trigger, create_time=NOW.isoformat())


def world(tmp_path, active=()):
    blueprints, table = BlueprintStore(tmp_path / "bp"), TrainingTable(tmp_path / "table")
    runs = TrainingRunStore(tmp_path / "runs")
    for name in ("alpha", "beta", "gamma", "delta"):
        blueprints.apply(spec(name, 10))
    rows(table, "alpha", 10)  # at the minimum: due
    rows(table, "beta", 9)  # below it
    rows(table, "gamma", 50)  # enough, but trained an hour ago on the same 50 rows
    rows(table, "delta", 10)  # enough, but a run is active
    runs.save(TrainingRun(run_id="run-000000000001", use_case="gamma", blueprint_version=1,
                          state=RunState.SUCCEEDED, trigger=Trigger.MIN_ROWS,
                          create_time=(NOW - timedelta(hours=2)).isoformat(),
                          end_time=(NOW - timedelta(hours=1)).isoformat(), row_count=50))
    runner = Runner(active)
    return RetrainingScheduler(blueprints, table, runs, runner, clock=lambda: NOW), runner


def test_only_the_due_use_cases_start_each_under_its_own_name(tmp_path):
    scheduler, runner = world(tmp_path, active={"delta"})
    assert scheduler.check_all() == ["run-alpha"]
    assert runner.started == [("alpha", Trigger.MIN_ROWS)]
    assert [scheduler.due(u) for u in ("alpha", "beta", "gamma", "delta")] == [Trigger.MIN_ROWS, None, None, None]


def test_a_failed_run_is_retried_after_twenty_seconds_by_default(tmp_path):
    scheduler, _ = world(tmp_path)
    assert scheduler.retry_pause == timedelta(seconds=20)  # ten checks at the default two seconds


def test_a_succeeded_run_without_an_end_time_counts_as_just_ended(tmp_path):
    scheduler, _ = world(tmp_path)
    scheduler.runs.save(TrainingRun(run_id="run-000000000002", use_case="alpha", blueprint_version=1,
                                    state=RunState.SUCCEEDED, trigger=Trigger.MIN_ROWS,
                                    create_time=(NOW - timedelta(days=2)).isoformat(), row_count=1))
    assert scheduler.due("alpha") is None
