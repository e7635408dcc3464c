"""The model registry: immutable model versions with their metrics and lineage, and each use
case's deployment (which version is live, with the history that rollback walks back).

Layout (inside the ``models`` folder the data directory gives): ``<use_case>/<version>/
{model.cbm, meta.json}``; ``<use_case>/live.json`` = ``{"history": [...]}`` whose last
item is live; ``<use_case>/rollout.json``, the version on its way to live (in shadow or
canary, see DeploymentSpec) if any; and ``<use_case>/stages.jsonl``, every stage change of
every version with its reason. A version with several labels keeps each other label's model
beside ``model.cbm`` (``model.<outcome>.cbm``); an uplift version (a meta-learner,
``meta.uplift``) keeps in those files each label's outcome model without the treatment (mu0),
and its other models beside them, named by their part: ``<part>.cbm`` and
``<part>.<outcome>.cbm`` (``mu1``; ``tau0``, ``tau1``), see ``label_file``. Versions are ``m``
and six digits; a version a caller sends is checked against
that before it names a folder, so it can never reach outside the registry.
"""

from __future__ import annotations

import enum
import json
import re
import shutil
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from services.models.encoding import ModelInput
from services.platform.errors import FailedPrecondition, InvalidArgument, NotFound
from services.platform.files import append_line_durably, change_token, exclusive_lock, write_file_durably

_VERSION = re.compile(r"m\d{6}")
_LIVE, _ROLLOUT = "live.json", "rollout.json"  # a use case's pointers to its live version and its rollout
_MODEL_FILE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)?\.cbm")


class ModelStage(enum.IntEnum):
    """Where a version is in its life; mirrors ``looper.v1.ModelStage``."""

    UNSPECIFIED = 0
    CANDIDATE = 1  # registered, not serving: never live, or rolled back from (rollback no longer returns to it)
    LIVE = 2
    RETIRED = 3  # was live; rollback can return to it
    SHADOW = 4  # scored on live traffic and logged, never acted on
    CANARY = 5  # serving an experiment arm against the live model
    ROLLED_BACK = 6  # stopped in shadow or canary: it lost, broke a guardrail or failed


@dataclass(frozen=True)
class StageChange:
    version: str
    stage: ModelStage
    reason: str
    change_time: str


@dataclass(frozen=True)
class Rollout:
    """A version on its way to live: in shadow or in canary since ``since``."""

    version: str
    stage: ModelStage
    since: str


class ModelKind(str, enum.Enum):
    CLASSIFIER = "classifier"  # predicts the probability that the label is positive
    REGRESSOR = "regressor"  # predicts the label's value


@dataclass(frozen=True)
class ModelMeta:
    """What a model version is: its lineage, its inputs and its holdout metrics."""

    use_case: str
    version: str
    blueprint_version: int
    run_id: str
    create_time: str
    kind: ModelKind
    feature_columns: list[str]
    categorical_columns: list[str]
    label: str = ""  # the outcome whose label the model predicts (the primary one)
    other_labels: dict[str, ModelKind] = field(default_factory=dict)  # more outcomes, each its own artifact
    metrics: dict[str, float] = field(default_factory=dict)
    data_start_time: str = ""
    data_end_time: str = ""
    row_count: int = 0
    traceparent: str = ""
    # An uplift version's meta-learner: {"learner": "t" | "x", "treated_share": P(T=1) in its training rows}.
    uplift: dict = field(default_factory=dict)

    @property
    def input(self) -> ModelInput:
        return ModelInput.from_meta(asdict(self))

    @property
    def labels(self) -> dict[str, ModelKind]:
        """Every outcome the version predicts, the primary first, with what it predicts."""
        return {self.label: self.kind, **self.other_labels}

    def predicts(self, outcomes, primary: str) -> bool:
        """Whether the version predicts every one of ``outcomes`` (a version that predates
        naming its label predicts ``primary``, the blueprint's primary outcome)."""
        return set(outcomes) <= {outcome or primary for outcome in self.labels}

    def to_json(self) -> bytes:
        return json.dumps({**asdict(self), "kind": self.kind.value,
                           "other_labels": {o: k.value for o, k in self.other_labels.items()}}, indent=1).encode()

    @classmethod
    def from_json(cls, text: str) -> "ModelMeta":
        data = json.loads(text)
        return cls(**{**data, "kind": ModelKind(data["kind"]),
                      "other_labels": {o: ModelKind(k) for o, k in data.get("other_labels", {}).items()}})


