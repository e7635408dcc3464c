"""The audit log: one JSON line per administrative action (who, what, when, in which use
case, and what it made: a blueprint version, a run, a model version), appended and synced
before the action is acknowledged."""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timezone
from pathlib import Path

from services.platform.auth import current_caller


class AuditLog:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def record(self, action: str, use_case: str = "", **details) -> None:
        caller = current_caller()
        entry = {"time": datetime.now(timezone.utc).isoformat(), "action": action, "use_case": use_case,
                 "caller": caller.name if caller else "", "credential_id": caller.credential_id if caller else "",
                 **details}
        line = (json.dumps(entry, sort_keys=True, default=str) + "\n").encode()
        with self._lock, open(self.path, "ab") as out:
            out.write(line)
            out.flush()
            os.fsync(out.fileno())

    def entries(self) -> list[dict]:
        try:
            return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
        except FileNotFoundError:
            return []
