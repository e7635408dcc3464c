"""Retraining when the live model can no longer serve the blueprint (it gained a label since
the model was trained): due without waiting for the schedule, but never sooner than the
back-off after the use case's newest run; a model that predates naming its label serves the
primary outcome and needs nothing. A use case whose check keeps failing is counted each time."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import yaml

from services.blueprints.spec import parse_blueprint
from services.models.registry import ModelKind, ModelRegistry
from services.trainer.runs import RunState, Trigger
from services.trainer.scheduler import RetrainingScheduler
from tests.conftest import SIMPLE_BLUEPRINT
from tests.unit.test_retraining_scheduler import NOW, World

USE_CASE = "contract_test"
SPEC = yaml.safe_load(SIMPLE_BLUEPRINT)
ONE_LABEL = parse_blueprint({**SPEC, "retraining": {"min_labeled_rows": 100}})  # clicked; no schedule
TWO_LABELS = parse_blueprint({**{k: v for k, v in SPEC.items() if k != "label"},
                              "labels": [SPEC["label"], {"outcome": "opened", "window": "2s"}],
                              "product_metric": {"weights": {"clicked": 1.0, "opened": 0.5}},
                              "retraining": {"min_labeled_rows": 100}})


def live_model(tmp_path, label: str) -> ModelRegistry:
    """A registry whose live version of the use case predicts ``label`` alone."""
    registry = ModelRegistry(tmp_path)
    meta = registry.register(dict(use_case=USE_CASE, blueprint_version=1, run_id="r0",
                                  create_time=NOW.isoformat(), kind=ModelKind.CLASSIFIER,
                                  feature_columns=["hour_of_day"], categorical_columns=[], label=label),
                             lambda path: path.write_bytes(b"model"))
    registry.promote(USE_CASE, meta.version)
    return registry


def world_with(blueprint) -> World:
    world = World(schedule=None)
    world.blueprint = blueprint
    world.rows = 5000
    return world


def scheduler(world: World, registry: ModelRegistry) -> RetrainingScheduler:
    return RetrainingScheduler(world, world, world.runs_view(), world, 1.0, clock=lambda: NOW, registry=registry)


def test_a_live_model_that_lacks_a_label_the_blueprint_gained_is_retrained_after_the_back_off(tmp_path):
    world = world_with(TWO_LABELS)
    registry = live_model(tmp_path, "clicked")
    pause = scheduler(world, registry).retry_pause
    world.ran(RunState.SUCCEEDED, ended_ago=pause - timedelta(seconds=1), rows=4000)
    assert scheduler(world, registry).due(USE_CASE) is None  # too soon after the last run
    world.history[0] = replace(world.history[0], end_time=(NOW - pause).isoformat())
    assert scheduler(world, registry).due(USE_CASE) == Trigger.SCHEDULE


def test_the_back_off_counts_from_the_newest_run_whenever_it_was_created(tmp_path):
    world = world_with(TWO_LABELS)
    registry = live_model(tmp_path, "clicked")
    world.ran(RunState.SUCCEEDED, ended_ago=timedelta(days=2), rows=4000)
    # the newest run (created six hours ago) ended a second ago: still within the back-off
    world.ran(RunState.FAILED, ended_ago=timedelta(seconds=1), rows=0)
    assert scheduler(world, registry).due(USE_CASE) is None


def test_a_newest_run_cut_short_by_a_restart_holds_retraining_back_from_its_creation(tmp_path):
    world = world_with(TWO_LABELS)
    registry = live_model(tmp_path, "clicked")
    world.ran(RunState.SUCCEEDED, ended_ago=timedelta(days=2), rows=4000)
    world.ran(RunState.RUNNING, ended_ago=None, rows=0, created_ago=timedelta(seconds=1))  # the Trainer was killed
    assert scheduler(world, registry).due(USE_CASE) is None
    world.history[0] = replace(world.history[0], create_time=(NOW - timedelta(minutes=5)).isoformat())
    assert scheduler(world, registry).due(USE_CASE) == Trigger.SCHEDULE


def test_a_live_model_that_serves_every_label_needs_no_retraining_without_a_schedule(tmp_path):
    world = world_with(ONE_LABEL)
    world.ran(RunState.SUCCEEDED, ended_ago=timedelta(days=2), rows=4000)
    assert scheduler(world, live_model(tmp_path, "clicked")).due(USE_CASE) is None


def test_a_live_model_that_predates_naming_its_label_serves_the_primary_outcome(tmp_path):
    world = world_with(ONE_LABEL)
    world.ran(RunState.SUCCEEDED, ended_ago=timedelta(days=2), rows=4000)
    assert scheduler(world, live_model(tmp_path, "")).due(USE_CASE) is None


def test_a_use_case_whose_check_keeps_failing_is_counted_every_time():
    class Broken(World):
        def names(self):
            return ["broken"]

        def row_count(self, use_case):
            raise OSError("a corrupt parquet footer")

    broken = Broken()
    checker = RetrainingScheduler(broken, broken, broken.runs_view(), broken, clock=lambda: NOW)
    assert checker.check_all() == [] and checker.check_all() == []
    assert checker.failures == {"broken": 2}