def artifact_name(meta: ModelMeta, outcome: str) -> str:
    """The file of one label's model: ``model.cbm`` for the primary, ``model.<outcome>.cbm``."""
    return label_file(meta.label, outcome)


def label_file(primary: str, outcome: str, part: str = "") -> str:
    """The file of one label's model, or of one part of its meta-learner when ``part``
    names one other than mu0: ``<model or part>[.<outcome>].cbm``, without the outcome for
    the primary label (``model.cbm``, ``model.opened.cbm``, ``mu1.cbm``, ``tau0.opened.cbm``)."""
    return ".".join([part if part and part != "mu0" else "model"] + ([outcome] if outcome != primary else [])) + ".cbm"


def check_version(version: str, field_name: str = "model_version") -> str:
    if not _VERSION.fullmatch(version):
        raise InvalidArgument.single(field_name, "must be a model version like m000001")
    return version


class ModelRegistry:
    def __init__(self, root: Path):
        self.root = Path(root)
        self._folder = str(self.root)  # for change_token on the hot path
        self.root.mkdir(parents=True, exist_ok=True)

    def register(self, meta_fields: dict, save_model: Callable[[Path], None],
                 other_artifacts: dict[str, Path] | None = None, extra_files: dict[str, Path] | None = None
                 ) -> ModelMeta:
        """Allocates the next version, lets ``save_model(path)`` write the primary label's
        artifact, copies the other labels' (``other_artifacts``: outcome -> file) and any
        other model files (``extra_files``: file name -> file, e.g. a meta-learner's parts),
        then writes meta.json last (a version without meta.json is incomplete and ignored)."""
        bad = [name for name in extra_files or {} if not _MODEL_FILE.fullmatch(name) or name == "model.cbm"]
        if bad:
            raise ValueError(f"model files must be named <name>[.<outcome>].cbm, other than model.cbm; got {bad}")
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
        for outcome, source in (other_artifacts or {}).items():
            shutil.copyfile(source, folder / version / artifact_name(meta, outcome))
        for name, source in (extra_files or {}).items():
            shutil.copyfile(source, folder / version / name)
        write_file_durably(folder / version / "meta.json", meta.to_json())
        return meta

    def get(self, use_case: str, version: str) -> ModelMeta:
        path = self.root / use_case / check_version(version) / "meta.json"
        try:
            return ModelMeta.from_json(path.read_text())
        except FileNotFoundError:
            raise NotFound(f"use case {use_case!r} has no model version {version!r}") from None

    def version_token(self, use_case: str, version: str) -> tuple[int, int] | None:
        """A token that differs between two registrations under one version name (a use case
        deleted and created again numbers its versions from m000001); None when there is none."""
        try:
            check_version(version)
        except InvalidArgument:
            return None
        return change_token(f"{self._folder}/{use_case}/{version}/meta.json")

    def list(self, use_case: str) -> list[ModelMeta]:
        """Complete model versions, newest first."""
        return [self.get(use_case, version) for version in self.versions(use_case)]

    def versions(self, use_case: str) -> list[str]:
        """The complete model versions, newest first (a version without meta.json is still
        being registered, or was cut short)."""
        folder = self.root / use_case
        dirs = self._version_dirs(folder) if folder.exists() else []
        return [d.name for d in reversed(dirs) if (d / "meta.json").exists()]

    def artifact(self, use_case: str, version: str, outcome: str = "") -> Path:
        """A label's model file (the primary label's by default)."""
        folder = self.root / use_case / check_version(version)
        if not outcome:
            return folder / "model.cbm"
        return folder / artifact_name(self.get(use_case, version), outcome)

    # --- deployment ----------------------------------------------------------------------
    def live_version(self, use_case: str) -> str | None:
        history = self._history(use_case)
        return history[-1] if history else None

    def live_revision(self, use_case: str) -> tuple[int, int] | None:
        """A token that changes whenever the live version of the use case changes (None
        before the first promotion); cheap enough to check on every decision."""
        return change_token(f"{self._folder}/{use_case}/{_LIVE}")  # every promotion writes a new file

    def stage(self, use_case: str, version: str) -> ModelStage:
        return _stage_of(version, self._history(use_case), self.rollout(use_case),
                         self.stage_history(use_case, version))

    def stages(self, use_case: str, versions: list[str]) -> list[tuple[ModelStage, list[StageChange]]]:
        """Each version's stage with its stage history, read under the use case's lock: a
        promotion moves the live pointer, then appends its record, and a reader between the two
        would see a live model whose history ends in canary. The pointers and the stage file
        are read once for all the versions."""
        if not versions:  # no lock either: taking it would create the folder of a use case without models
            return []
        with self._locked(use_case):
            history, rollout, changes = self._history(use_case), self.rollout(use_case), self.stage_history(use_case)
        by_version: dict[str, list[StageChange]] = {version: [] for version in versions}
        for change in changes:
            if change.version in by_version:
                by_version[change.version].append(change)
        return [(_stage_of(version, history, rollout, by_version[version]), by_version[version])
                for version in versions]

    def promote(self, use_case: str, version: str, reason: str = "promoted") -> ModelMeta:
        """Makes ``version`` live (ending its rollout, if it was on one)."""
        meta = self.get(use_case, version)
        with self._locked(use_case):
            history = self._history(use_case)
            if not history or history[-1] != version:
                self._write_history(use_case, history + [version])
                self._record(use_case, version, ModelStage.LIVE, reason)
            rollout = self.rollout(use_case)
            if rollout and rollout.version == version:
                self._rollout_pointer(use_case).unlink()
        return meta

    def rollback(self, use_case: str, reason: str = "rolled back") -> ModelMeta:
        with self._locked(use_case):
            history = self._history(use_case)
            if len(history) < 2:
                raise FailedPrecondition(f"use case {use_case!r} has no earlier live model to roll back to")
            self._write_history(use_case, history[:-1])
            self._record(use_case, history[-1], ModelStage.RETIRED, reason)
            self._record(use_case, history[-2], ModelStage.LIVE, reason)
        return self.get(use_case, history[-2])

    # --- rollouts: shadow, then canary, then live or rolled back ----------------------------
    def rollout(self, use_case: str) -> Rollout | None:
        try:
            data = json.loads(self._rollout_pointer(use_case).read_text())
        except FileNotFoundError:
            return None
        return Rollout(data["version"], ModelStage(data["stage"]), data["since"])

    def rollout_revision(self, use_case: str) -> tuple[int, int] | None:
        """Like ``live_revision``, for the rollout (None when there is none)."""
        return change_token(f"{self._folder}/{use_case}/{_ROLLOUT}")

    def set_rollout(self, use_case: str, version: str, stage: ModelStage, reason: str, since: str) -> Rollout:
        """Puts ``version`` in shadow or canary (replacing no other rollout: one at a time)."""
        if stage not in (ModelStage.SHADOW, ModelStage.CANARY):
            raise ValueError(f"a rollout is in shadow or canary, not {stage.name}")
        self.get(use_case, version)
        with self._locked(use_case):
            current = self.rollout(use_case)
            if current and current.version != version:
                raise FailedPrecondition(f"use case {use_case!r} is already rolling out {current.version}")
            rollout = Rollout(version, stage, since)
            write_file_durably(self._rollout_pointer(use_case),
                               json.dumps({"version": version, "stage": int(stage), "since": since}).encode())
            self._record(use_case, version, stage, reason)
        return rollout

    def roll_back_rollout(self, use_case: str, version: str, reason: str) -> None:
        """Stops the rollout of ``version``: it never serves again unless promoted by hand."""
        with self._locked(use_case):
            current = self.rollout(use_case)
            if current is None or current.version != version:
                raise FailedPrecondition(f"use case {use_case!r} is not rolling out {version}")
            self._rollout_pointer(use_case).unlink()
            self._record(use_case, version, ModelStage.ROLLED_BACK, reason)

    def record_stage(self, use_case: str, version: str, stage: ModelStage, reason: str) -> None:
        """Records a stage event that changes no pointer (a candidate that lost offline)."""
        with self._locked(use_case):
            self._record(use_case, version, stage, reason)

    def stage_history(self, use_case: str, version: str | None = None) -> list[StageChange]:
        """Stage changes, oldest first; of one version, or of all."""
        try:
            lines = (self.root / use_case / "stages.jsonl").read_text().splitlines()
        except FileNotFoundError:
            return []
        changes = []
        for line in lines:
            data = json.loads(line)
            if version is None or data["version"] == version:
                changes.append(StageChange(data["version"], ModelStage(data["stage"]), data["reason"],
                                           data["change_time"]))
        return changes

    def _record(self, use_case: str, version: str, stage: ModelStage, reason: str) -> None:
        line = {"version": version, "stage": int(stage), "reason": reason[:1000],
                "change_time": datetime.now(timezone.utc).isoformat()}
        append_line_durably(self.root / use_case / "stages.jsonl", json.dumps(line))

    def retention(self, use_case: str, keep: int) -> list[str]:
        """Deletes all but the newest ``keep`` versions, never one that is live or that a
        rollback can return to; returns the deleted versions."""
        rollout = self.rollout(use_case)
        protected = set(self._history(use_case)) | ({rollout.version} if rollout else set())
        deleted = []
        for meta in self.list(use_case)[keep:]:
            if meta.version not in protected:
                _remove_tree(self.root / use_case / meta.version)
                deleted.append(meta.version)
        return deleted

    def use_cases(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    def _rollout_pointer(self, use_case: str) -> Path:
        return self.root / use_case / _ROLLOUT

    def _live_pointer(self, use_case: str) -> Path:
        return self.root / use_case / _LIVE

    def _history(self, use_case: str) -> list[str]:
        try:
            return json.loads(self._live_pointer(use_case).read_text())["history"]
        except FileNotFoundError:
            return []

    def _write_history(self, use_case: str, history: list[str]) -> None:
        write_file_durably(self._live_pointer(use_case), json.dumps({"history": history}).encode())

    def _locked(self, use_case: str):
        return exclusive_lock(self.root / use_case / ".lock")

    @staticmethod
    def _version_dirs(folder: Path) -> list[Path]:
        return sorted(d for d in folder.iterdir() if d.is_dir() and _VERSION.fullmatch(d.name))


def _stage_of(version: str, history: list[str], rollout: Rollout | None, changes: list[StageChange]) -> ModelStage:
    """A version's stage from the live history, the rollout and its own stage changes."""
    if history and history[-1] == version:
        return ModelStage.LIVE
    if rollout and rollout.version == version:
        return rollout.stage
    if version in history:
        return ModelStage.RETIRED
    return ModelStage.ROLLED_BACK if changes and changes[-1].stage == ModelStage.ROLLED_BACK \
        else ModelStage.CANDIDATE


def _remove_tree(folder: Path) -> None:
    (folder / "meta.json").unlink(missing_ok=True)  # first: an incomplete version is ignored
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
