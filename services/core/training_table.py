"""The training table: one row per decision whose attribution window has closed, with the
feature values logged at decision time and the label. Stored as parquet part files under
``<offline>/training/<use_case>/`` so that appends never rewrite the table, and read back
as one DataFrame (by the Trainer, and as the entity frame of Feast's historical
retrieval when a feature added later must be backfilled)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from services.core.files import fsync_dir

# Columns every row has; the rest are subject keys and logged features.
KEY_COLUMNS = ("decision_id", "event_timestamp", "action", "propensity", "is_default",
               "is_exploration", "model_version", "blueprint_version", "label", "outcome_count")


class TrainingTable:
    def __init__(self, offline_root: Path):
        self.root = Path(offline_root) / "training"
        self.root.mkdir(parents=True, exist_ok=True)

    def folder(self, use_case: str) -> Path:
        return self.root / use_case

    def append(self, use_case: str, rows: list[dict]) -> None:
        """Writes the rows as one new part file, atomically and durably."""
        if not rows:
            return
        folder = self.folder(use_case)
        folder.mkdir(exist_ok=True)
        frame = pd.DataFrame(rows)
        frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
        name = f"part-{time.time_ns()}-{os.getpid()}.parquet"
        tmp = folder / f".{name}.tmp"
        frame.to_parquet(tmp, index=False)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, folder / name)
        fsync_dir(folder)

    def parts(self, use_case: str) -> list[Path]:
        return sorted(self.folder(use_case).glob("part-*.parquet"))

    def row_count(self, use_case: str) -> int:
        """Rows written so far (from parquet footers; cheap)."""
        return sum(pq.ParquetFile(p).metadata.num_rows for p in self.parts(use_case))

    def read(self, use_case: str) -> pd.DataFrame:
        """Every labeled decision, oldest first, one row per decision id."""
        parts = [pd.read_parquet(p) for p in self.parts(use_case)]
        if not parts:
            return pd.DataFrame(columns=list(KEY_COLUMNS))
        frame = pd.concat(parts, ignore_index=True)
        frame = frame.drop_duplicates("decision_id", keep="last")
        return frame.sort_values("event_timestamp", kind="stable").reset_index(drop=True)
