"""One training run end to end without a server: the training table in, a small CatBoost
model fitted, evaluated next to the live one, registered with its lineage, and promoted only
when it wins (or when promotion is forced)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from services.blueprints.spec import parse_blueprint
from services.decisions.record import DecisionRecord, DefaultReason
from services.labels.training_table import LabeledDecision, TrainingTable
from services.models.registry import ModelKind, ModelRegistry, ModelStage
from services.platform.errors import LooperError
from services.trainer.pipeline import TrainingPipeline
from services.trainer.runs import RunState, TrainingRun, Trigger

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)


def blueprint(context=None, decision_type="binary", default=False, version=1):
    spec = {"name": "pipeline_case", "decision_type": decision_type, "entities": ["user_id"],
            "default_decision": default,
            "features": {"context": context or {"hour_of_day": "int64", "platform": "string"}},
            "label": {"outcome": "clicked", "window": "1h"},
            "model": {"params": {"iterations": 20, "depth": 2}}}
    return parse_blueprint(spec).with_version(version)


def fill(table: TrainingTable, rows: int) -> None:
    """Rows whose label follows the hour: clicked in the afternoon, not in the morning."""
    labeled = []
    for i in range(rows):
        hour = (i * 7) % 24
        record = DecisionRecord(
            decision_id=f"d{i:03d}", use_case="pipeline_case", blueprint_version=1,
            decide_time=T0 + timedelta(minutes=i), subject={"user_id": f"u{i % 5}"},
            features={"hour_of_day": hour, "platform": "ios" if i % 3 else "web"},
            context={"hour_of_day": hour, "platform": "ios" if i % 3 else "web"},
            action="true" if i % 2 else "false", score=0.0, propensity=0.5, is_exploration=False,
            model_version="", default_reason=DefaultReason.NO_MODEL)
        labeled.append(LabeledDecision(record, {"clicked": (float(hour >= 12), int(hour >= 12))}))
    table.append("pipeline_case", labeled)


def run(bp, run_id="run-000000000001"):
    return TrainingRun(run_id=run_id, use_case="pipeline_case", blueprint_version=bp.version,
                       state=RunState.RUNNING, trigger=Trigger.MANUAL, create_time=T0.isoformat(),
                       traceparent="00-0123456789abcdef0123456789abcdef-0123456789abcdef-01")


@pytest.fixture()
def parts(tmp_path):
    return TrainingTable(tmp_path / "table"), ModelRegistry(tmp_path / "models")


def test_fewer_than_twenty_labeled_rows_is_refused_with_the_count(parts):
    table, registry = parts
    fill(table, 19)
    with pytest.raises(LooperError, match="only 19 labeled rows; at least 20"):
        TrainingPipeline(table, registry)(run(blueprint()), blueprint(), False)
    assert registry.list("pipeline_case") == []


def test_twenty_rows_are_enough_for_a_first_model(parts):
    table, registry = parts
    fill(table, 20)
    done = TrainingPipeline(table, registry)(run(blueprint()), blueprint(), False)
    assert done.state == RunState.SUCCEEDED and done.row_count == 20


def test_the_first_model_is_registered_with_its_lineage_and_goes_live(parts):
    table, registry = parts
    fill(table, 60)
    bp = blueprint(version=3)
    done = TrainingPipeline(table, registry)(run(bp), bp, False)
    assert done.state == RunState.SUCCEEDED and done.promoted and done.model_version == "m000001"
    assert done.row_count == 60 and done.live_metrics == {}
    assert done.metrics["rows"] == 12.0  # the newest fifth is the holdout
    assert {"auc", "log_loss", "normalized_entropy", "logged_value", "product_value"} <= set(done.metrics)
    assert registry.live_version("pipeline_case") == "m000001"
    meta = registry.get("pipeline_case", "m000001")
    assert (meta.use_case, meta.blueprint_version, meta.run_id, meta.kind, meta.label) == (
        "pipeline_case", 3, "run-000000000001", ModelKind.CLASSIFIER, "clicked")
    assert meta.feature_columns == ["hour_of_day", "platform", "action"]
    assert meta.categorical_columns == ["platform", "action"]
    assert meta.metrics == done.metrics and meta.row_count == 60
    assert meta.traceparent == run(bp).traceparent
    assert datetime.fromisoformat(meta.data_start_time) == T0
    assert datetime.fromisoformat(meta.data_end_time) == T0 + timedelta(minutes=59)
    assert registry.artifact("pipeline_case", "m000001").stat().st_size > 0


def test_a_model_no_better_than_the_live_one_is_registered_but_not_promoted(parts):
    table, registry = parts
    fill(table, 60)
    pipeline = TrainingPipeline(table, registry)
    first = pipeline(run(blueprint()), blueprint(), False)
    # same rows, same seed: the same model again, which ties and so keeps the live one
    second = pipeline(run(blueprint(), "run-000000000002"), blueprint(), False)
    assert second.state == RunState.SUCCEEDED and second.model_version == "m000002" and not second.promoted
    assert second.live_metrics == first.metrics
    assert registry.live_version("pipeline_case") == "m000001"
    assert registry.stage("pipeline_case", "m000002") == ModelStage.CANDIDATE


def test_forced_promotion_puts_the_new_model_live_even_on_a_tie(parts):
    table, registry = parts
    fill(table, 60)
    pipeline = TrainingPipeline(table, registry)
    pipeline(run(blueprint()), blueprint(), False)
    forced = pipeline(run(blueprint(), "run-000000000002"), blueprint(), True)
    assert forced.promoted and registry.live_version("pipeline_case") == "m000002"


def test_the_live_model_is_evaluated_on_its_own_inputs_after_a_feature_is_added(parts):
    table, registry = parts
    fill(table, 60)
    pipeline = TrainingPipeline(table, registry)
    older = blueprint(context={"hour_of_day": "int64"})
    first = pipeline(run(older), older, False)
    newer = blueprint(version=2)  # adds the platform feature
    second = pipeline(run(newer, "run-000000000002"), newer, False)
    assert registry.get("pipeline_case", "m000001").feature_columns == ["hour_of_day", "action"]
    assert registry.get("pipeline_case", "m000002").feature_columns == ["hour_of_day", "platform", "action"]
    # the live model scored the same holdout rows as when it was the candidate
    assert second.live_metrics == first.metrics


def test_a_regression_use_case_trains_a_regressor_judged_by_its_error(parts):
    table, registry = parts
    fill(table, 60)
    bp = blueprint(decision_type="regression", default="0.5")
    done = TrainingPipeline(table, registry)(run(bp), bp, False)
    meta = registry.get("pipeline_case", done.model_version)
    assert meta.kind == ModelKind.REGRESSOR and meta.feature_columns == ["hour_of_day", "platform"]
    assert set(done.metrics) == {"rmse", "rows"} and done.promoted


def test_training_writes_nothing_outside_the_registry(parts, tmp_path, monkeypatch, capfd):
    table, registry = parts
    fill(table, 40)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)  # CatBoost, left to its defaults, writes catboost_info/ here and logs every iteration
    TrainingPipeline(table, registry)(run(blueprint()), blueprint(), False)
    assert list(work.iterdir()) == []
    assert capfd.readouterr().out == ""


def test_a_run_is_traced_as_build_fit_evaluate_register_with_its_figures(parts):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from services.platform.telemetry import Telemetry

    table, registry = parts
    fill(table, 60)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("looper.training_run") as root:
        TrainingPipeline(table, registry, telemetry=Telemetry(tracer=tracer))(run(blueprint()), blueprint(), False)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    stages = ["looper.training_set.build", "looper.fit", "looper.evaluate", "looper.register"]
    assert set(spans) == {"looper.training_run", *stages}
    assert all(spans[name].parent.span_id == root.get_span_context().span_id for name in stages)
    assert [spans[name].start_time <= spans[after].start_time for name, after in zip(stages, stages[1:])] == [True] * 3
    assert dict(spans["looper.training_set.build"].attributes) == {"looper.rows": 60, "looper.holdout_rows": 12}
    assert dict(spans["looper.fit"].attributes) == {"looper.labels": 1, "looper.uplift_learner": ""}
    assert dict(spans["looper.register"].attributes) == {"looper.model_version": "m000001", "looper.promoted": True}


def test_a_run_trains_on_the_newest_max_rows_of_the_table(parts):
    table, registry = parts
    fill(table, 130)
    spec = {"name": "pipeline_case", "decision_type": "binary", "entities": ["user_id"], "default_decision": False,
            "features": {"context": {"hour_of_day": "int64", "platform": "string"}},
            "label": {"outcome": "clicked", "window": "1h"}, "model": {"params": {"iterations": 20, "depth": 2}},
            "retraining": {"max_rows": 100}}
    bp = parse_blueprint(spec).with_version(1)
    done = TrainingPipeline(table, registry)(run(bp), bp, False)
    meta = registry.get("pipeline_case", done.model_version)
    assert done.row_count == 100 and meta.row_count == 100
    assert (meta.data_start_time, meta.data_end_time) == (str(T0 + timedelta(minutes=30)),
                                                          str(T0 + timedelta(minutes=129))), "the oldest 30 rows left out"


def test_a_run_stops_without_registering_when_the_trainer_is_shutting_down(parts):
    table, registry = parts
    fill(table, 60)
    pipeline = TrainingPipeline(table, registry)
    pipeline.stopping.set()
    with pytest.raises(LooperError, match="training stopped: the Trainer is shutting down"):
        pipeline(run(blueprint()), blueprint(), False)
    assert registry.list("pipeline_case") == []
