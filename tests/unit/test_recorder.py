"""The outcome recorder under concurrency: one event id is stored once however many calls
carry it at the same time (in one process or in two sharing a data directory), a duplicate is
never reported before the first write is durable, and a failed write releases its claim so
that a retry can store the event."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest

from services.blueprints.store import BlueprintStore
from services.labels.outcomes import OutcomeEvent, OutcomeRecorder, iter_outcomes
from services.platform.data_dir import DataDir
from tests.conftest import SIMPLE_BLUEPRINT

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def event(event_id: str, decision_id: str = "d1") -> OutcomeEvent:
    return OutcomeEvent(event_id, "contract_test", decision_id, "clicked", 1.0, T0)


def stored_ids(tmp_path) -> list[str]:
    return [e.event_id for e in iter_outcomes(DataDir(tmp_path).labels)]


@pytest.fixture()
def recorder(tmp_path):
    data = DataDir(tmp_path).ensure()
    blueprints = BlueprintStore(data.blueprints)
    blueprints.apply(SIMPLE_BLUEPRINT)
    recorder = OutcomeRecorder(blueprints, data.labels)
    yield recorder
    recorder.close()


class GatedLog:
    """Wraps the real log: each append waits until the test opens the gate; can fail once."""

    def __init__(self, log, fail_first: bool = False):
        self.log, self.fail_first = log, fail_first
        self.gate, self.entered = threading.Event(), threading.Event()
        self.appended: list[str] = []

    def append_many(self, records):
        self.entered.set()
        assert self.gate.wait(10), "the test never opened the gate"
        if self.fail_first:
            self.fail_first = False
            raise OSError("disk error")
        self.log.append_many(records)
        self.appended += [r["event_id"] for r in records]

    def close(self):
        self.log.close()


def test_the_same_event_id_from_many_calls_at_once_is_stored_once(recorder, tmp_path):
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: recorder.record([event("same")]), range(16)))
    assert sorted(r[0] for r in results) == [False] * 15 + [True]
    recorder.close()
    assert stored_ids(tmp_path) == ["same"]


def test_a_repeat_inside_one_batch_is_a_duplicate(recorder, tmp_path):
    assert recorder.record([event("a"), event("b"), event("a")]) == [True, True, False]
    recorder.close()
    assert sorted(stored_ids(tmp_path)) == ["a", "b"]


def test_a_duplicate_waits_until_the_first_write_is_durable(recorder):
    recorder._log = gated = GatedLog(recorder._log)
    first = threading.Thread(target=recorder.record, args=([event("e1")],))
    first.start()
    assert gated.entered.wait(10)
    answers: list[list[bool]] = []
    second = threading.Thread(target=lambda: answers.append(recorder.record([event("e1")])))
    second.start()
    second.join(0.2)
    assert second.is_alive() and answers == [], "the duplicate answered before the write was durable"
    gated.gate.set()
    first.join(10)
    second.join(10)
    assert answers == [[False]] and gated.appended == ["e1"]


def test_a_failed_write_releases_its_claim(recorder, tmp_path):
    recorder._log = gated = GatedLog(recorder._log, fail_first=True)
    gated.gate.set()
    with pytest.raises(OSError):
        recorder.record([event("retry-me"), event("other")])
    assert recorder.record([event("retry-me")]) == [True]  # not taken for a duplicate
    assert recorder.record([event("other"), event("retry-me")]) == [True, False]
    recorder.close()
    assert sorted(stored_ids(tmp_path)) == ["other", "retry-me"]


def test_a_restarted_recorder_remembers_stored_ids(recorder, tmp_path):
    assert recorder.record([event("before-restart")]) == [True]
    recorder.close()
    again = OutcomeRecorder(recorder.blueprints, DataDir(tmp_path).labels)
    try:
        assert again.record([event("before-restart"), event("after-restart")]) == [False, True]
    finally:
        again.close()


def test_two_recorders_on_one_data_directory_agree_on_event_ids(recorder, tmp_path):
    other = OutcomeRecorder(recorder.blueprints, DataDir(tmp_path).labels)  # as a second Feedback process
    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda i: (recorder if i % 2 else other).record([event("shared")]), range(16)))
        assert sorted(r[0] for r in results) == [False] * 15 + [True]
        assert other.record([event("first-here")]) == [True] and recorder.record([event("first-here")]) == [False]
    finally:
        other.close()
    recorder.close()
    assert sorted(stored_ids(tmp_path)) == ["first-here", "shared"]
