"""Acknowledged writes survive SIGKILL: decisions and outcome events acknowledged by the
Decision and Feedback processes are all found after a restart, and flow on from there."""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
from looper import LooperError, outcome_event
from looperpb.v1 import feedback_pb2

from services.launcher import start_looper
from tests.conftest import SIMPLE_BLUEPRINT

pytestmark = pytest.mark.e2e


@dataclass
class Hammered:
    acked: list[str] = field(default_factory=list)
    errors: dict[str, LooperError] = field(default_factory=dict)  # id -> the error its call got
    acked_after_signal: int = 0  # calls answered after the signal was sent: the drained ones


def hammer(call, ids: list[str], signal_server) -> Hammered:
    """Calls ``call(id)`` from 8 threads, signals the server once 150 calls were
    acknowledged, and records which calls were acknowledged and which failed."""
    result = Hammered()
    signalled = threading.Event()
    lock = threading.Lock()

    def one(item: str):
        try:
            call(item)
        except LooperError as err:
            with lock:
                result.errors[item] = err
            return
        with lock:
            result.acked.append(item)
            result.acked_after_signal += signalled.is_set()
            if len(result.acked) == 150:
                signal_server()
                signalled.set()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, ids))
    return result


@pytest.fixture()
def data_dir(tmp_path):
    data = tmp_path / "data"
    trainer = start_looper(data, "trainer")
    with trainer.client() as client:
        client.apply_blueprint(SIMPLE_BLUEPRINT)
    trainer.stop()
    return data


def test_acknowledged_decisions_survive_sigkill(data_dir):
    decision = start_looper(data_dir, "decision")
    client = decision.client(timeout=5, max_attempts=1)
    ids = [f"crash-{i}" for i in range(400)]
    acked = hammer(lambda i: client.decide("contract_test", i, {"user_id": i}, {"hour_of_day": 3}), ids,
                   lambda: decision.process.send_signal(signal.SIGKILL)).acked
    client.close()
    _check_decisions_after_restart(data_dir, decision, ids, acked)


def test_acknowledged_decisions_survive_sigkill_while_written_into_a_spare_segment(data_dir):
    """The same, killed while the log writes into a spare (zeros made ready ahead): the
    restarted services read every acknowledged decision and stop at the zeros."""
    decision = start_looper(data_dir, "decision", env={"LOOPER_LOG_SPARE_AFTER_BYTES": "1"})
    client = decision.client(timeout=5, max_attempts=1)
    segments = data_dir / "logs" / "decisions"
    warm_up, deadline = [], time.monotonic() + 30
    while len(list(segments.glob("decisions-*.log"))) < 2:  # the second segment is the first spare
        assert time.monotonic() < deadline, "the log never moved into a spare segment"
        warm_up.append(f"warm-{len(warm_up)}")
        client.decide("contract_test", warm_up[-1], {"user_id": warm_up[-1]}, {"hour_of_day": 3})
    ids = [f"crash-{i}" for i in range(400)]
    acked = hammer(lambda i: client.decide("contract_test", i, {"user_id": i}, {"hour_of_day": 3}), ids,
                   lambda: decision.process.send_signal(signal.SIGKILL)).acked
    client.close()
    [spare_made] = [s for s in segments.glob("decisions-*.log") if s.name.endswith("-0002.log")]
    assert spare_made.stat().st_size == 64 * 1024 * 1024, "killed with the spare's zeros unused"
    _check_decisions_after_restart(data_dir, decision, ids, acked, also_acked=warm_up)


def _check_decisions_after_restart(data_dir, decision, ids: list[str], acked: list[str],
                                   also_acked: list[str] = ()) -> None:
    assert decision.process.wait(10) == -signal.SIGKILL
    assert 150 <= len(acked) < len(ids), "the kill must land while calls are in flight"
    acked = [*also_acked, *acked]

    restarted = start_looper(data_dir, "decision")
    feedback = start_looper(data_dir, "feedback")
    try:
        with restarted.client() as c:
            for decision_id in acked:
                logged = c.get_decision("contract_test", decision_id)
                assert logged.subject["user_id"] == decision_id
                assert logged.features["hour_of_day"].int64_value == 3
        with feedback.client() as c:  # the joiner replays the decision log, killed tail and all
            last = acked[-1]
            deadline = time.monotonic() + 20
            while True:
                try:
                    c.get_label("contract_test", last)
                    break
                except LooperError:
                    assert time.monotonic() < deadline
                    time.sleep(0.2)
    finally:
        restarted.stop()
        feedback.stop()


def test_acknowledged_feedback_survives_sigkill(data_dir):
    feedback = start_looper(data_dir, "feedback")
    client = feedback.client(timeout=5, max_attempts=1)
    events = {f"event-{i}": outcome_event("contract_test", f"d-{i}", "clicked", 1.0, event_id=f"event-{i}")
              for i in range(400)}
    acked = hammer(lambda e: client.log_feedback_batch([events[e]]), list(events),
                   lambda: feedback.process.send_signal(signal.SIGKILL)).acked
    client.close()
    assert feedback.process.wait(10) == -signal.SIGKILL
    assert 150 <= len(acked) < len(events)

    restarted = start_looper(data_dir, "feedback")
    try:
        with restarted.client() as c:
            statuses = c.feedback.LogFeedbackBatch(feedback_pb2.LogFeedbackBatchRequest(
                events=[events[e] for e in acked])).statuses
            assert set(statuses) == {feedback_pb2.FEEDBACK_STATUS_DUPLICATE}  # every one was stored
            deadline = time.monotonic() + 20
            while c.join_stats("contract_test").orphan_outcomes < len(acked):
                assert time.monotonic() < deadline, "the joiner must see every acknowledged event"
                time.sleep(0.2)
    finally:
        restarted.stop()


def test_sigterm_drains_in_flight_calls_and_every_answer_is_logged(data_dir):
    import grpc

    from services.decisions.log import iter_decisions
    from services.platform.data_dir import DataDir

    decision = start_looper(data_dir, "decision")
    client = decision.client(timeout=10, max_attempts=1)
    ids = [f"drain-{i}" for i in range(300)]
    result = hammer(lambda i: client.decide("contract_test", i, {"user_id": i}), ids,
                    lambda: decision.process.send_signal(signal.SIGTERM))
    client.close()
    assert decision.process.wait(30) == 0, decision.log()
    assert "draining in-flight calls" in decision.log()
    assert len(result.acked) + len(result.errors) == len(ids)
    # Calls in flight when SIGTERM arrived were answered; calls that came later were refused
    # before anything was written (gRPC cancels those it had received but not started).
    assert result.acked_after_signal > 0, "no call was answered after SIGTERM: nothing was drained"
    assert {e.code for e in result.errors.values()} <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}
    logged = {record.decision_id for record in iter_decisions(DataDir(data_dir).decisions)}
    assert set(result.acked) <= logged, "every acknowledged decision is in the decision log"
    assert not logged & set(result.errors), "a call was cut off after its decision was logged"
