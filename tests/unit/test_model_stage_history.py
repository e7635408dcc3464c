"""What the registry records and answers about a version's stage: a rollback retires the
live version and makes the one before it live again, each with the reason given; a rollout
is one version at a time, in shadow or canary only, and a refusal names what stands in the
way; a version rolled back stays so while others are untouched; and each label's model file
of a version of several labels."""

from __future__ import annotations

from datetime import datetime

import pytest

from services.models.registry import ModelKind, ModelRegistry, ModelStage, Rollout
from services.platform.errors import FailedPrecondition
from tests.unit.test_model_registry import register, tiny_model

SINCE = "2026-01-01T00:00:00+00:00"


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture()
def registry(tmp_path):
    return ModelRegistry(tmp_path)


def last_change(registry, version):
    change = registry.stage_history("uc", version)[-1]
    return change.version, change.stage, change.reason


def test_a_rollback_retires_the_live_version_and_makes_the_one_before_live(registry, model):
    v1, v2, v3 = (register(registry, model, f"r{i}").version for i in range(3))
    for version in (v1, v2, v3):
        registry.promote("uc", version)
    assert registry.rollback("uc", reason="bad clicks").version == v2
    assert last_change(registry, v3) == (v3, ModelStage.RETIRED, "bad clicks")
    assert last_change(registry, v2) == (v2, ModelStage.LIVE, "bad clicks")
    assert last_change(registry, v1) == (v1, ModelStage.LIVE, "promoted")  # untouched
    assert registry.live_version("uc") == v2
    assert [registry.stage("uc", v) for v in (v1, v2)] == [ModelStage.RETIRED, ModelStage.LIVE]


def test_each_stage_change_records_its_version_and_when(registry, model):
    version = register(registry, model, "r1").version
    before = datetime.now().astimezone()
    registry.promote("uc", version, reason="first model")
    (change,) = registry.stage_history("uc")
    assert (change.version, change.stage, change.reason) == (version, ModelStage.LIVE, "first model")
    assert before <= datetime.fromisoformat(change.change_time) <= datetime.now().astimezone()


def test_set_rollout_returns_the_rollout_it_records(registry, model):
    version = register(registry, model, "r1").version
    rollout = registry.set_rollout("uc", version, ModelStage.SHADOW, "offline win", SINCE)
    assert rollout == Rollout(version, ModelStage.SHADOW, SINCE) == registry.rollout("uc")
    assert last_change(registry, version) == (version, ModelStage.SHADOW, "offline win")


def test_a_rollout_is_in_shadow_or_canary_only(registry, model):
    version = register(registry, model, "r1").version
    with pytest.raises(ValueError, match="a rollout is in shadow or canary, not LIVE"):
        registry.set_rollout("uc", version, ModelStage.LIVE, "skip the rollout", SINCE)
    assert registry.rollout("uc") is None


def test_a_second_rollout_is_refused_naming_the_version_rolling_out(registry, model):
    first, second = (register(registry, model, f"r{i}").version for i in range(2))
    registry.set_rollout("uc", first, ModelStage.SHADOW, "offline win", SINCE)
    with pytest.raises(FailedPrecondition, match=f"'uc' is already rolling out {first}"):
        registry.set_rollout("uc", second, ModelStage.SHADOW, "offline win", SINCE)
    assert registry.rollout("uc").version == first


def test_stopping_a_rollout_that_is_not_running_is_refused_naming_the_version(registry, model):
    version = register(registry, model, "r1").version
    with pytest.raises(FailedPrecondition, match=f"'uc' is not rolling out {version}"):
        registry.roll_back_rollout("uc", version, "guardrail")
    assert registry.stage_history("uc", version) == []


def test_a_rolled_back_version_stays_rolled_back_and_others_stay_candidates(registry, model):
    stopped, untouched = (register(registry, model, f"r{i}").version for i in range(2))
    registry.set_rollout("uc", stopped, ModelStage.CANARY, "shadow passed", SINCE)
    registry.roll_back_rollout("uc", stopped, "guardrail: unsubscribes")
    assert registry.stage("uc", stopped) == ModelStage.ROLLED_BACK
    assert registry.stage("uc", untouched) == ModelStage.CANDIDATE


def test_record_stage_records_the_version_it_names(registry, model):
    version = register(registry, model, "r1").version
    registry.record_stage("uc", version, ModelStage.CANDIDATE, "lost offline")
    assert last_change(registry, version) == (version, ModelStage.CANDIDATE, "lost offline")


def test_each_label_of_a_version_has_its_own_model_file(registry, model, tmp_path):
    other = tmp_path / "opened.cbm"
    other.write_bytes(b"the opened model")
    meta = registry.register(
        dict(use_case="uc", blueprint_version=1, run_id="r1", create_time=SINCE, kind=ModelKind.CLASSIFIER,
             feature_columns=["x", "action"], categorical_columns=["action"], label="clicked",
             other_labels={"opened": ModelKind.CLASSIFIER}),
        lambda path: model.save_model(str(path)), other_artifacts={"opened": other})
    assert registry.artifact("uc", meta.version, "opened").read_bytes() == b"the opened model"
    assert registry.artifact("uc", meta.version, "opened").name == "model.opened.cbm"
    assert registry.artifact("uc", meta.version, "clicked") == registry.artifact("uc", meta.version)


def test_a_rollback_without_a_reason_records_that_it_was_rolled_back(registry, model):
    v1, v2 = (register(registry, model, f"r{i}").version for i in range(2))
    registry.promote("uc", v1)
    registry.promote("uc", v2)
    registry.rollback("uc")
    assert last_change(registry, v2) == (v2, ModelStage.RETIRED, "rolled back")
    assert last_change(registry, v1) == (v1, ModelStage.LIVE, "rolled back")
