"""Upgrades the decision log of a format-1 data directory: records get the fields format 2
added (why a decision was the default), the shared index is built from the log, and the
label joiner's progress moves to the log's consumer folder (offsets follow the rewrite)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from services.decisions.log import CONSUMERS, PREFIX
from services.decisions.record import DecisionRecord, DefaultReason
from services.platform.data_dir import DecisionPaths
from services.platform.durable_log import RecordAddress, _frame, iter_records, list_segments
from services.platform.files import fsync_dir, write_file_durably
from services.platform.id_index import IdempotencyIndex


def upgrade_record(data: dict) -> dict:
    """A format-1 decision record as format 2 (format-2 records pass unchanged)."""
    if "is_default" not in data:
        return data
    data = dict(data)
    data["default_reason"] = int(DefaultReason.NO_MODEL if data.pop("is_default") else DefaultReason.UNSPECIFIED)
    return DecisionRecord.from_dict(data).to_dict()


def upgrade_v1(paths: DecisionPaths, legacy_checkpoint: Path) -> int:
    """Rewrites every segment in format 2; returns the number of records."""
    offsets = _load(legacy_checkpoint)
    index = IdempotencyIndex(paths.index)
    count = 0
    try:
        for segment in list_segments(paths.log, PREFIX):
            moved, records = _rewrite(segment)
            if segment.name in offsets:
                offsets[segment.name] = moved.get(offsets[segment.name], offsets[segment.name])
            for record, address in records:
                index.claim(record.use_case, [record.decision_id], record.decide_time.timestamp())
                index.complete(record.use_case, [(record.decision_id, address, record.decide_time.timestamp())])
            count += len(records)
    finally:
        index.close()
    paths.consumers.mkdir(parents=True, exist_ok=True)
    for consumer in CONSUMERS:
        write_file_durably(paths.consumers / f"{consumer}.json", json.dumps(offsets).encode())
    legacy_checkpoint.unlink(missing_ok=True)
    return count


def _rewrite(segment: Path) -> tuple[dict[int, int], list]:
    """Rewrites one segment in place (atomically); returns old end offsets -> new ones, and
    each record with its new address."""
    moved, records, frames, offset = {0: 0}, [], [], 0
    for data, position in iter_records(segment):
        upgraded = upgrade_record(data)
        frame = _frame(json.dumps(upgraded, separators=(",", ":")).encode())
        records.append((DecisionRecord.from_dict(upgraded), RecordAddress(segment.name, offset)))
        offset += len(frame)
        moved[position.offset] = offset
        frames.append(frame)
    tmp = segment.with_name(f".{segment.name}.upgrade")
    with open(tmp, "wb") as out:
        out.write(b"".join(frames))
        out.flush()
        os.fsync(out.fileno())
    stat = segment.stat()
    os.utime(tmp, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # keep the order of segments
    os.replace(tmp, segment)
    fsync_dir(segment.parent)
    return moved, records


def _load(path: Path) -> dict[str, int]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
