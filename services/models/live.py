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
from dataclasses import dataclass
from typing import Callable

from services.models.registry import ModelMeta, ModelRegistry
from services.models.runtime import ServingModel, open_model

log = logging.getLogger("looper.models")


@dataclass(frozen=True)
class _Loaded:
    revision: tuple[int, int]
    model: ServingModel | None
    failed_version: str = ""  # the live version that would not load, if any


class LiveModels:
    def __init__(self, registry: ModelRegistry,
                 on_reload: Callable[[str, Callable[[], ServingModel], ModelMeta], ServingModel] | None = None):
        self.registry = registry
        # on_reload(use_case, load, meta) must call load() and return its model; it wraps the
        # load (the Decision service traces it).
        self.on_reload = on_reload or (lambda use_case, load, meta: load())
        self._loaded: dict[str, _Loaded] = {}
        self._lock = threading.Lock()
        self.load_failures = 0

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
