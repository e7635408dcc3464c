"""Deleting a subject, and a use case, through the deletion job on a real data directory
(no servers, no Feast): hidden at once from every reader, then removed from the logs, the
joiner's state, the training table and the id indexes, while the other subjects and use cases
stay; a segment still open waits, and a run cut short is finished by the next."""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone

import pytest

from services.blueprints.store import BlueprintStore
from services.decisions.log import DecisionLog, DecisionStream
from services.decisions.record import DecisionRecord, DefaultReason
from services.deletions.job import DeletionJob
from services.deletions.requests import DeletionRequests
from services.deletions.store import DeletionKind, DeletionState, DeletionStore, Tombstones
from services.labels.joiner import CONSUMER, JOINER_LOCK, LabelJoiner
from services.labels.outcomes import OutcomeEvent, OutcomeRecorder, OutcomeStream
from services.labels.training_table import TrainingTable
from services.platform.data_dir import DataDir
from services.platform.durable_log import iter_records, list_segments
from services.platform.errors import FailedPrecondition, InvalidArgument, NotFound
from services.platform.id_index import IdempotencyIndex

BLUEPRINT = """
name: {name}
decision_type: binary
entities: [user_id]
default_decision: false
label: {{outcome: clicked, aggregation: sum, window: 10m, missing_value: 0}}
"""
USERS = ("u1", "u2", "u3")
T0 = datetime.now(timezone.utc) - timedelta(hours=2)  # decisions were made before the deletion


class World:
    def __init__(self, root):
        self.data = DataDir(root).ensure()
        self.blueprints = BlueprintStore(self.data.blueprints)
        for name in ("shop", "other"):
            self.blueprints.apply(BLUEPRINT.format(name=name))
        self.tombstones = Tombstones(self.data.deletions)
        self.now = T0
        self.log = DecisionLog(self.data.decisions, window=lambda: timedelta(days=3650), hidden=self.tombstones.covers)
        self.recorder = OutcomeRecorder(self.blueprints, self.data.labels, clock=lambda: self.now)
        self.table = TrainingTable(self.data.labels.training)
        self.joiner = LabelJoiner(self.blueprints, DecisionStream(self.data.decisions, CONSUMER),
                                  OutcomeStream(self.data.labels, CONSUMER), self.data.labels.joiner, self.table,
                                  clock=lambda: self.now, pass_lock=self.data.locks / JOINER_LOCK,
                                  tombstones=self.tombstones.active)
        self.store = DeletionStore(self.data.deletions)
        self.requests = DeletionRequests(self.store, self.blueprints)
        self.later = 0.0  # seconds the job's clock is ahead
        self.job = DeletionJob(self.data, self.store, self.blueprints, None, self.table, segment_seconds=60,
                               clock=lambda: time.time() + self.later)

    def decide_and_report(self, use_case: str, count: int, start: int = 0) -> None:
        for i in range(start, start + count):
            decision_id = f"{use_case}-{i:02d}"
            at = T0 + timedelta(seconds=i)
            record = DecisionRecord(
                decision_id=decision_id, use_case=use_case, blueprint_version=1, decide_time=at,
                subject={"user_id": USERS[i % 3]}, features={"x": float(i)}, context={}, action="true", score=0.5,
                propensity=0.9, is_exploration=False, model_version="", default_reason=DefaultReason.NO_MODEL)
            self.log.record_once(use_case, decision_id, lambda r=record: r)
            self.recorder.record([OutcomeEvent(f"e-{decision_id}", use_case, decision_id, "clicked", 1.0,
                                               at + timedelta(seconds=1))])

    def join_all(self) -> None:
        self.now = T0 + timedelta(hours=1)  # every window closed
        self.joiner.run_once()

    def close_segments(self) -> None:
        """Every segment closed: nothing written for an hour (the writers are this process)."""
        self.log.close()
        self.recorder.close()
        for folder in (self.data.decisions.log, self.data.labels.outcome_log):
            for segment in folder.glob("*.log"):
                old = time.time() - 3600
                os.utime(segment, (old, old))

    def logged(self, folder, prefix) -> list[dict]:
        return [r for s in list_segments(folder, prefix) for r, _ in iter_records(s)]

    def close(self) -> None:
        for closing in (self.joiner.close, self.job.close, self.store.close, self.tombstones.close):
            closing()


