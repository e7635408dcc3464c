"""Upgrades the labels of a format-1 data directory: the outcome-event index is built from
the outcome log, the joiner's progress through it moves to the log's consumer folder, and
the decisions the joiner holds get the fields format 2 added."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Callable

from services.labels.outcomes import CONSUMERS, PREFIX
from services.platform.data_dir import LabelPaths
from services.platform.durable_log import iter_records, list_segments
from services.platform.files import write_file_durably
from services.platform.id_index import IdempotencyIndex


def upgrade_v1(paths: LabelPaths, legacy_checkpoint: Path, upgrade_decision: Callable[[dict], dict]) -> int:
    """Returns the number of outcome events indexed."""
    index = IdempotencyIndex(paths.outcome_index)
    count = 0
    try:
        for segment in list_segments(paths.outcome_log, PREFIX):
            for data, _ in iter_records(segment):
                index.claim(data["use_case"], [data["event_id"]], 0.0)
                index.complete(data["use_case"], [(data["event_id"], None, _timestamp(data["receive_time"]))])
                count += 1
    finally:
        index.close()
    try:
        offsets = legacy_checkpoint.read_text()
    except FileNotFoundError:
        offsets = "{}"
    paths.outcome_consumers.mkdir(parents=True, exist_ok=True)
    for consumer in CONSUMERS:
        write_file_durably(paths.outcome_consumers / f"{consumer}.json", offsets.encode())
    legacy_checkpoint.unlink(missing_ok=True)
    _upgrade_joined_decisions(paths.joiner, upgrade_decision)
    return count


def _upgrade_joined_decisions(database: Path, upgrade_decision: Callable[[dict], dict]) -> None:
    if not database.exists():
        return
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT use_case, decision_id, record_json FROM decisions").fetchall()
        db.executemany("UPDATE decisions SET record_json = ? WHERE use_case = ? AND decision_id = ?",
                       [(json.dumps(upgrade_decision(json.loads(r))), u, d) for u, d, r in rows])


def _timestamp(iso_time: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso_time).timestamp()
