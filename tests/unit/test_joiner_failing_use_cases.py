"""The label joiner across use cases and with a deletion pending: a pass counts the labels it
wrote for every use case; every use case whose labels cannot be written, and every decision
that cannot be joined, is counted (on every pass) while the others are joined; a decision being
deleted is never ingested, and its label is answered only when its subject is not being deleted."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.blueprints.store import BlueprintStore
from services.decisions.log import DecisionStream
from services.decisions.record import DecisionRecord
from services.deletions.store import Deletion, DeletionKind, DeletionState, TombstoneSet, subject_digest
from services.labels.joiner import CONSUMER, LabelJoiner
from services.labels.outcomes import OutcomeStream
from services.labels.training_table import TrainingTable
from services.platform.data_dir import DataDir
from services.platform.errors import NotFound
from tests.unit.test_label_joiner import BLUEPRINT, T0, decide, make_joiner, world  # noqa: F401 - a fixture


class FailingFor(TrainingTable):
    """A training table that cannot take the rows of some use cases (their disk is full)."""

    def __init__(self, root, use_cases):
        super().__init__(root)
        self.failing = set(use_cases)

    def append(self, use_case, rows):
        if use_case in self.failing:
            raise OSError("no space left for this use case's part")
        super().append(use_case, rows)


def test_every_use_case_whose_labels_cannot_be_written_is_counted_on_every_pass(world, tmp_path):  # noqa: F811
    decisions, recorder, joiner, table, clock = world
    data = DataDir(tmp_path)
    joiner.close()
    for name in ("other", "third"):
        BlueprintStore(data.blueprints).apply(BLUEPRINT.replace("name: joins", f"name: {name}"))
        record = DecisionRecord(
            decision_id=f"{name}-1", use_case=name, action="true", score=0.5, model_version="", blueprint_version=1,
            propensity=0.9, is_exploration=False, decide_time=T0, subject={"user_id": "u1"}, features={}, context={})
        decisions.record_once(name, record.decision_id, lambda r=record: r)
    decide(decisions, "fine")
    failing = make_joiner(tmp_path, FailingFor(data.labels.training, {"other", "third"}), clock)
    try:
        clock.now = T0 + timedelta(hours=1)
        assert failing.run_once() == 1  # joins' label, while both others fail
        assert table.read("joins")["decision_id"].tolist() == ["fine"]
        assert (failing.skipped["other"], failing.skipped["third"]) == (1, 1)
        assert failing.run_once() == 0
        assert (failing.skipped["other"], failing.skipped["third"]) == (2, 2)  # tried again, counted again
    finally:
        failing.close()


def deleting(subject: dict[str, str]) -> TombstoneSet:
    return TombstoneSet([Deletion(deletion_id="del-1", seq=1, request_id="r1", kind=DeletionKind.SUBJECT,
                                  use_case="joins", subject=subject, subject_sha256=subject_digest(subject),
                                  state=DeletionState.PENDING, request_time=T0 + timedelta(hours=1),
                                  update_time=T0 + timedelta(hours=1))])


@pytest.mark.parametrize("being_deleted, answered", [({"user_id": "u2"}, True), ({"user_id": "u1"}, False)])
def test_a_label_is_answered_unless_its_own_subject_is_being_deleted(world, tmp_path, being_deleted, answered):  # noqa: F811
    decisions, recorder, _, table, clock = world
    decide(decisions, "d1")  # subject u1
    data = DataDir(tmp_path)
    joiner = LabelJoiner(BlueprintStore(data.blueprints), DecisionStream(data.decisions, CONSUMER),
                         OutcomeStream(data.labels, CONSUMER), data.labels.joiner, table, clock,
                         tombstones=lambda: deleting(being_deleted))
    try:
        if answered:
            assert joiner.label("joins", "d1").value == 0.0
        else:
            with pytest.raises(NotFound, match="'d1'"):
                joiner.label("joins", "d1")
    finally:
        joiner.close()


def decide_for(decisions, decision_id: str, user: str, use_case: str = "joins", blueprint_version: int = 1):
    record = DecisionRecord(
        decision_id=decision_id, use_case=use_case, action="true", score=0.5, model_version="",
        blueprint_version=blueprint_version, propensity=0.9, is_exploration=False, decide_time=T0,
        subject={"user_id": user}, features={}, context={})
    decisions.record_once(use_case, decision_id, lambda: record)


def test_decisions_being_deleted_are_never_ingested_and_the_ones_after_them_are(world, tmp_path):  # noqa: F811
    decisions, recorder, _, table, clock = world
    decide_for(decisions, "d1", "u1")
    decide_for(decisions, "d2", "u2")
    data = DataDir(tmp_path)
    joiner = LabelJoiner(BlueprintStore(data.blueprints), DecisionStream(data.decisions, CONSUMER),
                         OutcomeStream(data.labels, CONSUMER), data.labels.joiner, table, clock,
                         tombstones=lambda: deleting({"user_id": "u1"}))
    try:
        clock.now = T0 + timedelta(hours=1)
        assert joiner.run_once() == 1
        assert table.read("joins")["decision_id"].tolist() == ["d2"]
    finally:
        joiner.close()


def test_every_decision_that_cannot_be_joined_is_counted_and_the_ones_after_it_are_joined(world, tmp_path):  # noqa: F811
    decisions, recorder, joiner, table, clock = world
    BlueprintStore(DataDir(tmp_path).blueprints).apply(BLUEPRINT.replace("name: joins", "name: other"))
    for n in (1, 2):  # a blueprint version that does not exist
        decide_for(decisions, f"stray-{n}", "u1", use_case="other", blueprint_version=9)
    decide_for(decisions, "fine", "u1")
    clock.now = T0 + timedelta(hours=1)
    assert joiner.run_once() == 1
    assert table.read("joins")["decision_id"].tolist() == ["fine"]
    assert joiner.skipped["other"] == 2


def test_a_pass_counts_the_labels_it_wrote_for_every_use_case(world, tmp_path):  # noqa: F811
    decisions, recorder, joiner, table, clock = world
    BlueprintStore(DataDir(tmp_path).blueprints).apply(BLUEPRINT.replace("name: joins", "name: other"))
    decide_for(decisions, "j1", "u1")
    decide_for(decisions, "o1", "u1", use_case="other")
    decide_for(decisions, "o2", "u2", use_case="other")
    clock.now = T0 + timedelta(hours=1)
    assert joiner.run_once() == 3
    assert sorted(table.read("other")["decision_id"]) == ["o1", "o2"]
