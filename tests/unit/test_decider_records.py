"""What the Decider writes into a decision and its trace: a numeric decision's grid value
chosen by expected product value with every outcome's prediction kept, the counter of
failed feature reads, and the stages of a batch as contiguous child spans of each sampled
decision, a failed stage marked with why."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from services.blueprints.store import BlueprintStore
from services.decision.decider import DecideCommand, Decider
from services.decisions.log import DecisionLog
from services.decisions.record import DefaultReason
from services.platform.data_dir import DataDir
from services.platform.telemetry import Telemetry
from tests.unit.test_decider import BrokenFeatures, FakeModels, command, stores  # noqa: F401 - the fixture

BITRATE = """
name: start_bitrate
decision_type: numeric
entities: [viewer_id]
default_decision: 1000
numeric: {min: 500, max: 2000, step: 500, exploration_width: 1}
features:
  context: {bandwidth_kbps: double}
labels:
  - {outcome: watch_minutes, aggregation: sum, kind: value, window: 2s, missing_value: 0}
  - {outcome: rebuffered, aggregation: max, kind: probability, window: 2s, missing_value: 0}
policy: {exploration_rate: 0.0}
product_metric:
  weights: {watch_minutes: 1.0, rebuffered: -5.0}
"""


class OutcomeModel:
    """Predicts each outcome for the grid's values 500, 1000, 1500, 2000."""

    version = "m000003"

    def __init__(self):
        self.rows = []

    def predict(self, rows):
        self.rows.extend(rows)
        return {"watch_minutes": [10.0, 20.0, 40.0, 25.0], "rebuffered": [0.0, 0.0, 1.0, 0.0]}


@pytest.fixture()
def bitrate(tmp_path):
    blueprints = BlueprintStore(tmp_path / "blueprints")
    blueprints.apply(BITRATE)
    log = DecisionLog(DataDir(tmp_path).ensure().decisions)
    yield blueprints, log
    log.close()


def test_a_numeric_decision_takes_the_best_value_by_product_value_and_keeps_every_prediction(bitrate):
    model = OutcomeModel()
    decider = Decider(*bitrate, models=FakeModels(model))
    record, replayed = decider.decide(DecideCommand("start_bitrate", "b-1", {"viewer_id": "v1"},
                                                    {"bandwidth_kbps": 3000.0}))
    # values 10, 20, 40 - 5 * 1 = 35, 25: 1500 is best although 2000 never rebuffers
    assert not replayed and (record.action, record.value) == ("1500", 1500.0)
    assert record.score == 40.0 and record.propensity == 1.0 and not record.is_exploration
    assert record.predictions == {"watch_minutes": 40.0, "rebuffered": 1.0}
    assert [row["value"] for row in model.rows] == [500.0, 1000.0, 1500.0, 2000.0]
    logged = bitrate[1].find("start_bitrate", "b-1")
    assert (logged.action, logged.value, logged.predictions) == ("1500", 1500.0, record.predictions)


def test_a_numeric_decision_without_a_model_takes_the_default_value(bitrate):
    record, _ = Decider(*bitrate).decide(DecideCommand("start_bitrate", "b-2", {"viewer_id": "v1"},
                                                       {"bandwidth_kbps": 3000.0}))
    assert (record.action, record.value, record.default_reason) == ("1000", 1000.0, DefaultReason.NO_MODEL)
    assert record.predictions == {} and record.propensity == 1.0


def observed():
    spans, metrics = InMemorySpanExporter(), InMemoryMetricReader()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    telemetry = Telemetry(tracer=provider.get_tracer("test"),
                          meter=MeterProvider(metric_readers=[metrics]).get_meter("test"), enabled=True)
    return telemetry, spans, metrics


def test_a_failed_feature_read_is_counted_by_reason_and_marks_its_stage_failed(stores):  # noqa: F811
    telemetry, spans, metrics = observed()
    decider = Decider(*stores, features=BrokenFeatures(), telemetry=telemetry)
    decider.decide(command(decision_id="f-1"))
    decider.decide(command(decision_id="f-2"))
    counted = [(p.attributes, p.value) for rm in metrics.get_metrics_data().resource_metrics
               for sm in rm.scope_metrics for m in sm.metrics if m.name == "looper.feature_fetch.failures"
               for p in m.data.data_points]
    assert counted == [({"looper.reason": "FeaturesUnavailable"}, 2)]
    fetches = [s for s in spans.get_finished_spans() if s.name == "looper.feature_fetch"]
    assert len(fetches) == 2
    assert all(s.status.status_code == StatusCode.ERROR and s.status.description == "FEATURES_UNAVAILABLE"
               for s in fetches)


def test_a_batchs_stages_are_contiguous_children_of_the_decision_and_a_good_stage_is_not_failed(stores):  # noqa: F811
    from tests.unit.test_decider import FakeFeatures, FakeModel

    telemetry, spans, _ = observed()
    Decider(*stores, features=FakeFeatures(), models=FakeModels(FakeModel()), telemetry=telemetry).decide(
        command(decision_id="s-1"))
    by_name = {s.name: s for s in spans.get_finished_spans()}
    stages = ["looper.feature_fetch", "looper.inference", "looper.policy", "looper.decision_log.append"]
    decide = by_name["looper.decide"]
    assert all(by_name[name].parent.span_id == decide.context.span_id for name in stages)
    assert all(by_name[a].end_time == by_name[b].start_time for a, b in zip(stages, stages[1:])), "gaps or overlaps"
    assert decide.start_time <= by_name[stages[0]].start_time and by_name[stages[-1]].end_time <= decide.end_time
    assert all(by_name[name].status.status_code == StatusCode.UNSET for name in stages)
    assert dict(by_name["looper.inference"].attributes) == {"looper.model_version": "m000007", "looper.rows": 2}
