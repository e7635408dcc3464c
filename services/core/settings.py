"""Service settings from flags or ``LOOPER_*`` environment variables, checked at start with
errors that name the variable."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("data/looper")
    host: str = "127.0.0.1"
    decision_port: int = 50051
    feedback_port: int = 50052
    trainer_port: int = 50053
    max_message_bytes: int = 4 * 1024 * 1024
    flush_interval: float = 1.0  # seconds between decision-log flushes to the offline store
    join_interval: float = 0.5  # seconds between label-joiner passes
    join_grace: float = 1.0  # seconds a closed window still waits for outcomes in transit
    retrain_interval: float = 2.0  # seconds between retraining checks
    grace_period: float = 10.0  # seconds to drain in-flight calls on SIGTERM
    feast_online_store: str = "sqlite"  # or redis://host:port

    @classmethod
    def load(cls, overrides: dict | None = None, environ=os.environ) -> "Settings":
        """Defaults, then ``LOOPER_<NAME>`` variables, then explicit overrides (flags)."""
        values = {}
        for f in fields(cls):
            raw = environ.get(f"LOOPER_{f.name.upper()}")
            if overrides and overrides.get(f.name) is not None:
                raw, source = overrides[f.name], f"--{f.name.replace('_', '-')}"
            else:
                source = f"LOOPER_{f.name.upper()}"
            if raw is None:
                continue
            values[f.name] = _convert(f.type, raw, source)
        settings = cls(**values)
        for name in ("decision_port", "feedback_port", "trainer_port"):
            port = getattr(settings, name)
            if not 0 <= port <= 65535:
                raise SettingsError(f"LOOPER_{name.upper()} / --{name.replace('_', '-')}: "
                                    f"{port} is not a TCP port (0-65535)")
        return settings


def _convert(kind, raw, source: str):
    try:
        if kind in (int, "int"):
            return int(raw)
        if kind in (float, "float"):
            return float(raw)
        if kind in (Path, "Path"):
            return Path(raw)
        return str(raw)
    except (TypeError, ValueError):
        raise SettingsError(f"{source}: {raw!r} is not a valid {kind}") from None
