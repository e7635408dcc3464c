"""Where each store lives inside a Looper data directory (the embedded default).

Every service of a deployment points at the same data directory; the layout is the
contract between them (blueprints, logs, offline tables, models), so it is spelled out once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DataDir:
    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).resolve())

    @property
    def blueprints(self) -> Path:
        return self.root / "blueprints"

    @property
    def decision_log(self) -> Path:
        """Durable decision log segments, one per Decision process."""
        return self.root / "logs" / "decisions"

    @property
    def feedback_log(self) -> Path:
        """Durable outcome event segments, one per Feedback process."""
        return self.root / "logs" / "feedback"

    @property
    def offline(self) -> Path:
        """Parquet part files Feast's offline store reads."""
        return self.root / "offline"

    @property
    def feast_repo(self) -> Path:
        return self.root / "feature_repo"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def state(self) -> Path:
        """Service-private state such as the label joiner's database and log checkpoints."""
        return self.root / "state"

    def ensure(self) -> "DataDir":
        for path in (self.blueprints, self.decision_log, self.feedback_log, self.offline,
                     self.models, self.runs, self.state):
            path.mkdir(parents=True, exist_ok=True)
        return self
