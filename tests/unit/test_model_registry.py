from __future__ import annotations

import pytest
from catboost import CatBoostClassifier

from services.models.live import LiveModels
from services.models.registry import ModelKind, ModelRegistry, ModelStage
from services.platform.errors import FailedPrecondition, InvalidArgument, NotFound


def tiny_model(flip: bool = False) -> CatBoostClassifier:
    rows = [[float(i % 7), "a" if i % 2 else "b"] for i in range(60)]
    labels = [int((r[1] == "a") != flip) for r in rows]
    model = CatBoostClassifier(iterations=20, depth=2, verbose=False, allow_writing_files=False)
    return model.fit(rows, labels, cat_features=[1])


def register(registry: ModelRegistry, model: CatBoostClassifier, run_id: str):
    return registry.register(
        dict(use_case="uc", blueprint_version=1, run_id=run_id, create_time="2026-01-01T00:00:00+00:00",
             kind=ModelKind.CLASSIFIER, feature_columns=["x", "action"], categorical_columns=["action"],
             metrics={"auc": 0.9}), lambda path: model.save_model(str(path)))


def test_versions_promote_and_roll_back(tmp_path):
    registry = ModelRegistry(tmp_path)
    first = register(registry, tiny_model(), "r1")
    second = register(registry, tiny_model(flip=True), "r2")
    assert (first.version, second.version) == ("m000001", "m000002")
    assert [m.version for m in registry.list("uc")] == ["m000002", "m000001"]
    assert registry.live_version("uc") is None
    registry.promote("uc", first.version)
    registry.promote("uc", second.version)
    assert registry.stage("uc", "m000002") == ModelStage.LIVE and registry.stage("uc", "m000001") == ModelStage.RETIRED
    assert registry.rollback("uc").version == "m000001"
    assert registry.live_version("uc") == "m000001"
    with pytest.raises(FailedPrecondition):
        registry.rollback("uc")


def test_unknown_version_is_not_found(tmp_path):
    with pytest.raises(NotFound):
        ModelRegistry(tmp_path).promote("uc", "m000042")


@pytest.mark.parametrize("version", ["../../../etc", "m1", "m000001/../m000002", "m000001\n", ""])
def test_a_version_that_is_not_a_version_never_names_a_folder(tmp_path, version):
    registry = ModelRegistry(tmp_path / "models")
    with pytest.raises(InvalidArgument) as raised:
        registry.promote("uc", version)
    assert raised.value.violations[0].field == "model_version"
    with pytest.raises(InvalidArgument):
        registry.artifact("uc", version)


def test_retention_keeps_the_newest_and_every_version_rollback_can_reach(tmp_path):
    registry = ModelRegistry(tmp_path)
    versions = [register(registry, tiny_model(), f"r{i}").version for i in range(6)]
    registry.promote("uc", versions[0])
    registry.promote("uc", versions[2])
    assert registry.retention("uc", keep=2) == [versions[3], versions[1]]
    assert [m.version for m in registry.list("uc")] == [versions[5], versions[4], versions[2], versions[0]]
    assert registry.rollback("uc").version == versions[0]


def test_live_cache_switches_models_without_restart(tmp_path):
    registry = ModelRegistry(tmp_path)
    cache = LiveModels(registry)
    assert cache.get("uc") is None
    first = register(registry, tiny_model(), "r1")
    second = register(registry, tiny_model(flip=True), "r2")
    registry.promote("uc", first.version)
    model = cache.get("uc")
    assert model.version == first.version
    assert model.score([{"x": 1.0, "action": "a"}])[0] > 0.5
    registry.promote("uc", second.version)
    flipped = cache.get("uc")
    assert flipped.version == second.version
    assert flipped.score([{"x": 1.0, "action": "a"}])[0] < 0.5
    assert model.score([{"x": 1.0, "action": "a"}])[0] > 0.5  # the old object still works for calls in flight


def test_missing_and_unseen_values_score(tmp_path):
    registry = ModelRegistry(tmp_path)
    registry.promote("uc", register(registry, tiny_model(), "r1").version)
    scores = LiveModels(registry).get("uc").score([{"action": "never-seen"}, {"x": None, "action": None}])
    assert all(0.0 <= s <= 1.0 for s in scores)
