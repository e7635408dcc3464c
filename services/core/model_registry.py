"""The model registry: immutable model versions with their metrics and lineage, and a
per-use-case live pointer with a history for rollback.

Layout: ``<models>/<use_case>/<version>/{model.cbm, meta.json}`` and
``<models>/<use_case>/live.json`` = ``{"history": [...]}`` whose last item is live.
Decision processes watch live.json (``LiveModelCache``) and switch without a restart.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from services.core.errors import FailedPrecondition, NotFound
from services.core.files import write_file_durably
from services.core.records import FeatureScalar

LIVE, RETIRED, CANDIDATE = "live", "retired", "candidate"

log = logging.getLogger("looper.models")


@dataclass(frozen=True)
class ModelMeta:
    """What a model version is: its lineage, its inputs and its holdout metrics."""

    use_case: str
    version: str
    blueprint_version: int
    run_id: str
    create_time: str
    kind: str  # "classifier" or "regressor"
    feature_columns: list[str]
    categorical_columns: list[str]
    metrics: dict[str, float] = field(default_factory=dict)
    data_start_time: str = ""
    data_end_time: str = ""
    row_count: int = 0
    traceparent: str = ""


class ModelRegistry:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def register(self, meta_fields: dict, save_model) -> ModelMeta:
        """Allocates the next version, lets ``save_model(path)`` write the artifact, then
        writes meta.json last (a version without meta.json is incomplete and ignored)."""
        folder = self.root / meta_fields["use_case"]
        folder.mkdir(exist_ok=True)
        number = len(self._version_dirs(folder)) + 1
        while True:
            version = f"m{number:06d}"
            try:
                (folder / version).mkdir()
                break
            except FileExistsError:
                number += 1
        save_model(folder / version / "model.cbm")
        meta = ModelMeta(version=version, **meta_fields)
        write_file_durably(folder / version / "meta.json", json.dumps(asdict(meta), indent=1).encode())
        return meta

    def get(self, use_case: str, version: str) -> ModelMeta:
        path = self.root / use_case / version / "meta.json"
        try:
            return ModelMeta(**json.loads(path.read_text()))
        except FileNotFoundError:
            raise NotFound(f"use case {use_case!r} has no model version {version!r}") from None

    def list(self, use_case: str) -> list[ModelMeta]:
        """Complete model versions, newest first."""
        folder = self.root / use_case
        dirs = self._version_dirs(folder) if folder.exists() else []
        return [self.get(use_case, d.name) for d in reversed(dirs) if (d / "meta.json").exists()]

    def artifact(self, use_case: str, version: str) -> Path:
        return self.root / use_case / version / "model.cbm"

    def live_version(self, use_case: str) -> str | None:
        history = self._history(use_case)
        return history[-1] if history else None

    def stage(self, use_case: str, version: str) -> str:
        history = self._history(use_case)
        if history and history[-1] == version:
            return LIVE
        return RETIRED if version in history else CANDIDATE

    def promote(self, use_case: str, version: str) -> ModelMeta:
        meta = self.get(use_case, version)
        with self._locked(use_case):
            history = self._history(use_case)
            if not history or history[-1] != version:
                self._write_history(use_case, history + [version])
        return meta

    def rollback(self, use_case: str) -> ModelMeta:
        with self._locked(use_case):
            history = self._history(use_case)
            if len(history) < 2:
                raise FailedPrecondition(f"use case {use_case!r} has no earlier live model to roll back to")
            self._write_history(use_case, history[:-1])
        return self.get(use_case, history[-2])

    def live_pointer(self, use_case: str) -> Path:
        return self.root / use_case / "live.json"

    def _history(self, use_case: str) -> list[str]:
        try:
            return json.loads(self.live_pointer(use_case).read_text())["history"]
        except FileNotFoundError:
            return []

    def _write_history(self, use_case: str, history: list[str]) -> None:
        write_file_durably(self.live_pointer(use_case), json.dumps({"history": history}).encode())

    @contextmanager
    def _locked(self, use_case: str):
        (self.root / use_case).mkdir(exist_ok=True)
        with open(self.root / use_case / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    @staticmethod
    def _version_dirs(folder: Path) -> list[Path]:
        return sorted(d for d in folder.iterdir() if d.is_dir() and d.name.startswith("m"))


class ServingModel:
    """A loaded CatBoost model that scores feature dicts in its own column order."""

    def __init__(self, meta: ModelMeta, artifact: Path):
        from catboost import CatBoostClassifier, CatBoostRegressor

        self.meta = meta
        self.version = meta.version
        self._model = CatBoostClassifier() if meta.kind == "classifier" else CatBoostRegressor()
        self._model.load_model(str(artifact))
        self._categorical = set(meta.categorical_columns)

    def row(self, features: dict[str, FeatureScalar]) -> list:
        return [_categorical_value(features.get(c)) if c in self._categorical else _numeric_value(features.get(c))
                for c in self.meta.feature_columns]

    def score(self, rows: list[dict[str, FeatureScalar]]) -> list[float]:
        data = [self.row(r) for r in rows]
        if self.meta.kind == "classifier":
            return [float(p[1]) for p in self._model.predict(data, prediction_type="Probability",
                                                              thread_count=1)]
        return [float(v) for v in self._model.predict(data, thread_count=1)]


def _categorical_value(value: FeatureScalar) -> str:
    return "" if value is None else str(value)


def _numeric_value(value: FeatureScalar) -> float:
    if value is None or isinstance(value, str):
        return math.nan
    return float(value)


class LiveModelCache:
    """Each Decision process's view of the live models. It notices a new live.json by its
    mtime and swaps the model in one assignment, so requests in flight keep the model they
    started with and none fails during a rollout. A model that fails to load (a corrupt or
    missing artifact) never replaces the one serving: that one keeps serving, and with none
    the use case gets its default decision."""

    def __init__(self, registry: ModelRegistry, on_reload=None):
        self.registry = registry
        # on_reload(use_case, load, meta) must call load() and return its model; it wraps the
        # load (the Decision service traces it).
        self.on_reload = on_reload or (lambda use_case, load, meta: load())
        self._loaded: dict[str, tuple[tuple[int, int], ServingModel | None]] = {}
        self._lock = threading.Lock()
        self.load_failures = 0

    def get(self, use_case: str) -> ServingModel | None:
        try:
            stat = self.registry.live_pointer(use_case).stat()
        except FileNotFoundError:
            return None
        mtime = (stat.st_mtime_ns, stat.st_ino)  # every promote writes a new file
        cached = self._loaded.get(use_case)
        if cached and cached[0] == mtime:
            return cached[1]
        with self._lock:
            cached = self._loaded.get(use_case)
            if cached and cached[0] == mtime:
                return cached[1]
            model = self._load_live(use_case, serving=cached[1] if cached else None)
            self._loaded[use_case] = (mtime, model)
            return model

    def _load_live(self, use_case: str, serving: "ServingModel | None") -> "ServingModel | None":
        version = self.registry.live_version(use_case)
        if not version:
            return None
        try:
            meta = self.registry.get(use_case, version)
            artifact = self.registry.artifact(use_case, version)
            return self.on_reload(use_case, lambda: ServingModel(meta, artifact), meta)
        except Exception:  # noqa: BLE001 - a bad artifact must not fail decisions
            log.exception("model %s of %s failed to load; still serving %s", version, use_case,
                          serving.version if serving else "the default decision")
            self.load_failures += 1
            return serving

    def loaded(self) -> dict[str, "ServingModel"]:
        """The models this process serves now, by use case."""
        return {use_case: model for use_case, (_, model) in list(self._loaded.items()) if model}
