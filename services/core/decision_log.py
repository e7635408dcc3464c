"""The decision log: every decision, durable before it is answered, then flushed in
batches to parquet part files of the offline store where the label joiner, the Trainer
and Feast's historical retrieval read them.

Logging never waits on Feast: a decision costs one group-committed append to this
process's segment. ``DecisionLogFlusher`` turns segments into parquet off the hot path and
keeps a checkpoint, so a restart replays exactly what was not flushed yet.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from services.core.durable_log import DurableLog, LogCheckpoint, iter_records, list_segments
from services.core.files import fsync_dir
from services.core.records import DecisionRecord
from services.core.telemetry import OffTracer

PREFIX = "decisions"


class DecisionLog:
    """Appends decisions and finds them again by id (the idempotency key)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._index: dict[tuple[str, str], DecisionRecord] = {}
        self._lock = threading.Lock()
        for segment in list_segments(self.folder, PREFIX):  # replay every process's log
            for data, _ in iter_records(segment):
                record = DecisionRecord.from_dict(data)
                self._index[(record.use_case, record.decision_id)] = record
        self._log = DurableLog(self.folder, PREFIX)

    def append(self, record: DecisionRecord) -> None:
        """Returns once the decision is durable."""
        self._log.append(record.to_dict())
        with self._lock:
            self._index[(record.use_case, record.decision_id)] = record

    def find(self, use_case: str, decision_id: str) -> DecisionRecord | None:
        with self._lock:
            return self._index.get((use_case, decision_id))

    def close(self) -> None:
        self._log.close()


class DecisionLogFlusher:
    """Moves logged decisions into ``<offline>/decisions/<use_case>/part-*.parquet``.

    Only one flusher per data directory works at a time (an flock), so any number of
    Decision processes can run one; each flush writes new part files rather than
    rewriting a table, which keeps a flush O(batch) however large the table grows.
    """

    def __init__(self, log_folder: Path, offline_root: Path, state_folder: Path, tracer=None):
        self.tracer = tracer or OffTracer()
        self.log_folder = Path(log_folder)
        self.table_root = Path(offline_root) / "decisions"
        self.state_folder = Path(state_folder)
        self.table_root.mkdir(parents=True, exist_ok=True)
        self.state_folder.mkdir(parents=True, exist_ok=True)

    def flush(self) -> int:
        """Flushes what is pending; returns the number of decisions written."""
        with open(self.state_folder / "decision-flush.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            checkpoint = LogCheckpoint(self.state_folder / "decision-flush.checkpoint.json")
            batches: dict[str, list[DecisionRecord]] = {}
            last = None
            for data, position in checkpoint.pending(self.log_folder, PREFIX):
                record = DecisionRecord.from_dict(data)
                batches.setdefault(record.use_case, []).append(record)
                checkpoint.advance(position)
                last = position
            if last is None:
                return 0
            count = sum(len(r) for r in batches.values())
            with self.tracer.start_as_current_span("looper.decision_log.flush", attributes={"looper.records": count}):
                for use_case, records in batches.items():
                    self._write_part(use_case, records)
                checkpoint.save()  # after the parts: a crash in between re-writes, never loses
            return count

    def backlog_bytes(self) -> int:
        """Bytes of decision log not yet flushed, across every process's segments."""
        checkpoint = LogCheckpoint(self.state_folder / "decision-flush.checkpoint.json")
        return sum(max(0, s.stat().st_size - checkpoint.offsets.get(s.name, 0))
                   for s in list_segments(self.log_folder, PREFIX))

    def _write_part(self, use_case: str, records: list[DecisionRecord]) -> None:
        folder = self.table_root / use_case
        folder.mkdir(exist_ok=True)
        table = pa.Table.from_pylist([_flat(r) for r in records], schema=DECISION_SCHEMA)
        name = f"part-{time.time_ns()}-{os.getpid()}.parquet"
        tmp = folder / f".{name}.tmp"
        pq.write_table(table, tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, folder / name)
        fsync_dir(folder)


DECISION_SCHEMA = pa.schema([
    ("decision_id", pa.string()),
    ("use_case", pa.string()),
    ("action", pa.string()),
    ("score", pa.float64()),
    ("model_version", pa.string()),
    ("blueprint_version", pa.int64()),
    ("propensity", pa.float64()),
    ("is_default", pa.bool_()),
    ("is_exploration", pa.bool_()),
    ("decide_time", pa.timestamp("us", tz="UTC")),
    ("record_json", pa.string()),
])


def _flat(record: DecisionRecord) -> dict:
    return {
        "decision_id": record.decision_id, "use_case": record.use_case, "action": record.action,
        "score": record.score, "model_version": record.model_version,
        "blueprint_version": record.blueprint_version, "propensity": record.propensity,
        "is_default": record.is_default, "is_exploration": record.is_exploration,
        "decide_time": record.decide_time, "record_json": json.dumps(record.to_dict()),
    }