@pytest.fixture()
def world(tmp_path):
    w = World(tmp_path)
    yield w
    w.close()


def user(record: dict) -> str:
    return record["subject"]["user_id"]


def test_a_subjects_data_is_hidden_at_once_then_removed_everywhere(world):
    world.decide_and_report("shop", 30)
    world.decide_and_report("other", 9)
    world.join_all()
    assert len(world.table.read("shop")) == 30
    deletion, created = world.requests.delete_subject("shop", {"user_id": "u1"}, "req-1", "tester")
    assert created and deletion.state == DeletionState.PENDING and deletion.kind == DeletionKind.SUBJECT
    # at once, before the job: not found by id, not labeled
    assert world.log.find("shop", "shop-00") is None and world.log.find("shop", "shop-01") is not None
    assert world.log.find("other", "other-00") is not None  # another use case's u1 is another subject
    with pytest.raises(NotFound):
        world.joiner.label("shop", "shop-03")
    world.close_segments()
    world.later = 10  # past the in-flight margin
    assert world.job.run_once() == 1
    done = world.store.get(deletion.deletion_id)
    assert done.state == DeletionState.DONE and done.subject == {} and done.subject_sha256
    assert done.removed == {"decision_records": 10, "outcome_records": 10, "joined_decisions": 10,
                            "joined_outcomes": 10, "training_rows": 10, "segments": 2, "index_entries": 20}
    decisions = world.logged(world.data.decisions.log, "decisions")
    assert sorted(r["decision_id"] for r in decisions if r["use_case"] == "shop") == [
        f"shop-{i:02d}" for i in range(30) if i % 3]
    assert len([r for r in decisions if r["use_case"] == "other"]) == 9
    outcomes = world.logged(world.data.labels.outcome_log, "feedback")
    assert sorted(r["decision_id"] for r in outcomes if r["use_case"] == "shop") == [
        f"shop-{i:02d}" for i in range(30) if i % 3]
    rows = world.table.read("shop")
    assert len(rows) == 20 and "u1" not in set(rows["user_id"])
    assert len(world.table.read("other")) == 9
    assert world.joiner.stats("shop").joined_decisions == 20 and world.joiner.stats("other").joined_decisions == 9
    reader = DecisionLog(world.data.decisions, window=lambda: timedelta(days=3650))
    assert [i for i in range(30) if reader.find("shop", f"shop-{i:02d}") is not None] == [i for i in range(30) if i % 3]
    reader.close()
    outcome_ids = IdempotencyIndex(world.data.labels.outcome_index)
    assert outcome_ids.get("shop", "e-shop-00") is None and outcome_ids.get("shop", "e-shop-01") is not None
    outcome_ids.close()
    # a retry returns the same deletion; a request id reused for another subject is refused
    again, created = world.requests.delete_subject("shop", {"user_id": "u1"}, "req-1", "tester")
    assert not created and again.deletion_id == deletion.deletion_id and again.state == DeletionState.DONE
    with pytest.raises(FailedPrecondition):
        world.requests.delete_subject("shop", {"user_id": "u2"}, "req-1", "tester")


def test_records_in_a_segment_still_open_wait_until_it_closes(world):
    world.decide_and_report("shop", 6)
    world.join_all()
    deletion, _ = world.requests.delete_subject("shop", {"user_id": "u1"})
    world.later = 10
    world.job.run_once()
    waiting = world.store.get(deletion.deletion_id)
    assert waiting.state == DeletionState.RUNNING
    assert waiting.waiting == {"decision_records": 2, "segments": 1}
    assert "still open" in waiting.waiting_reason
    assert waiting.removed["joined_decisions"] == 2 and waiting.removed["training_rows"] == 2
    world.close_segments()
    world.job.run_once()
    done = world.store.get(deletion.deletion_id)
    assert done.state == DeletionState.DONE and done.waiting == {}
    assert done.removed["decision_records"] == 2 and done.removed["outcome_records"] == 2


