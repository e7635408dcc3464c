"""Opens a data directory for the services, upgrading an older format first.

A directory records its format version (``DataDir``). Before any service opens it, the
first process to start upgrades it in place, under a lock, one data product at a time;
a directory from a newer Looper is refused with a message, never misread.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from services.platform.data_dir import FORMAT_VERSION, DataDir
from services.platform.files import exclusive_lock

log = logging.getLogger("looper.migration")


class DataDirError(RuntimeError):
    pass


def open_data_dir(root: Path) -> DataDir:
    data = DataDir(root)
    with exclusive_lock(data.root / "state" / "locks" / "migration.lock"):
        version = data.format_version()
        if version is not None and version > FORMAT_VERSION:
            raise DataDirError(f"{data.root} was written in format {version} by a newer Looper; this one reads "
                               f"format {FORMAT_VERSION}: upgrade Looper, or point it at another data directory")
        if version == 1:
            upgrade_from_v1(data)
        data.ensure()
        if version != FORMAT_VERSION:
            data.mark_format()
    return data


def upgrade_from_v1(data: DataDir) -> None:
    """Format 1 (before format files): decision records without default reasons, consumer
    checkpoints in ``state/``, in-memory id sets instead of indexes, and a decision table
    under ``offline/decisions`` that nothing read (removed)."""
    from services.decisions.migration import upgrade_record
    from services.decisions.migration import upgrade_v1 as upgrade_decisions
    from services.labels.migration import upgrade_v1 as upgrade_labels

    state = data.root / "state"
    decisions = upgrade_decisions(data.decisions, state / "joiner-decisions.checkpoint.json")
    outcomes = upgrade_labels(data.labels, state / "joiner-feedback.checkpoint.json", upgrade_record)
    shutil.rmtree(data.root / "offline" / "decisions", ignore_errors=True)
    for leftover in ("decision-flush.lock", "decision-flush.checkpoint.json"):
        (state / leftover).unlink(missing_ok=True)
    log.info("upgraded %s from format 1 to %d: %d decisions, %d outcome events indexed", data.root,
             FORMAT_VERSION, decisions, outcomes)
