"""The training table: one row per decision whose attribution window has closed, with the
feature values logged at decision time and its label. This is Looper's queryable record of
what was decided and what came of it: the Trainer trains and evaluates on it, reports and
off-policy estimates read it, and it is the entity frame of Feast's historical retrieval
when a feature added later is backfilled.

Stored as parquet part files per use case, so that appends never rewrite the table; read
back as one DataFrame, one row per decision id.

The ``candidates`` column holds the actions a decision chose among (for a multi-action
decision, the candidates the product offered; otherwise all of its actions), encoded as a
JSON array of action ids sorted by name, e.g. ``["premium","standard"]``. An empty string
(numeric decisions, a ranking's item rows) or a missing value (parts written before the
column existed) means every action of the blueprint; ``candidate_actions`` decodes it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from services.decisions.record import DecisionRecord
from services.platform.files import fsync_dir
from services.platform.parquet_parts import RowFilter, drop_rows, row_count

CANDIDATES_COLUMN = "candidates"  # the actions a decision chose among (see the module's docstring)
# Looper's own columns; the others are the subject's keys and the logged features.
DECISION_COLUMNS = ("row_id", "decision_id", "event_timestamp", "action", "value", "propensity", "position",
                    "is_default", "is_exploration", "model_version", "blueprint_version", "arm", CANDIDATES_COLUMN)
LABEL_COLUMNS = ("label", "outcome_count")
# Names a blueprint's entities and features may not take (they would overwrite these).
RESERVED_COLUMNS = frozenset(DECISION_COLUMNS + LABEL_COLUMNS + ("use_case", "subject", "features"))
RESERVED_PREFIXES = ("label__", "outcome_count__")


def label_column(outcome: str) -> str:
    """The column of one label's value: ``label__<outcome>``."""
    return f"label__{outcome}"


def count_column(outcome: str) -> str:
    return f"outcome_count__{outcome}"


def candidates_text(actions) -> str:
    """The ``candidates`` column's value for the actions a decision chose among."""
    return json.dumps(sorted(actions), separators=(",", ":")) if actions else ""


def candidate_actions(text) -> tuple[str, ...]:
    """The actions a ``candidates`` value names; () for every action of the blueprint (an
    empty string, or a missing value from a part written before the column existed)."""
    if not isinstance(text, str) or not text:
        return ()
    return tuple(json.loads(text))


@dataclass(frozen=True)
class LabeledDecision:
    """A decision and its labels (value and outcome count per outcome, the primary label
    first): its rows of the training table. A ranking has one row per shown item, with the
    item's position, its features, its slot's propensity and its own labels (``items``)."""

    decision: DecisionRecord
    labels: dict[str, tuple[float, int]]
    items: dict[str, dict[str, tuple[float, int]]] | None = None  # ranking: item -> its labels

    def rows(self) -> list[dict]:
        if self.items is None:
            shown = {"action": self.decision.action, "propensity": self.decision.propensity,
                     CANDIDATES_COLUMN: candidates_text([c.action_id for c in self.decision.ranking])}
            if self.decision.value is not None:
                shown["value"] = self.decision.value
            return [self._row(self.decision.decision_id, shown, self.labels)]
        return [self._row(f"{self.decision.decision_id}/{item.action_id}",
                          {"action": item.action_id, "propensity": item.propensity, "position": position,
                           CANDIDATES_COLUMN: "", **item.features}, self.items[item.action_id])
                for position, item in enumerate(self.decision.ranking)]

    def _row(self, row_id: str, shown: dict, labels: dict[str, tuple[float, int]]) -> dict:
        d = self.decision
        primary_value, primary_count = next(iter(labels.values()))
        row = {
            "row_id": row_id, "decision_id": d.decision_id, "event_timestamp": d.decide_time, **d.subject,
            "is_default": d.is_default, "is_exploration": d.is_exploration, "model_version": d.model_version,
            "blueprint_version": d.blueprint_version, "arm": d.arm, **d.features, **shown,
            "label": primary_value, "outcome_count": primary_count,
        }
        for outcome, (value, count) in labels.items():
            row[label_column(outcome)], row[count_column(outcome)] = value, count
        return row


class TrainingTable:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def append(self, use_case: str, rows: list[LabeledDecision]) -> None:
        """Writes the rows as one new part file, atomically and durably."""
        if not rows:
            return
        folder = self.root / use_case
        folder.mkdir(exist_ok=True)
        frame = pd.DataFrame([row for labeled in rows for row in labeled.rows()])
        frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
        name = f"part-{time.time_ns()}-{os.getpid()}.parquet"
        tmp = folder / f".{name}.tmp"
        frame.to_parquet(tmp, index=False)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, folder / name)
        fsync_dir(folder)

    def parts(self, use_case: str) -> list[Path]:
        return sorted((self.root / use_case).glob("part-*.parquet"))

    def row_count(self, use_case: str) -> int:
        """Rows written so far (from parquet footers; cheap)."""
        return sum(pq.ParquetFile(p).metadata.num_rows for p in self.parts(use_case))

    def read(self, use_case: str, max_rows: int | None = None) -> pd.DataFrame:
        """Labeled decisions, oldest first, one row per decision (per shown item for a
        ranking); with ``max_rows``, the newest ones only (whole part files, newest first,
        until there are enough)."""
        parts = []
        rows = 0
        for path in reversed(self.parts(use_case)):
            parts.append(pd.read_parquet(path))
            rows += len(parts[-1])
            if max_rows is not None and rows >= max_rows:
                break
        if not parts:
            return pd.DataFrame(columns=list(DECISION_COLUMNS + LABEL_COLUMNS))
        frame = pd.concat(reversed(parts), ignore_index=True)
        key = frame["row_id"].fillna(frame["decision_id"]) if "row_id" in frame else frame["decision_id"]
        frame = frame[~key.duplicated(keep="last")]
        frame = frame.sort_values("event_timestamp", kind="stable").reset_index(drop=True)
        return frame.tail(max_rows).reset_index(drop=True) if max_rows is not None else frame

    def prune(self, use_case: str, older_than_ns: int) -> int:
        """Deletes parts written before ``older_than_ns`` (nanoseconds since the epoch, as
        in their names); returns how many."""
        deleted = 0
        for path in self.parts(use_case):
            if int(path.name.split("-")[1]) < older_than_ns:
                path.unlink(missing_ok=True)
                deleted += 1
        return deleted

    def use_cases(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    # --- deletion (services.deletions) -----------------------------------------------------
    def drop_rows(self, use_case: str, drop: RowFilter, parts: list[Path] | None = None) -> int:
        """Rewrites the use case's parts (or the given ones) without the rows ``drop``
        selects; returns how many rows went."""
        return drop_rows(self.parts(use_case) if parts is None else parts, drop)

    def remove(self, use_case: str) -> int:
        """Deletes the use case's table; returns how many rows it had."""
        folder = self.root / use_case
        rows = row_count(self.parts(use_case))
        shutil.rmtree(folder, ignore_errors=True)
        if folder.exists():
            raise OSError(f"could not delete {folder}")
        fsync_dir(self.root)
        return rows
