"""Where each data product lives inside a Looper data directory (the embedded default).

Every service of a deployment points at the same data directory; this object is the only
place that spells out its layout. Each data product's package receives its own paths from
here and is the only code that opens the files under them:

- ``blueprints``: the versioned blueprints of every use case;
- ``decisions``: the decision log (one segment per Decision process) and its shared index;
- ``labels``: the outcome log, its index, the label joiner's state and the training table;
- ``models``: model versions and each use case's deployment;
- ``runs``: training runs;
- ``features``: the Feast repo, Looper-maintained feature views, and the product's own tables
  that the embedded examples publish;
- ``access``: the credentials, the audit log of administrative actions, and the local
  development token;
- ``deletions``: requests to delete a use case or a subject's data, their progress, and the
  tombstones that hide what they delete until it is gone.

The directory records its format version; ``services.migration`` upgrades an older one
before any service opens it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from services.platform.files import write_file_durably

FORMAT_VERSION = 2
FORMAT_FILE = "looper-format.json"


@dataclass(frozen=True)
class DecisionPaths:
    log: Path  # durable segments, one per Decision process
    index: Path  # SQLite: decision id -> where its record is (idempotency, lookup)
    consumers: Path  # each reader's progress through the log (retention waits for them)


@dataclass(frozen=True)
class LabelPaths:
    outcome_log: Path  # durable outcome-event segments, one per Feedback process
    outcome_index: Path  # SQLite: event ids already stored (idempotency)
    outcome_consumers: Path
    joiner: Path  # the label joiner's working state
    training: Path  # the training table: parquet parts per use case


@dataclass(frozen=True)
class FeaturePaths:
    repo: Path  # the Feast repo (feature_store.yaml, registry, SQLite online store)
    views: Path  # parquet parts of the views Looper maintains (personalization)
    product_tables: Path  # the product's own offline tables, for the embedded examples


@dataclass(frozen=True)
class AccessPaths:
    credentials: Path  # SQLite: who may call, with which roles (token hashes only)
    audit: Path  # one JSON line per administrative action: who, what, when, which version
    local_token: Path  # the local development token (a cluster administrator's), owner-readable


@dataclass(frozen=True)
class DataDir:
    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).resolve())

    @property
    def blueprints(self) -> Path:
        return self.root / "blueprints"

    @property
    def decisions(self) -> DecisionPaths:
        return DecisionPaths(log=self.root / "logs" / "decisions", index=self.root / "state" / "decision_index.sqlite",
                             consumers=self.root / "state" / "decision_consumers")

    @property
    def labels(self) -> LabelPaths:
        return LabelPaths(outcome_log=self.root / "logs" / "feedback",
                          outcome_index=self.root / "state" / "outcome_index.sqlite",
                          outcome_consumers=self.root / "state" / "outcome_consumers",
                          joiner=self.root / "state" / "label_joiner.sqlite",
                          training=self.root / "offline" / "training")

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def experiments(self) -> Path:
        return self.root / "experiments"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def features(self) -> FeaturePaths:
        return FeaturePaths(repo=self.root / "feature_repo", views=self.root / "offline" / "features",
                            product_tables=self.root / "offline")

    @property
    def access(self) -> AccessPaths:
        return AccessPaths(credentials=self.root / "state" / "credentials.sqlite",
                           audit=self.root / "state" / "audit.log", local_token=self.root / "looper-token")

    @property
    def deletions(self) -> Path:
        """SQLite: deletion requests, their progress and tombstones (services.deletions)."""
        return self.root / "state" / "deletions.sqlite"

    @property
    def locks(self) -> Path:
        """Lock files that let one process of a deployment at a time run a job."""
        return self.root / "state" / "locks"

    def ensure(self) -> "DataDir":
        for path in (self.blueprints, self.decisions.log, self.decisions.consumers, self.labels.outcome_log,
                     self.labels.outcome_consumers, self.labels.training, self.models, self.experiments, self.runs,
                     self.features.views, self.locks):
            path.mkdir(parents=True, exist_ok=True)
        return self

    # --- format version -------------------------------------------------------------------
    def format_version(self) -> int | None:
        """The directory's format: None when it is new (nothing written yet), 1 for the
        layout written before format files existed."""
        try:
            return int(json.loads((self.root / FORMAT_FILE).read_text())["format"])
        except FileNotFoundError:
            return 1 if (self.blueprints.exists() or (self.root / "logs").exists()) else None

    def mark_format(self, version: int = FORMAT_VERSION) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_file_durably(self.root / FORMAT_FILE, json.dumps({"format": version}).encode())
