"""Deployment as the registry and each Decision process see it: versions numbered past gaps,
stages across several promotions and rollbacks, what a caller reads when something is
missing, and which model a process serves per use case as the live version changes."""

from __future__ import annotations

import pytest

from services.models.live import LiveModels
from services.models.registry import ModelRegistry, ModelStage
from services.platform.errors import FailedPrecondition, InvalidArgument, NotFound
from tests.unit.test_model_registry import register, tiny_model


def test_a_new_version_takes_a_number_no_other_version_has(tmp_path):
    registry = ModelRegistry(tmp_path / "deep" / "models")  # its folder is created with its parents
    model = tiny_model()
    register(registry, model, "r1")
    (registry.root / "uc" / "m000003").mkdir()  # a version another process is writing
    (registry.root / "uc" / "scratch").mkdir()  # not a version
    assert register(registry, model, "r2").version == "m000004"  # after the highest, past the one being written
    assert register(registry, model, "r3").version == "m000005"
    assert [m.version for m in registry.list("uc")] == ["m000005", "m000004", "m000001"]  # complete ones only
    assert registry.list("nothing") == [] and registry.use_cases() == ["uc"]


def test_stages_follow_promotions_and_rollbacks(tmp_path):
    registry = ModelRegistry(tmp_path)
    versions = [register(registry, tiny_model(), f"r{i}").version for i in range(4)]
    for v in versions[:3]:
        registry.promote("uc", v)
    registry.promote("uc", versions[2])  # promoting the live version again changes nothing
    assert [registry.stage("uc", v) for v in versions] == [
        ModelStage.RETIRED, ModelStage.RETIRED, ModelStage.LIVE, ModelStage.CANDIDATE]
    assert registry.rollback("uc").version == versions[1]
    assert [registry.stage("uc", v) for v in versions] == [
        ModelStage.RETIRED, ModelStage.LIVE, ModelStage.CANDIDATE, ModelStage.CANDIDATE]
    assert registry.rollback("uc").version == versions[0]
    with pytest.raises(FailedPrecondition, match="use case 'uc' has no earlier live model to roll back to"):
        registry.rollback("uc")
    assert registry.stage("other", versions[0]) == ModelStage.CANDIDATE


def test_a_missing_version_is_named_and_a_malformed_one_refused(tmp_path):
    registry = ModelRegistry(tmp_path)
    with pytest.raises(NotFound, match="use case 'uc' has no model version 'm000009'"):
        registry.get("uc", "m000009")
    with pytest.raises(InvalidArgument) as refused:
        registry.get("uc", "v1")
    assert [(v.field, v.reason) for v in refused.value.violations] == [
        ("model_version", "must be a model version like m000001")]


def test_meta_json_is_readable_by_people(tmp_path):
    registry = ModelRegistry(tmp_path)
    meta = register(registry, tiny_model(), "r1")
    text = (registry.root / "uc" / meta.version / "meta.json").read_text()
    assert text.startswith('{\n "use_case": "uc",\n "version": "m000001",')  # one key a line, indented by one


def test_retention_deletes_a_version_completely(tmp_path):
    registry = ModelRegistry(tmp_path)
    versions = [register(registry, tiny_model(), f"r{i}").version for i in range(3)]
    assert registry.retention("uc", keep=1) == [versions[1], versions[0]]
    assert sorted(p.name for p in (registry.root / "uc").iterdir()) == [versions[2]]


def test_a_process_serves_each_use_case_its_own_live_model(tmp_path):
    registry = ModelRegistry(tmp_path)
    model = tiny_model()
    first = register(registry, model, "r1")
    other = registry.register({**{k: v for k, v in registry.get("uc", first.version).__dict__.items()
                                  if k not in ("version", "use_case")}, "use_case": "other"},
                              lambda path: model.save_model(str(path)))
    reloads = []
    live = LiveModels(registry, on_reload=lambda use_case, load, meta: reloads.append((use_case, meta.version))
                      or load())
    assert live.get("uc") is None and not live.load_failed("uc") and live.loaded() == {}
    registry.promote("uc", first.version)
    registry.promote("other", other.version)
    assert live.get("uc").meta.use_case == "uc" and live.get("other").meta.use_case == "other"
    assert sorted(live.loaded()) == ["other", "uc"]
    assert sorted(reloads) == [("other", "m000001"), ("uc", "m000001")]  # once each
    second = register(registry, model, "r2")
    registry.promote("uc", second.version)
    assert live.get("uc").version == "m000002" and live.get("other").version == "m000001"
    registry.rollback("uc")
    assert live.get("uc").version == "m000001"


def test_a_failed_load_is_flagged_and_retried_when_the_live_version_changes(tmp_path):
    registry = ModelRegistry(tmp_path)
    model = tiny_model()
    bad = register(registry, model, "r1")
    registry.artifact("uc", bad.version).write_bytes(b"not a model")
    registry.promote("uc", bad.version)
    live = LiveModels(registry)
    assert live.get("uc") is None and live.load_failed("uc") and live.load_failures == 1
    assert live.get("uc") is None and live.load_failures == 1  # not retried on every call
    worse = register(registry, model, "r2")
    registry.artifact("uc", worse.version).unlink()
    registry.promote("uc", worse.version)
    assert live.get("uc") is None and live.load_failures == 2
    good = register(registry, model, "r3")
    registry.promote("uc", good.version)
    assert live.get("uc").version == good.version and not live.load_failed("uc")
    assert live.loaded() == {"uc": live.get("uc")}
