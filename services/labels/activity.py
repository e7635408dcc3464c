"""What the label joiner has seen of recent decisions, for the Trainer's experiment reports
and rollouts: decisions and attributed outcomes per experiment arm, and what a model in
shadow would have done. Read-only queries over the joiner's state (SQLite, which the
Feedback service writes); before the joiner has run, there is nothing to count.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from services.decisions.record import DefaultReason
from services.labels.joiner import OutcomeStatus


@dataclass(frozen=True)
class ArmActivity:
    decisions: int = 0
    model_failures: int = 0  # decisions that fell back to the default because the arm's model failed
    outcomes: int = 0  # outcome events attributed to the arm's decisions


@dataclass(frozen=True)
class ShadowActivity:
    decisions: int = 0  # decisions the model in shadow was asked about
    failures: int = 0  # of those, the ones it could not answer (did not load, failed to score)
    agreements: int = 0  # the ones where it would have done what was done


class DecisionActivity:
    def __init__(self, joiner_state: Path):
        self.path = Path(joiner_state)

    def by_arm(self, use_case: str, since: datetime, until: datetime | None = None) -> dict[str, ArmActivity]:
        """Per arm, the decisions made in [since, until) and the outcomes attributed to them."""
        end = until.timestamp() if until else float("inf")
        decisions = self._query(
            "SELECT json_extract(record_json, '$.arm'), COUNT(*), "
            "SUM(json_extract(record_json, '$.default_reason') = ?) FROM decisions "
            "WHERE use_case = ? AND decide_time >= ? AND decide_time < ? GROUP BY 1",
            (int(DefaultReason.MODEL_UNAVAILABLE), use_case, since.timestamp(), end))
        outcomes = dict(self._query(
            "SELECT json_extract(d.record_json, '$.arm'), COUNT(*) FROM outcomes o JOIN decisions d "
            "ON d.use_case = o.use_case AND d.decision_id = o.decision_id WHERE o.use_case = ? AND o.status = ? "
            "AND d.decide_time >= ? AND d.decide_time < ? GROUP BY 1",
            (use_case, OutcomeStatus.ATTRIBUTED.value, since.timestamp(), end)))
        return {arm or "": ArmActivity(count, failures or 0, outcomes.get(arm, 0))
                for arm, count, failures in decisions}

    def shadow(self, use_case: str, version: str, since: datetime) -> ShadowActivity:
        """What the model ``version`` did in shadow on the decisions made since ``since``."""
        rows = self._query(
            "SELECT COUNT(*), SUM(json_extract(record_json, '$.shadow.error') IS NOT NULL), "
            "SUM(json_extract(record_json, '$.shadow.action') = json_extract(record_json, '$.action')) "
            "FROM decisions WHERE use_case = ? AND decide_time >= ? "
            "AND json_extract(record_json, '$.shadow.model_version') = ?", (use_case, since.timestamp(), version))
        total, failures, agreements = rows[0] if rows else (0, 0, 0)
        return ShadowActivity(total or 0, failures or 0, agreements or 0)

    def _query(self, sql: str, params: tuple) -> list[tuple]:
        if not self.path.exists():
            return []
        with closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5)) as db:
            try:
                return db.execute(sql, params).fetchall()
            except sqlite3.OperationalError as err:
                if "no such table" in str(err):  # the joiner has not created its tables yet
                    return []
                raise
