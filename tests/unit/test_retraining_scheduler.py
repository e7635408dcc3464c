"""The retraining triggers: the minimum number of labeled rows, the schedule, new rows since
the last run, the back-off after a failure and the guard against a second concurrent run."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
import yaml

from services.blueprints.spec import RetrainingSpec, parse_blueprint
from services.trainer.runs import RunState, TrainingRun, Trigger
from services.trainer.scheduler import RetrainingScheduler
from tests.conftest import SIMPLE_BLUEPRINT

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)
BLUEPRINT = parse_blueprint(yaml.safe_load(SIMPLE_BLUEPRINT))


class World:
    """The scheduler's collaborators, faked: one use case, its row count, its runs."""

    def __init__(self, min_rows: int = 100, schedule: timedelta | None = timedelta(hours=1)):
        self.blueprint = BLUEPRINT.model_copy(
            update={"retraining": RetrainingSpec(min_labeled_rows=min_rows, schedule=schedule)})
        self.rows = 0
        self.history: list[TrainingRun] = []  # newest first, as the run store lists them
        self.active = False
        self.paused = False
        self.started: list[str] = []

    # blueprints
    def latest(self, use_case):
        return self.blueprint

    def names(self):
        return [self.blueprint.name]

    def is_paused(self, use_case):
        return self.paused



    # training table
    def row_count(self, use_case):
        return self.rows

    # run store (``list``) is shared with the blueprints' list by name: use a view
    def runs_view(self):
        world = self

        class Runs:
            def list(self, use_case):
                return list(world.history)
        return Runs()

    # runner
    def is_active(self, use_case):
        return self.active

    def start(self, use_case, trigger):
        self.started.append(trigger)
        return TrainingRun(run_id=f"run-{len(self.started)}", use_case=use_case, blueprint_version=1,
                           state=RunState.QUEUED, trigger=trigger, create_time=NOW.isoformat())

    def ran(self, state: str, ended_ago: timedelta | None, rows: int,
            created_ago: timedelta = timedelta(hours=6)) -> None:
        end = (NOW - ended_ago).isoformat() if ended_ago is not None else ""
        self.history.insert(0, TrainingRun(run_id=f"r{len(self.history)}", use_case=self.blueprint.name,
                                           blueprint_version=1, state=state, trigger=Trigger.MIN_ROWS,
                                           create_time=(NOW - created_ago).isoformat(), end_time=end,
                                           row_count=rows))


@pytest.fixture()
def world():
    return World()


def scheduler(world: World, interval: float = 1.0) -> RetrainingScheduler:
    return RetrainingScheduler(world, world, world.runs_view(), world, interval, clock=lambda: NOW)


def test_nothing_is_due_below_the_minimum_rows(world):
    world.rows = 99
    assert scheduler(world).due("contract_test") is None


def test_the_first_run_starts_at_the_minimum_rows(world):
    world.rows = 100
    assert scheduler(world).due("contract_test") == Trigger.MIN_ROWS
    assert scheduler(world).check_all() == ["run-1"] and world.started == [Trigger.MIN_ROWS]


def test_no_second_run_while_one_is_active(world):
    world.rows, world.active = 5000, True
    assert scheduler(world).due("contract_test") is None
    assert scheduler(world).check_all() == [] and world.started == []


def test_a_failed_first_run_is_retried_only_after_the_back_off(world):
    world.rows = 100
    pause = scheduler(world, interval=2.0).retry_pause  # ten check intervals
    assert pause == timedelta(seconds=20)
    world.ran(RunState.FAILED, ended_ago=pause - timedelta(seconds=1), rows=100)
    assert scheduler(world, interval=2.0).due("contract_test") is None
    world.history[0] = replace(world.history[0], end_time=(NOW - pause).isoformat())
    assert scheduler(world, interval=2.0).due("contract_test") == Trigger.MIN_ROWS


def test_after_a_success_the_schedule_needs_its_time_and_new_rows(world):
    world.rows = 150
    world.ran(RunState.SUCCEEDED, ended_ago=timedelta(minutes=59), rows=120)
    assert scheduler(world).due("contract_test") is None  # too early
    world.history[0] = replace(world.history[0], end_time=(NOW - timedelta(hours=1)).isoformat())
    assert scheduler(world).due("contract_test") == Trigger.SCHEDULE
    world.rows = 120  # nothing new since that run
    assert scheduler(world).due("contract_test") is None


def test_a_later_failure_does_not_stop_the_schedule(world):
    world.rows = 300
    world.ran(RunState.SUCCEEDED, ended_ago=timedelta(hours=3), rows=200)
    world.ran(RunState.FAILED, ended_ago=timedelta(minutes=1), rows=0)
    assert scheduler(world).due("contract_test") == Trigger.SCHEDULE


def test_without_a_schedule_one_success_is_enough():
    world = World(schedule=None)
    world.rows = 10_000
    world.ran(RunState.SUCCEEDED, ended_ago=timedelta(days=30), rows=100)
    assert scheduler(world).due("contract_test") is None


def test_a_run_cut_short_by_a_restart_is_retried_after_the_back_off(world):
    world.rows = 100
    world.ran(RunState.RUNNING, ended_ago=None, rows=0, created_ago=timedelta(seconds=1))  # the Trainer was killed
    assert scheduler(world).due("contract_test") is None
    world.history[0] = replace(world.history[0], create_time=(NOW - timedelta(minutes=5)).isoformat())
    assert scheduler(world).due("contract_test") == Trigger.MIN_ROWS


def test_a_use_case_whose_check_fails_is_counted_and_the_others_are_checked():
    class TwoUseCases(World):
        def names(self):
            return ["broken", "contract_test"]

        def row_count(self, use_case):
            if use_case == "broken":
                raise OSError("a corrupt parquet footer")
            return 500

    two = TwoUseCases()
    checker = RetrainingScheduler(two, two, two.runs_view(), two, clock=lambda: NOW)
    assert checker.check_all() == ["run-1"]
    assert checker.failures == {"broken": 1}


def test_a_paused_use_case_does_not_train(world):
    world.rows, world.paused = 5000, True
    assert scheduler(world).due("contract_test") is None
