"""What an on-call engineer sees of a decision: one trace per decision with the fetch,
inference and policy spans inside it, attributes in the ``looper.`` namespace (never feature
values), the record linked to its trace, and the decision counter and latency by result."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.blueprints.store import BlueprintStore
from services.decision import decider as decider_module
from services.decision.decider import DecideCommand, Decider, NoModels
from services.decisions.log import DecisionLog
from services.platform.data_dir import DataDir
from services.platform.telemetry import Telemetry
from tests.conftest import SIMPLE_BLUEPRINT


class Model:
    version = "m000003"

    def __init__(self, broken=False):
        self.broken = broken

    def score(self, rows):
        if self.broken:
            raise RuntimeError("corrupt")
        return [0.9, 0.1] * (len(rows) // 2)  # each decision's two actions


class Models(NoModels):
    def __init__(self, model):
        self.model = model

    def get(self, use_case):
        return self.model

    def load_failed(self, use_case):
        return False


class Features:
    def fetch(self, blueprint, subject):
        return {"user_profile__sessions": 3.0, "user_profile__country": "de"}


class Observed:
    def __init__(self, tmp_path, exploration="0.0", model=None):
        self.spans, self.metrics = InMemorySpanExporter(), InMemoryMetricReader()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        telemetry = Telemetry(tracer=tracer_provider.get_tracer("test"),
                              meter=MeterProvider(metric_readers=[self.metrics]).get_meter("test"), enabled=True)
        blueprints = BlueprintStore(tmp_path / "blueprints")
        blueprints.apply(SIMPLE_BLUEPRINT.replace("exploration_rate: 0.2", f"exploration_rate: {exploration}"))
        self.log = DecisionLog(DataDir(tmp_path).ensure().decisions)
        self.decider = Decider(blueprints, self.log, features=Features(), models=Models(model), telemetry=telemetry)

    def span(self, name):
        (span,) = [s for s in self.spans.get_finished_spans() if s.name == name]
        return span

    def points(self, metric):
        data = self.metrics.get_metrics_data()
        found = [m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics if m.name == metric]
        return {p.attributes["looper.result"]: p for m in found for p in m.data.data_points}


def command(decision_id="d-1"):
    return DecideCommand("contract_test", decision_id, {"user_id": "u1"}, {"hour_of_day": 9, "platform": "ios"})


@pytest.fixture()
def observed(tmp_path):
    world = Observed(tmp_path, model=Model())
    yield world
    world.log.close()


def test_a_decision_is_one_trace_with_fetch_inference_and_policy_inside(observed):
    record, _ = observed.decider.decide(command())
    decide = observed.span("looper.decide")
    for name in ("looper.feature_fetch", "looper.inference", "looper.policy", "looper.decision_log.append"):
        child = observed.span(name)
        assert child.context.trace_id == decide.context.trace_id and child.parent.span_id == decide.context.span_id
    assert observed.span("looper.feature_fetch").attributes["looper.feature_count"] == 2
    assert dict(observed.span("looper.inference").attributes) == {"looper.model_version": "m000003", "looper.rows": 2}
    assert record.traceparent == f"00-{decide.context.trace_id:032x}-{decide.context.span_id:016x}-{int(decide.context.trace_flags):02x}"


def test_decisions_made_in_one_batch_each_get_the_batch_s_stages_in_their_own_trace(observed):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    release, reads = threading.Event(), []

    def gated(requests):
        reads.append(len(requests))
        assert release.wait(10)
        return [{"user_profile__sessions": 3.0} for _ in requests]
    observed.decider.features.fetch_many = gated
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(observed.decider.decide, command("first"))
        while not reads:
            pass
        rest = [pool.submit(observed.decider.decide, command(f"b-{i}")) for i in range(3)]
        while len(observed.decider._deciding._queue) < 3:
            pass
        release.set()
        [f.result() for f in [first, *rest]]
    assert reads == [1, 3]
    spans = observed.spans.get_finished_spans()
    decides = {s.attributes["looper.decision_id"]: s for s in spans if s.name == "looper.decide"}
    for decision_id in ("b-0", "b-1", "b-2"):
        children = [s for s in spans if s.parent and s.parent.span_id == decides[decision_id].context.span_id]
        assert sorted(s.name for s in children) == ["looper.decision_log.append", "looper.feature_fetch",
                                                    "looper.inference", "looper.policy"]
        assert all(s.context.trace_id == decides[decision_id].context.trace_id for s in children)
    inference = [s for s in spans if s.name == "looper.inference" and s.parent.span_id == decides["b-1"].context.span_id]
    assert inference[0].attributes["looper.rows"] == 2, "each trace counts its own decision's rows"


def test_the_decision_span_names_what_was_decided_and_never_a_feature_value(observed):
    record, _ = observed.decider.decide(command())
    assert dict(observed.span("looper.decide").attributes) == {
        "looper.use_case": "contract_test", "looper.decision_id": "d-1", "looper.model_version": "m000003",
        "looper.blueprint_version": 1, "looper.is_default": False, "looper.default_reason": "unspecified",
        "looper.is_exploration": False, "looper.action": "true", "looper.feature_count": 4}


def test_a_replay_is_marked_on_its_span_and_not_counted_again(observed):
    observed.decider.decide(command())
    observed.spans.clear()
    observed.decider.decide(command())
    attributes = dict(observed.span("looper.decide").attributes)
    assert attributes == {"looper.use_case": "contract_test", "looper.decision_id": "d-1", "looper.replayed": True}
    assert observed.points("looper.decisions")["model"].value == 1


def test_decisions_are_counted_by_result_with_their_latency_in_milliseconds(observed, tmp_path, monkeypatch):
    class Clock:  # perf_counter, advancing 0.25 s a reading
        now = 100.0

        def perf_counter(self):
            self.now += 0.25
            return self.now

    monkeypatch.setattr(decider_module, "time", Clock())
    observed.decider.decide(command("d-1"))
    default = Observed(tmp_path / "default", model=Model(broken=True))
    default.decider.decide(command("d-2"))
    explored = Observed(tmp_path / "explore", exploration="1.0", model=Model())
    for i in range(6):
        explored.decider.decide(command(f"e-{i}"))
    assert observed.points("looper.decisions")["model"].value == 1
    latency = observed.points("looper.decision.duration")["model"]
    assert latency.count == 1 and latency.sum == pytest.approx(250.0)
    assert default.points("looper.decisions")["default"].value == 1
    counted = explored.points("looper.decisions")
    assert sum(p.value for p in counted.values()) == 6 and set(counted) <= {"exploration", "model"}
    assert counted["exploration"].value >= 1
    assert all(p.attributes["looper.use_case"] == "contract_test" for p in counted.values())
    default.log.close()
    explored.log.close()


def test_a_batch_has_one_span_and_counts_only_its_new_decisions(observed):
    observed.decider.decide(command("earlier"))
    observed.decider.decide_many([command("b-1"), command("earlier"), command("b-1"), command("")])
    assert observed.span("looper.decide_batch").attributes["looper.requests"] == 4
    assert observed.points("looper.decisions")["model"].value == 2  # "earlier" once, "b-1" once
