"""A Decision process's registered versions by name (experiment arms, shadows): each loaded
once and kept while in use (the least recently used dropped beyond MAX_OTHER_VERSIONS), one
that will not load retried only after RETRY_FAILED_LOAD seconds and counted as a load
failure; and the version in shadow, read from the registry only when the rollout changes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from services.models import live
from services.models.live import MAX_OTHER_VERSIONS, RETRY_FAILED_LOAD, LiveModels
from services.models.registry import ModelRegistry, ModelStage
from tests.unit.test_model_registry import register, tiny_model

SINCE = "2026-01-01T00:00:00+00:00"


@pytest.fixture(scope="module")
def model():
    return tiny_model()


class Clock:
    """Stands in for the monotonic clock of services.models.live (and of nothing else)."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture()
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(live, "time", SimpleNamespace(monotonic=fake))
    return fake


class Loads:
    """An on_reload hook that records which (use case, version) each load was for."""

    def __init__(self):
        self.calls = []

    def __call__(self, use_case, load, meta):
        self.calls.append((use_case, meta.version))
        return load()


def cache_with_versions(tmp_path, model, count):
    registry = ModelRegistry(tmp_path)
    versions = [register(registry, model, f"r{i}").version for i in range(count)]
    loads = Loads()
    return registry, LiveModels(registry, on_reload=loads), loads, versions


def corrupt(registry, version):
    registry.artifact("uc", version).write_bytes(b"not a catboost model")


def test_a_version_by_name_is_loaded_once_through_the_reload_hook(tmp_path, model, clock):
    registry, cache, loads, (v1,) = cache_with_versions(tmp_path, model, 1)
    first = cache.version("uc", v1)
    assert first is not None and first.version == v1
    assert first.score([{"x": 1.0, "action": "a"}])[0] > 0.5  # the registered model, trained on action "a" -> 1
    assert loads.calls == [("uc", v1)]
    clock.now += 3600  # a model that loaded is kept however long ago it loaded
    assert cache.version("uc", v1) is first
    assert loads.calls == [("uc", v1)] and cache.load_failures == 0


def test_a_version_that_will_not_load_is_none_and_retried_only_after_the_pause(tmp_path, model, clock):
    registry, cache, loads, (v1,) = cache_with_versions(tmp_path, model, 1)
    corrupt(registry, v1)
    assert cache.version("uc", v1) is None and cache.load_failures == 1
    clock.now += RETRY_FAILED_LOAD - 1
    assert cache.version("uc", v1) is None and cache.load_failures == 1  # not tried again yet
    clock.now += 1  # RETRY_FAILED_LOAD seconds after the failure
    assert cache.version("uc", v1) is None and cache.load_failures == 2
    assert loads.calls == [("uc", v1), ("uc", v1)]


def test_a_version_that_failed_to_load_loads_once_repaired_after_the_pause(tmp_path, model, clock):
    registry, cache, loads, (v1,) = cache_with_versions(tmp_path, model, 1)
    good = registry.artifact("uc", v1).read_bytes()
    corrupt(registry, v1)
    assert cache.version("uc", v1) is None
    registry.artifact("uc", v1).write_bytes(good)
    clock.now += RETRY_FAILED_LOAD
    assert cache.version("uc", v1).version == v1 and cache.load_failures == 1


def test_every_version_that_fails_to_load_counts_one_load_failure(tmp_path, model, clock):
    registry, cache, loads, (v1, v2) = cache_with_versions(tmp_path, model, 2)
    corrupt(registry, v1)
    registry.artifact("uc", v2).unlink()
    assert cache.version("uc", v1) is None and cache.load_failures == 1
    assert cache.version("uc", v2) is None and cache.load_failures == 2


def test_an_unknown_version_is_none_and_counts_a_load_failure(tmp_path, model, clock):
    registry, cache, loads, _ = cache_with_versions(tmp_path, model, 1)
    assert cache.version("uc", "m000099") is None and cache.load_failures == 1


