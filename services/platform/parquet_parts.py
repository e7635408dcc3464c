"""Deleting rows from tables kept as parquet part files (the training table, the views Looper
maintains): a part is rewritten without them under its own name, atomically (a new file,
fsync, rename), so a reader sees the whole old part or the whole new one and a crash leaves
one of the two; a part left empty is deleted. Rewriting a part again drops nothing more, so a
deletion cut short just runs again."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from services.platform.files import fsync_dir

# A table -> the boolean mask of the rows to drop.
RowFilter = Callable[[pa.Table], pa.ChunkedArray | pa.Array]


def drop_rows(parts: list[Path], drop: RowFilter) -> int:
    """Rewrites each part without the rows ``drop`` selects; returns how many rows went."""
    removed = 0
    for path in parts:
        try:
            table = pq.read_table(path)
        except FileNotFoundError:  # pruned by retention meanwhile
            continue
        mask = pc.fill_null(drop(table), False)
        count = pc.sum(mask).as_py() or 0
        if not count:
            continue
        if count == table.num_rows:
            path.unlink(missing_ok=True)
        else:
            temporary = path.with_name(f".{path.name}.rewrite.tmp")
            pq.write_table(table.filter(pc.invert(mask)), temporary)
            with open(temporary, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        fsync_dir(path.parent)
        removed += count
    return removed


def subject_rows(subject: dict[str, str], until: datetime | None = None) -> RowFilter:
    """The rows of one subject (each entity column equal to its value, compared as text),
    with ``event_timestamp`` at or before ``until`` when given. A table without one of the
    subject's columns has none of its rows."""

    def mask(table: pa.Table):
        selected = pa.array([True] * table.num_rows, pa.bool_())
        for column, value in subject.items():
            if column not in table.column_names:
                return pa.array([False] * table.num_rows, pa.bool_())
            selected = pc.and_(selected, pc.equal(pc.cast(table[column], pa.string()), value))
        if until is not None and "event_timestamp" in table.column_names:
            stamps = table["event_timestamp"]
            moment = pa.scalar(until, type=stamps.type) if pa.types.is_timestamp(stamps.type) else until
            selected = pc.and_(selected, pc.less_equal(stamps, moment))
        return selected

    return mask


def any_of(filters: list[RowFilter]) -> RowFilter:
    def mask(table: pa.Table):
        selected = pa.array([False] * table.num_rows, pa.bool_())
        for one in filters:
            selected = pc.or_(selected, pc.fill_null(one(table), False))
        return selected

    return mask


def row_count(parts: list[Path]) -> int:
    """Rows of the parts, from their footers."""
    total = 0
    for path in parts:
        try:
            total += pq.ParquetFile(path).metadata.num_rows
        except FileNotFoundError:
            continue
    return total