def test_a_run_cut_short_is_finished_by_the_next(world, monkeypatch):
    world.decide_and_report("shop", 9)
    world.join_all()
    world.close_segments()
    deletion, _ = world.requests.delete_subject("shop", {"user_id": "u2"})
    world.later = 10
    with monkeypatch.context() as patched:
        patched.setattr(TrainingTable, "drop_rows", lambda *a, **k: (_ for _ in ()).throw(OSError("disk")))
        assert world.job.run_once() == 0
    stopped = world.store.get(deletion.deletion_id)
    assert stopped.state == DeletionState.RUNNING and "disk" in stopped.error and stopped.attempts == 1
    assert "joiner" in stopped.steps and "training" not in stopped.steps
    assert world.job.run_once() == 1
    done = world.store.get(deletion.deletion_id)
    assert done.state == DeletionState.DONE and done.error == "" and done.removed["training_rows"] == 3
    assert done.removed["joined_decisions"] == 3  # counted once, by the run that removed them


def test_a_use_case_is_gone_at_once_then_everywhere_and_its_name_can_be_used_again(world):
    world.decide_and_report("shop", 6)
    world.decide_and_report("other", 6)
    world.join_all()
    for folder in (world.data.models / "shop" / "m000001", world.data.runs / "shop", world.data.experiments / "shop"):
        folder.mkdir(parents=True)
    (world.data.runs / "shop" / "run-1.json").write_text("{}")
    deletion, created = world.requests.delete_use_case("shop", "del-shop", "admin")
    assert created
    with pytest.raises(NotFound):
        world.blueprints.latest("shop")
    with pytest.raises(FailedPrecondition):
        world.requests.blocks("shop")  # not created again while it is being deleted
    assert world.requests.delete_use_case("shop", "another-request")[0].deletion_id == deletion.deletion_id
    world.close_segments()
    world.later = 10
    assert world.job.run_once() == 1
    done = world.store.get(deletion.deletion_id)
    assert done.state == DeletionState.DONE
    assert done.removed["blueprint_versions"] == 1 and done.removed["models"] == 1
    assert done.removed["training_runs"] == 1 and done.removed["decision_records"] == 6
    assert done.removed["training_rows"] == 6 and done.removed["joined_decisions"] == 6
    assert not any(r["use_case"] == "shop" for r in world.logged(world.data.decisions.log, "decisions"))
    assert not any(r["use_case"] == "shop" for r in world.logged(world.data.labels.outcome_log, "feedback"))
    assert len(world.logged(world.data.decisions.log, "decisions")) == 6
    for folder in (world.data.models / "shop", world.data.runs / "shop", world.data.experiments / "shop",
                   world.data.labels.training / "shop"):
        assert not folder.exists()
    assert [p.name for p in world.data.blueprints.iterdir()] == ["other"]
    assert len(world.table.read("other")) == 6
    world.requests.blocks("shop")  # done: the name is free
    world.blueprints.apply(BLUEPRINT.format(name="shop"))
    assert world.blueprints.latest_version("shop") == 1
    with pytest.raises(NotFound):
        world.requests.delete_use_case("no_such_case")


def test_a_subject_must_name_the_blueprints_entities(world):
    with pytest.raises(InvalidArgument) as raised:
        world.requests.delete_subject("shop", {"account": "a1"})
    assert {v.field for v in raised.value.violations} == {"subject.user_id", "subject.account"}
    with pytest.raises(NotFound):
        world.requests.delete_subject("no_such_case", {"user_id": "u1"})


def test_a_use_case_created_again_is_never_served_from_what_was_cached_of_the_deleted_one(tmp_path):
    """Blueprint versions and model versions are numbered from 1 again: every process's caches
    must tell the new ones from the deleted ones."""
    import shutil

    from services.models.live import LiveModels
    from services.models.registry import ModelRegistry
    from tests.unit.test_model_registry import register, tiny_model

    blueprints = BlueprintStore(tmp_path / "blueprints")
    blueprints.apply(BLUEPRINT.format(name="uc"))
    assert blueprints.latest("uc").default_decision == "false"
    shutil.rmtree(blueprints.retire("uc", "del-1"))
    blueprints.apply(BLUEPRINT.format(name="uc").replace("default_decision: false", "default_decision: true"))
    assert blueprints.get("uc", 1).blueprint.default_decision == "true"

    registry = ModelRegistry(tmp_path / "models")
    models = LiveModels(registry, on_reload=lambda use_case, load, meta: meta.run_id)  # the run stands for the model
    register(registry, tiny_model(), "old-run")
    assert models.version("uc", "m000001") == "old-run"
    shutil.rmtree(tmp_path / "models" / "uc")
    register(registry, tiny_model(flip=True), "new-run")
    assert models.version("uc", "m000001") == "new-run"
