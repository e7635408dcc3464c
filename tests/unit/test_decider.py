"""The Decider without a server: validation against the blueprint, the default decision,
scoring through a (fake) live model, and falling back when the model breaks."""

from __future__ import annotations

import pytest

from services.blueprints.store import BlueprintStore
from services.decision.decider import CandidateInput, DecideCommand, Decider, NoModels
from services.decisions.log import DecisionLog, iter_decisions
from services.decisions.record import DefaultReason
from services.platform.data_dir import DataDir
from services.platform.errors import InvalidArgument, NotFound
from tests.conftest import SIMPLE_BLUEPRINT

RANKING = """
name: feed_ranking
decision_type: ranking
entities: [user_id]
default_decision: as_given
features:
  candidate: {price: double}
label: {outcome: clicked, window: 1h}
"""


class FakeFeatures:
    def fetch(self, blueprint, subject):
        return {"user_stats__sessions": 4.0}


class FakeModel:
    version = "m000007"

    def __init__(self, scores=None, broken=False):
        self.scores, self.broken, self.rows = scores, broken, []

    def score(self, rows):
        if self.broken:
            raise RuntimeError("corrupt model")
        self.rows.extend(rows)
        return self.scores or [0.9, 0.1][: len(rows)]


class FakeModels(NoModels):
    def __init__(self, model):
        self.model = model

    def get(self, use_case):
        return self.model

    def load_failed(self, use_case):
        return False


@pytest.fixture()
def stores(tmp_path):
    blueprints = BlueprintStore(tmp_path / "blueprints")
    blueprints.apply(SIMPLE_BLUEPRINT.replace("exploration_rate: 0.2", "exploration_rate: 0.0"))
    blueprints.apply(RANKING)
    log = DecisionLog(DataDir(tmp_path).ensure().decisions)
    yield blueprints, log
    log.close()


def command(**changes):
    fields = dict(use_case="contract_test", decision_id="d-1", subject={"user_id": "u1"},
                  context={"hour_of_day": 9, "platform": "ios"})
    fields.update(changes)
    return DecideCommand(**fields)


@pytest.mark.parametrize("changes, field", [
    ({"decision_id": ""}, "decision_id"),
    ({"decision_id": "has space"}, "decision_id"),
    ({"subject": {}}, "subject.user_id"),
    ({"subject": {"user_id": "u", "team": "t"}}, "subject.team"),
    ({"context": {"hour_of_day": "nine"}}, "context.hour_of_day"),
    ({"context": {"hour_of_day": True}}, "context.hour_of_day"),
    ({"context": {"unknown": 1}}, "context.unknown"),
    ({"candidates": (CandidateInput("a"),)}, "candidates"),
])
def test_invalid_commands_name_the_field(stores, changes, field):
    decider = Decider(*stores)
    with pytest.raises(InvalidArgument) as raised:
        decider.decide(command(**changes))
    assert field in [v.field for v in raised.value.violations]
    assert stores[1].find("contract_test", changes.get("decision_id", "d-1")) is None


def test_unknown_use_case_is_not_found(stores):
    with pytest.raises(NotFound):
        Decider(*stores).decide(command(use_case="nothing"))


def test_without_a_model_the_default_is_returned_and_logged(stores):
    decider = Decider(*stores, features=FakeFeatures())
    record, replayed = decider.decide(command())
    assert not replayed and record.default_reason == DefaultReason.NO_MODEL
    assert record.action == "false" and record.propensity == 1.0
    assert record.features == {"user_stats__sessions": 4.0, "hour_of_day": 9, "platform": "ios"}
    assert decider.decide(command()) == (record, True)


def test_a_live_model_scores_every_action(stores):
    model = FakeModel(scores=[0.9, 0.1])
    record, _ = Decider(*stores, features=FakeFeatures(), models=FakeModels(model)).decide(command())
    assert record.model_version == "m000007" and not record.is_default
    assert record.action == "true" and record.score == 0.9
    assert [r["action"] for r in model.rows] == ["true", "false"]
    assert all(r["user_stats__sessions"] == 4.0 for r in model.rows)


def test_a_broken_model_falls_back_to_the_default(stores):
    record, _ = Decider(*stores, models=FakeModels(FakeModel(broken=True))).decide(command())
    assert record.default_reason == DefaultReason.MODEL_UNAVAILABLE
    assert record.model_version == "" and record.action == "false"