def test_beyond_the_limit_the_least_recently_used_version_is_dropped(tmp_path, model, clock):
    registry, cache, loads, versions = cache_with_versions(tmp_path, model, MAX_OTHER_VERSIONS + 1)
    for version in versions[:MAX_OTHER_VERSIONS]:
        cache.version("uc", version)
    cache.version("uc", versions[0])  # used again: now the most recently used
    cache.version("uc", versions[-1])  # one too many: drops versions[1]
    assert len(loads.calls) == MAX_OTHER_VERSIONS + 1
    for version in [versions[0], *versions[2:]]:  # all kept: no load
        cache.version("uc", version)
    assert len(loads.calls) == MAX_OTHER_VERSIONS + 1
    cache.version("uc", versions[1])  # dropped: loaded again
    assert loads.calls[-1] == ("uc", versions[1]) and len(loads.calls) == MAX_OTHER_VERSIONS + 2


class CountingRegistry(ModelRegistry):
    def __init__(self, root):
        super().__init__(root)
        self.rollout_reads = 0

    def rollout(self, use_case):
        self.rollout_reads += 1
        return super().rollout(use_case)


def test_shadow_is_none_without_a_rollout(tmp_path, model):
    registry = ModelRegistry(tmp_path)
    register(registry, model, "r1")
    assert LiveModels(registry).shadow("uc") is None


def test_shadow_is_the_version_in_shadow_with_its_model(tmp_path, model):
    registry = ModelRegistry(tmp_path)
    live_version = register(registry, model, "r1").version
    shadowed = register(registry, model, "r2").version
    registry.promote("uc", live_version)
    registry.set_rollout("uc", shadowed, ModelStage.SHADOW, "offline win", SINCE)
    version, loaded = LiveModels(registry).shadow("uc")
    assert version == shadowed and loaded.version == shadowed


def test_shadow_of_a_version_that_will_not_load_names_it_without_a_model(tmp_path, model):
    registry = ModelRegistry(tmp_path)
    shadowed = register(registry, model, "r1").version
    corrupt(registry, shadowed)
    registry.set_rollout("uc", shadowed, ModelStage.SHADOW, "offline win", SINCE)
    cache = LiveModels(registry)
    assert cache.shadow("uc") == (shadowed, None) and cache.load_failures == 1


def test_a_version_in_canary_is_not_a_shadow(tmp_path, model):
    registry = ModelRegistry(tmp_path)
    version = register(registry, model, "r1").version
    registry.set_rollout("uc", version, ModelStage.CANARY, "shadow passed", SINCE)
    assert LiveModels(registry).shadow("uc") is None


def test_shadow_follows_the_rollout_and_reads_it_only_when_it_changes(tmp_path, model):
    registry = CountingRegistry(tmp_path)
    version = register(registry, model, "r1").version
    registry.set_rollout("uc", version, ModelStage.SHADOW, "offline win", SINCE)
    cache, reads = LiveModels(registry), registry.rollout_reads
    assert cache.shadow("uc")[0] == version
    assert cache.shadow("uc")[0] == version
    assert registry.rollout_reads == reads + 1  # the rollout's revision did not change
    registry.set_rollout("uc", version, ModelStage.CANARY, "shadow passed", SINCE)
    assert cache.shadow("uc") is None
    registry.roll_back_rollout("uc", version, "canary failed")
    assert cache.shadow("uc") is None
    other = register(registry, model, "r2").version
    registry.set_rollout("uc", other, ModelStage.SHADOW, "offline win", SINCE)
    assert cache.shadow("uc")[0] == other


def test_shadows_of_two_use_cases_are_kept_apart(tmp_path, model):
    registry = ModelRegistry(tmp_path)
    version = register(registry, model, "r1").version
    registry.set_rollout("uc", version, ModelStage.SHADOW, "offline win", SINCE)
    cache = LiveModels(registry)
    assert cache.shadow("uc")[0] == version
    assert cache.shadow("other") is None
    assert cache.shadow("uc")[0] == version
