"""Model reload with a corrupt or missing artifact: the model already serving keeps
serving; with none, decisions get the default; a caller never sees an error."""

from __future__ import annotations

import pytest

from services.blueprints.store import BlueprintStore
from services.decision.decider import DecideCommand, Decider
from services.decisions.log import DecisionLog
from services.decisions.record import DefaultReason
from services.models.live import LiveModels
from services.models.registry import ModelRegistry
from services.platform.data_dir import DataDir
from tests.unit.test_model_registry import register, tiny_model

BLUEPRINT = """
name: uc
decision_type: binary
entities: [user_id]
default_decision: false
features: {context: {x: double}}
label: {outcome: clicked, window: 1h}
"""


def corrupt(registry: ModelRegistry, version: str) -> None:
    registry.artifact("uc", version).write_bytes(b"not a catboost model")


def test_a_corrupt_new_model_never_replaces_the_serving_one(tmp_path):
    registry = ModelRegistry(tmp_path)
    cache = LiveModels(registry)
    good = register(registry, tiny_model(), "r1")
    registry.promote("uc", good.version)
    assert cache.get("uc").version == good.version
    bad = register(registry, tiny_model(flip=True), "r2")
    corrupt(registry, bad.version)
    registry.promote("uc", bad.version)
    assert cache.get("uc").version == good.version
    assert cache.load_failures == 1
    assert cache.get("uc").version == good.version and cache.load_failures == 1  # not retried on every call


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_with_no_loadable_model_the_decision_is_the_default(tmp_path, damage):
    registry = ModelRegistry(tmp_path / "models")
    meta = register(registry, tiny_model(), "r1")
    if damage == "corrupt":
        corrupt(registry, meta.version)
    else:
        registry.artifact("uc", meta.version).unlink()
    registry.promote("uc", meta.version)
    blueprints = BlueprintStore(tmp_path / "blueprints")
    blueprints.apply(BLUEPRINT)
    log = DecisionLog(DataDir(tmp_path).ensure().decisions)
    try:
        cache = LiveModels(registry)
        record, _ = Decider(blueprints, log, models=cache).decide(
            DecideCommand("uc", "d1", {"user_id": "u"}, {"x": 1.0}))
        assert record.default_reason == DefaultReason.MODEL_UNAVAILABLE  # flagged, not an error
        assert record.model_version == "" and record.action == "false"
        assert cache.load_failures == 1
    finally:
        log.close()