def test_ranking_orders_candidates_by_score(stores):
    model = FakeModel(scores=[0.2, 0.7, 0.5])
    candidates = tuple(CandidateInput(a, {"price": p}) for a, p in (("a", 1.0), ("b", 2.0), ("c", 3.0)))
    record, _ = Decider(*stores, models=FakeModels(model)).decide(
        command(use_case="feed_ranking", context={}, candidates=candidates))
    assert [r.action_id for r in record.ranking] == ["b", "c", "a"] and record.action == "b"
    assert [r["price"] for r in model.rows] == [1.0, 2.0, 3.0]


class SlowFeatures:
    """Holds every fetch long enough for concurrent calls to overlap."""

    def __init__(self):
        self.calls = 0

    def fetch(self, blueprint, subject):
        self.calls += 1
        import time

        time.sleep(0.05)
        return {}


def test_concurrent_calls_with_one_decision_id_log_one_decision(stores, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    features = SlowFeatures()
    decider = Decider(*stores, features=features)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: decider.decide(command(decision_id="same-id")), range(8)))
    assert sorted(replayed for _, replayed in answers) == [False] + [True] * 7
    assert all(record == answers[0][0] for record, _ in answers) and features.calls == 1
    stores[1].close()
    assert [r.decision_id for r in iter_decisions(DataDir(tmp_path).decisions)] == ["same-id"]


class GatedFeatures:
    """Holds the first read until released, so that the calls arriving meanwhile queue."""

    def __init__(self):
        import threading

        self.reads, self.release = [], threading.Event()

    def fetch_many(self, requests):
        self.reads.append([subject["user_id"] for _, subject in requests])
        assert self.release.wait(10)
        return [{"user_stats__sessions": 4.0} for _ in requests]


def test_concurrent_decisions_share_one_feature_read_one_model_call_and_one_write(stores, monkeypatch):
    import time
    from concurrent.futures import ThreadPoolExecutor

    from services.platform import durable_log

    writes = []
    real_write_all = durable_log._write_all
    monkeypatch.setattr(durable_log, "_write_all", lambda fd, data: (writes.append(len(data)), real_write_all(fd, data)))
    features, model = GatedFeatures(), FakeModel(scores=[0.9, 0.1] * 6)
    decider = Decider(*stores, features=features, models=FakeModels(model))
    try:
        with ThreadPoolExecutor(7) as pool:
            first = pool.submit(decider.decide, command(decision_id="first", subject={"user_id": "u0"}))
            while not features.reads:
                time.sleep(0.001)
            rest = [pool.submit(decider.decide, command(decision_id=f"d{i}", subject={"user_id": f"u{i}"}))
                    for i in range(1, 7)]
            while len(decider._deciding._queue) < 6:
                time.sleep(0.001)
            features.release.set()
            answers = [first.result()] + [f.result() for f in rest]
        assert [record.subject["user_id"] for record, _ in answers] == [f"u{i}" for i in range(7)]
        assert all(not replayed and record.model_version == "m000007" for record, replayed in answers)
        assert sorted(features.reads[1]) == [f"u{i}" for i in range(1, 7)], "the queued six were read together"
        assert len(model.rows) == 2 + 12, "one model call scored both actions of the six"
        assert len(writes) == 2, "the six were logged in one write"
    finally:
        features.release.set()
        decider.close()


def test_decisions_on_the_event_loop_that_queue_meanwhile_are_made_and_logged_together(stores, monkeypatch):
    """The asyncio server's path: while one decision is being made, those that arrive on
    the loop wait for the next batch; every caller gets its own decision, and a retried id
    its replay."""
    import asyncio

    from services.platform import durable_log

    writes = []
    real_write_all = durable_log._write_all
    monkeypatch.setattr(durable_log, "_write_all", lambda fd, data: (writes.append(len(data)), real_write_all(fd, data)))
    features, model = GatedFeatures(), FakeModel(scores=[0.9, 0.1] * 6)
    decider = Decider(*stores, features=features, models=FakeModels(model))

    async def scenario():
        first = asyncio.ensure_future(decider.decide_async(command(decision_id="first", subject={"user_id": "u0"})))
        while not features.reads:
            await asyncio.sleep(0.001)
        rest = [asyncio.ensure_future(decider.decide_async(command(decision_id=f"d{i}", subject={"user_id": f"u{i}"})))
                for i in range(1, 6)]
        rest.append(asyncio.ensure_future(decider.decide_async(command(decision_id="d1", subject={"user_id": "u1"}))))
        await asyncio.sleep(0.05)
        features.release.set()
        return await asyncio.gather(first, *rest)

    try:
        answers = asyncio.run(scenario())
    finally:
        features.release.set()
        decider.close()
    assert [record.subject["user_id"] for record, _ in answers] == [f"u{i}" for i in range(6)] + ["u1"]
    assert [replayed for _, replayed in answers] == [False] * 6 + [True]
    assert answers[6][0] == answers[1][0], "the retried id was answered with its decision"
    assert sorted(features.reads[1]) == [f"u{i}" for i in range(1, 6)], "the five that queued were read together"
    assert len(writes) == 2, "the five were logged in one write"


