"""Each Decision process's view of the live models: it asks the registry whether the live
version changed (a cheap token, checked on every decision), loads the new version and swaps
it in one assignment, so requests in flight keep the model they started with and none fails
during a rollout. A model that fails to load (a corrupt or missing artifact) never replaces
the one serving: that one keeps serving; with none, the use case gets its default decision,
flagged as such, and the failed version is retried when the live version changes again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

from services.models.registry import ModelMeta, ModelRegistry, ModelStage
from services.models.runtime import ServingModel, open_model

log = logging.getLogger("looper.models")


@dataclass(frozen=True)
class _Loaded:
    revision: tuple[int, int]
    model: ServingModel | None
    failed_version: str = ""  # the live version that would not load, if any


MAX_OTHER_VERSIONS = 8  # versions besides the live ones a process keeps loaded (arms, shadows)
RETRY_FAILED_LOAD = 30.0  # seconds before a version that failed to load is tried again


class LiveModels:
    def __init__(self, registry: ModelRegistry,
                 on_reload: Callable[[str, Callable[[], ServingModel], ModelMeta], ServingModel] | None = None):
        self.registry = registry
        # on_reload(use_case, load, meta) must call load() and return its model; it wraps the
        # load (the Decision service traces it).
        self.on_reload = on_reload or (lambda use_case, load, meta: load())
        self._loaded: dict[str, _Loaded] = {}
        # (use case, version, its registration's token) -> (when loaded, the model or None)
        self._versions: OrderedDict[tuple[str, str, tuple | None], tuple[float, ServingModel | None]] = OrderedDict()
        self._shadows: dict[str, tuple[tuple[int, int], str]] = {}  # use case -> (revision, version)
        self._lock = threading.Lock()
        self.load_failures = 0

    def version(self, use_case: str, version: str) -> ServingModel | None:
        """A registered version by name (an experiment arm's or a shadow's), loaded once and
        kept while in use; None when it does not load (tried again after a pause)."""
        key = (use_case, version, self.registry.version_token(use_case, version))
        with self._lock:
            cached = self._versions.get(key)
            if cached and (cached[1] is not None or time.monotonic() - cached[0] < RETRY_FAILED_LOAD):
                self._versions.move_to_end(key)
                return cached[1]
        model = self._load_version(use_case, version)
        with self._lock:
            self._versions[key] = (time.monotonic(), model)
            while len(self._versions) > MAX_OTHER_VERSIONS:
                self._versions.popitem(last=False)
        return model

    def shadow(self, use_case: str) -> tuple[str, ServingModel | None] | None:
        """The version in shadow, if any, with its model (None when it does not load)."""
        revision = self.registry.rollout_revision(use_case)
        if revision is None:
            return None
        cached = self._shadows.get(use_case)
        if cached is None or cached[0] != revision:
            rollout = self.registry.rollout(use_case)
            cached = (revision, rollout.version if rollout and rollout.stage == ModelStage.SHADOW else "")
            self._shadows[use_case] = cached
        return (cached[1], self.version(use_case, cached[1])) if cached[1] else None

    def _load_version(self, use_case: str, version: str) -> ServingModel | None:
        try:
            meta = self.registry.get(use_case, version)
            return self.on_reload(use_case, lambda: open_model(meta, self.registry.artifact(use_case, version)),
                                  meta)
        except Exception:  # noqa: BLE001 - a bad artifact must not fail decisions
            log.exception("model %s of %s failed to load", version, use_case)
            self.load_failures += 1
            return None

    def get(self, use_case: str) -> ServingModel | None:
        """The model serving the use case, or None (no model live, or none loadable)."""
        return self._current(use_case).model

    def load_failed(self, use_case: str) -> bool:
        """Whether the live version of the use case failed to load."""
        return bool(self._current(use_case).failed_version)

    def loaded(self) -> dict[str, ServingModel]:
        """The models this process serves now, by use case."""
        return {use_case: entry.model for use_case, entry in list(self._loaded.items()) if entry.model}

    def _current(self, use_case: str) -> _Loaded:
        revision = self.registry.live_revision(use_case)
        if revision is None:
            return _Loaded((0, 0), None)
        cached = self._loaded.get(use_case)
        if cached and cached.revision == revision:
            return cached
        with self._lock:
            cached = self._loaded.get(use_case)
            if cached and cached.revision == revision:
                return cached
            self._loaded[use_case] = self._load_live(use_case, revision, cached.model if cached else None)
            return self._loaded[use_case]

    def _load_live(self, use_case: str, revision: tuple[int, int], serving: ServingModel | None) -> _Loaded:
        version = self.registry.live_version(use_case)
        if not version:
            return _Loaded(revision, None)
        try:
            meta = self.registry.get(use_case, version)
            artifact = self.registry.artifact(use_case, version)
            return _Loaded(revision, self.on_reload(use_case, lambda: open_model(meta, artifact), meta))
        except Exception:  # noqa: BLE001 - a bad artifact must not fail decisions
            log.exception("model %s of %s failed to load; still serving %s", version, use_case,
                          serving.version if serving else "the default decision")
            self.load_failures += 1
            return _Loaded(revision, serving, failed_version=version)
