"""A data directory written in format 1 (before format files) is upgraded on start, never
misread: decisions keep their meaning, retries still replay, the joiner resumes where it
was, and a directory from a newer Looper is refused with a message."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone

import pytest

from services.decisions.log import DecisionLog, DecisionStream, iter_decisions
from services.decisions.record import DefaultReason
from services.labels.joiner import _SCHEMA as JOINER_SCHEMA
from services.labels.outcomes import OutcomeEvent, OutcomeRecorder
from services.migration import DataDirError, open_data_dir
from services.platform.data_dir import FORMAT_VERSION, DataDir
from services.platform.durable_log import DurableLog
from services.blueprints.store import BlueprintStore
from tests.conftest import SIMPLE_BLUEPRINT

NOW = datetime.now(timezone.utc).isoformat()


def v1_decision(decision_id: str, is_default: bool) -> dict:
    return {"decision_id": decision_id, "use_case": "contract_test", "action": "false", "score": 0.25,
            "model_version": "" if is_default else "m000001", "blueprint_version": 1, "propensity": 0.9,
            "is_default": is_default, "is_exploration": False, "decide_time": NOW, "subject": {"user_id": "u"},
            "features": {"hour_of_day": 3}, "context": {"hour_of_day": 3},
            "ranking": [{"action_id": "false", "score": 0.25, "propensity": 0.9}], "traceparent": ""}


def v1_outcome(event_id: str, decision_id: str) -> dict:
    return {"event_id": event_id, "use_case": "contract_test", "decision_id": decision_id, "outcome": "clicked",
            "value": 1.0, "event_time": NOW, "receive_time": NOW, "traceparent": ""}


@pytest.fixture()
def v1_dir(tmp_path):
    """What the Looper of stop 6 left: logs, the joiner's checkpoints and database, and the
    decision table nothing read."""
    root = tmp_path / "data"
    BlueprintStore(root / "blueprints").apply(SIMPLE_BLUEPRINT)
    decisions = DurableLog(root / "logs" / "decisions", "decisions")
    first = decisions.append(v1_decision("d1", is_default=True))
    decisions.append(v1_decision("d2", is_default=False))
    decisions.close()
    feedback = DurableLog(root / "logs" / "feedback", "feedback")
    feedback.append(v1_outcome("e1", "d1"))
    feedback.close()
    state = root / "state"
    state.mkdir()
    # the joiner had read d1 (and the outcome), not d2
    d1_end = first.offset + len(json.dumps(v1_decision("d1", True), separators=(",", ":"))) + 8
    (state / "joiner-decisions.checkpoint.json").write_text(json.dumps({first.segment: d1_end}))
    (state / "joiner-feedback.checkpoint.json").write_text(json.dumps(
        {p.name: p.stat().st_size for p in (root / "logs" / "feedback").glob("*.log")}))
    with sqlite3.connect(state / "label_joiner.sqlite") as db:
        db.executescript(JOINER_SCHEMA)
        db.execute("INSERT INTO decisions (use_case, decision_id, decide_time, window_end, subject_key, "
                   "blueprint_version, record_json) VALUES ('contract_test', 'd1', 0, 0, 'u', 1, ?)",
                   (json.dumps(v1_decision("d1", True)),))
    (root / "offline" / "decisions" / "contract_test").mkdir(parents=True)
    (state / "decision-flush.checkpoint.json").write_text("{}")
    return root


def test_a_format_1_directory_is_upgraded_and_read_as_before(v1_dir):
    assert DataDir(v1_dir).format_version() == 1
    data = open_data_dir(v1_dir)
    assert data.format_version() == FORMAT_VERSION
    assert not (v1_dir / "offline" / "decisions").exists()
    assert not (v1_dir / "state" / "decision-flush.checkpoint.json").exists()
    records = {r.decision_id: r for r in iter_decisions(data.decisions)}
    assert records["d1"].default_reason == DefaultReason.NO_MODEL and records["d1"].is_default
    assert records["d2"].default_reason == DefaultReason.UNSPECIFIED and records["d2"].model_version == "m000001"
    assert records["d1"].ranking[0].propensity == 0.9


def test_retries_of_upgraded_decisions_and_events_still_replay(v1_dir):
    data = open_data_dir(v1_dir)
    log = DecisionLog(data.decisions)
    recorder = OutcomeRecorder(BlueprintStore(data.blueprints), data.labels)
    try:
        replayed = log.record_once("contract_test", "d2", lambda: pytest.fail("decided d2 a second time"))
        assert replayed[1] and replayed[0].score == 0.25
        event = OutcomeEvent("e1", "contract_test", "d1", "clicked", 1.0, datetime.now(timezone.utc))
        assert recorder.record([event]) == [False]
    finally:
        log.close()
        recorder.close()


def test_the_joiner_resumes_where_it_was(v1_dir):
    data = open_data_dir(v1_dir)
    pending = [r.decision_id for r, _ in DecisionStream(data.decisions, "label-joiner").pending()]
    assert pending == ["d2"]  # d1 was read before the upgrade; its offsets moved with the rewrite
    with sqlite3.connect(data.labels.joiner) as db:
        (stored,) = db.execute("SELECT record_json FROM decisions").fetchone()
    assert json.loads(stored)["default_reason"] == DefaultReason.NO_MODEL


def test_upgrading_twice_changes_nothing(v1_dir):
    open_data_dir(v1_dir)
    before = sorted((p.name, p.read_bytes()) for p in (v1_dir / "logs" / "decisions").iterdir())
    open_data_dir(v1_dir)
    assert sorted((p.name, p.read_bytes()) for p in (v1_dir / "logs" / "decisions").iterdir()) == before


def test_a_new_directory_starts_in_the_current_format(tmp_path):
    assert DataDir(tmp_path / "fresh").format_version() is None
    assert open_data_dir(tmp_path / "fresh").format_version() == FORMAT_VERSION


def test_a_directory_from_a_newer_looper_is_refused(tmp_path):
    DataDir(tmp_path).mark_format(FORMAT_VERSION + 1)
    with pytest.raises(DataDirError, match="newer Looper"):
        open_data_dir(tmp_path)