def test_a_decision_on_the_event_loop_past_its_deadline_is_refused_and_not_logged(stores):
    import asyncio
    import time

    from services.platform.errors import DeadlineExceeded

    decider = Decider(*stores)
    try:
        with pytest.raises(DeadlineExceeded):
            asyncio.run(decider.decide_async(command(decision_id="late", deadline=time.monotonic() - 1)))
    finally:
        decider.close()
    assert stores[1].find("contract_test", "late") is None


def test_a_batch_answers_each_item_logs_the_new_ones_together_and_replays_repeats(stores, tmp_path, monkeypatch):
    from services.platform import durable_log

    writes = []
    real_write_all = durable_log._write_all
    monkeypatch.setattr(durable_log, "_write_all", lambda fd, data: (writes.append(len(data)), real_write_all(fd, data)))
    decider = Decider(*stores)
    decider.decide(command(decision_id="earlier"))
    writes.clear()
    answers = decider.decide_many([command(decision_id="b1"), command(decision_id=""), command(decision_id="b2"),
                                   command(decision_id="b1"), command(decision_id="earlier"),
                                   command(use_case="nothing", decision_id="b3")])
    assert [a[1] if isinstance(a, tuple) else type(a).__name__ for a in answers] == [
        False, "InvalidArgument", False, True, True, "NotFound"]
    assert answers[3][0] == answers[0][0]
    assert len(writes) == 1, "the two new decisions were not logged in one write"
    stores[1].close()
    assert sorted(r.decision_id for r in iter_decisions(DataDir(tmp_path).decisions)) == ["b1", "b2", "earlier"]


def test_a_paused_use_case_answers_its_default_and_still_logs(stores):
    blueprints, log = stores
    blueprints.set_paused("contract_test", True, "incident 42")
    record, _ = Decider(*stores, models=FakeModels(FakeModel(scores=[0.9, 0.1]))).decide(command(decision_id="p-1"))
    assert record.default_reason == DefaultReason.PAUSED and record.action == "false"
    assert log.find("contract_test", "p-1") == record
    blueprints.set_paused("contract_test", False)
    record, _ = Decider(*stores, models=FakeModels(FakeModel(scores=[0.9, 0.1]))).decide(command(decision_id="p-2"))
    assert record.model_version == "m000007"


class BrokenFeatures:
    def fetch(self, blueprint, subject):
        from services.features.store import FeaturesUnavailable

        raise FeaturesUnavailable("the online store's table is gone")


class StuckFeatures:
    def __init__(self):
        self.release = __import__("threading").Event()

    def fetch(self, blueprint, subject):
        self.release.wait(10)
        return {}


def test_a_failed_feature_store_gives_the_default_flagged_never_a_model_on_missing_features(stores):
    model = FakeModel(scores=[0.9, 0.1])
    record, _ = Decider(*stores, features=BrokenFeatures(), models=FakeModels(model)).decide(command())
    assert record.default_reason == DefaultReason.FEATURES_UNAVAILABLE and record.model_version == ""
    assert model.rows == [], "the model never scored"


def test_a_stuck_feature_store_costs_a_decision_its_deadline_not_more(stores):
    import time

    features = StuckFeatures()
    decider = Decider(*stores, features=features, models=FakeModels(FakeModel()))
    try:
        started = time.monotonic()
        record, _ = decider.decide(command(deadline=time.monotonic() + 1.0))  # a fifth of it is kept to decide
        assert record.default_reason == DefaultReason.FEATURES_UNAVAILABLE
        assert time.monotonic() - started < 5  # generous: it returned at its deadline, not after the store
    finally:
        features.release.set()


def test_a_decision_whose_deadline_passed_is_not_logged(stores):
    import time

    from services.platform.errors import DeadlineExceeded

    with pytest.raises(DeadlineExceeded):
        Decider(*stores).decide(command(decision_id="late", deadline=time.monotonic() - 1))
    assert stores[1].find("contract_test", "late") is None
    assert Decider(*stores).decide(command(decision_id="late"))[1] is False  # the id is free
