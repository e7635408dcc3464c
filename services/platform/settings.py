"""Service settings from flags or ``LOOPER_*`` environment variables: typed, checked at start,
with errors that name the variable or flag they came from."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from services.platform.durable_log import SPARE_AFTER_BYTES


class SettingsError(ValueError):
    pass


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: Path = Path("data/looper")
    host: str = "127.0.0.1"
    decision_port: int = Field(50051, ge=0, le=65535)  # 0 picks a free port
    feedback_port: int = Field(50052, ge=0, le=65535)
    trainer_port: int = Field(50053, ge=0, le=65535)
    max_message_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    # Load: calls handled at once per process (the thread-pool servers' threads; the asyncio
    # Decision server's places, for which the others wait in line), calls accepted at once (more
    # are shed with RESOURCE_EXHAUSTED), and how many one use case may hold while being handled.
    threads: int = Field(16, ge=1, le=256)
    # Worker processes per Decision and Feedback service, sharing its port (SO_REUSEPORT):
    # Python runs one call's code at a time per process, so more cores need more processes.
    workers: int = Field(1, ge=1, le=64)
    max_in_flight: int = Field(64, ge=1)
    use_case_max_in_flight: int = Field(12, ge=1)
    join_interval: float = Field(0.5, gt=0)  # seconds between label-joiner passes
    join_grace: float = Field(1.0, ge=0)  # seconds a closed window still waits for outcomes in transit
    retrain_interval: float = Field(2.0, gt=0)  # seconds between retraining checks
    grace_period: float = Field(10.0, ge=0)  # seconds to drain in-flight calls on SIGTERM
    feast_online_store: str = "sqlite"  # or redis://host:port
    # TLS (PEM files): required to serve anything but loopback; with a client CA, mutual TLS.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    # Retention: how long ids are remembered (at least the longest label window of any use
    # case), how often the retention job runs, and how much history is kept.
    idempotency_window: float = Field(86400.0, gt=0)  # seconds
    retention_interval: float = Field(300.0, gt=0)  # seconds
    segment_seconds: float = Field(3600.0, gt=0)  # a log segment is closed after this long
    model_versions_kept: int = Field(20, ge=1)  # besides the live one and those rollback returns to
    runs_kept: int = Field(200, ge=1)  # training runs kept per use case
    training_retention_days: float = Field(90.0, gt=0)  # training-table parts older than this go
    max_blueprint_versions: int = Field(10_000, ge=1)  # per use case
    deletion_interval: float = Field(5.0, gt=0)  # seconds between runs of the deletion job (Trainer)
    # When a decision or an outcome is acknowledged: "fsync" (on disk; the default) or "os"
    # (the OS has the bytes: survives a crash of the process, not of the machine).
    durability: str = "fsync"
    # Once a process has written this much to a log, it keeps a spare segment of zeros ready to
    # write into (cheaper fsyncs: measured on ext4); 0: never (on a copy-on-write file system
    # such as btrfs, writing over the zeros allocates new blocks anyway).
    log_spare_after_bytes: int = Field(SPARE_AFTER_BYTES, ge=0)

    @model_validator(mode="after")
    def _tls_pair(self) -> "Settings":
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        return self

    @field_validator("durability")
    @classmethod
    def _durability(cls, value: str) -> str:
        if value not in ("fsync", "os"):
            raise ValueError("must be 'fsync' or 'os'")
        return value

    @field_validator("feast_online_store")
    @classmethod
    def _online_store(cls, value: str) -> str:
        if value != "sqlite" and not value.startswith("redis://"):
            raise ValueError("must be 'sqlite' or 'redis://host:port'")
        return value

    @classmethod
    def load(cls, overrides: dict | None = None, environ=os.environ) -> "Settings":
        """Defaults, then ``LOOPER_<NAME>`` variables, then explicit overrides (flags)."""
        values, sources = {}, {}
        for name in cls.model_fields:
            if overrides and overrides.get(name) is not None:
                values[name], sources[name] = overrides[name], f"--{name.replace('_', '-')}"
            elif f"LOOPER_{name.upper()}" in environ:
                values[name], sources[name] = environ[f"LOOPER_{name.upper()}"], f"LOOPER_{name.upper()}"
        try:
            return cls(**values)
        except ValidationError as err:
            problems = []
            for error in err.errors():
                name = str(error["loc"][0]) if error["loc"] else "tls_cert"
                problems.append(f"{sources.get(name, name)}: {values.get(name)!r} {_reason(error)}")
            raise SettingsError("; ".join(problems)) from None


def _reason(error: dict) -> str:
    if error["type"] == "value_error":
        return str(error["ctx"]["error"])
    if error["type"] in ("greater_than_equal", "less_than_equal", "greater_than"):
        return f"is out of range ({error['msg'].lower()})"
    return f"is not valid ({error['msg'].lower()})"
