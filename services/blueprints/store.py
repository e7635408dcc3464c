"""Immutable, versioned blueprints on disk: ``<root>/<use_case>/v000001.yaml``.

Every service reads the same directory, so a blueprint applied through the Trainer is seen
by Decision and Feedback processes without any call between them. Versions are created with
O_EXCL, so two concurrent applies can never write the same version twice.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from services.blueprints.spec import Blueprint, load_blueprint_yaml
from services.platform.errors import InvalidArgument, NotFound, ResourceExhausted
from services.platform.files import change_token, fsync_dir, write_file_durably
from services.platform.validation import is_valid_name


@dataclass(frozen=True)
class StoredBlueprint:
    """A blueprint version with what the store knows about it."""

    blueprint: Blueprint
    spec_yaml: str
    create_time: datetime


class BlueprintStore:
    def __init__(self, root: Path, max_versions: int = 10_000):
        self.root = Path(root)
        self._folder = str(self.root)  # for change_token on the hot path
        self.max_versions = max_versions  # per use case: a cap on what callers can make the store hold
        self.root.mkdir(parents=True, exist_ok=True)
        # (use case, version, the file's mtime and inode): a use case deleted and created again
        # has new files under the same names
        self._cache: dict[tuple[str, int, int, int], StoredBlueprint] = {}
        self._latest: dict[str, tuple[tuple[int, int], int]] = {}  # use case -> (folder's change_token, version)
        self._paused: dict[str, tuple[tuple[int, int], bool]] = {}  # use case -> (folder's change_token, paused)
        self._lock = threading.Lock()

    def apply(self, spec_yaml: str) -> tuple[StoredBlueprint, bool]:
        """Validates and stores a blueprint; returns (current version, whether it is new)."""
        blueprint = load_blueprint_yaml(spec_yaml)
        folder = self.root / blueprint.name
        folder.mkdir(exist_ok=True)
        while True:
            latest = self._latest_version(blueprint.name)
            if latest:
                current = self.get(blueprint.name, latest)
                if current.blueprint.digest() == blueprint.digest():
                    return current, False
            if latest >= self.max_versions:
                raise ResourceExhausted(f"use case {blueprint.name!r} has {latest} blueprint versions, the most "
                                        f"allowed (LOOPER_MAX_BLUEPRINT_VERSIONS)")
            path = folder / _file_name(latest + 1)
            try:
                write_file_durably(path, spec_yaml.encode(), exclusive=True)
            except FileExistsError:
                continue  # another process applied concurrently; compare with its version
            return self.get(blueprint.name, latest + 1), True

    def get(self, use_case: str, version: int = 0) -> StoredBlueprint:
        """A version of a use case's blueprint; version 0 means the latest."""
        if not is_valid_name(use_case):
            raise InvalidArgument.single("use_case", "must be lower_snake_case")
        if version == 0:
            version = self.latest_version(use_case)
        path = f"{self._folder}/{use_case}/{_file_name(version)}"
        token = change_token(path)
        if token is None:
            raise NotFound(f"use case {use_case!r} has no blueprint version {version}")
        key = (use_case, version, *token)
        with self._lock:
            cached = self._cache.get(key)
        if cached:
            return cached
        try:  # a version's file is written once (by a hard link), never replaced
            text = Path(path).read_text()
        except FileNotFoundError:
            raise NotFound(f"use case {use_case!r} has no blueprint version {version}") from None
        stored = StoredBlueprint(
            blueprint=load_blueprint_yaml(text).with_version(version),
            spec_yaml=text,
            create_time=datetime.fromtimestamp(token[0] / 1e9, timezone.utc),
        )
        with self._lock:
            self._cache[key] = stored
        return stored

    def latest(self, use_case: str) -> Blueprint:
        """The current blueprint of a use case; the hot path of every decision."""
        return self.get(use_case).blueprint

    def latest_version(self, use_case: str) -> int:
        version = self._latest_version(use_case)
        if not version:
            raise NotFound(f"use case {use_case!r} has no blueprint; apply one with `looper apply BLUEPRINT.yaml`")
        return version

    def list(self) -> list[StoredBlueprint]:
        """The latest version of every use case, by name."""
        return [self.get(name) for name in self.names()]

    def names(self) -> list[str]:
        """The use cases that have a blueprint, sorted."""
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and is_valid_name(p.name) and self._latest_version(p.name))

    def set_paused(self, use_case: str, paused: bool, reason: str = "") -> None:
        """Pauses or resumes a use case (a marker file beside its versions, seen by every
        process at its next decision)."""
        self.latest_version(use_case)  # NOT_FOUND for an unknown use case
        marker = self.root / use_case / PAUSED_MARKER
        if paused:
            write_file_durably(marker, reason.encode())
        else:
            marker.unlink(missing_ok=True)

    def is_paused(self, use_case: str) -> bool:
        """Cheap enough for every decision: cached by the folder's mtime, which a pause or a
        resumption changes."""
        mtime = change_token(f"{self._folder}/{use_case}")
        if mtime is None:
            return False
        with self._lock:
            seen = self._paused.get(use_case)
        if seen and seen[0] == mtime:
            return seen[1]
        paused = (self.root / use_case / PAUSED_MARKER).exists()
        with self._lock:
            self._paused[use_case] = (mtime, paused)
        return paused

    def retire(self, use_case: str, deletion_id: str) -> Path:
        """Takes a use case's blueprint versions out of sight for its deletion: from now on
        every process answers NOT_FOUND for it. They move to a hidden folder (returned) that
        the deletion removes once done; calling again after the move changes nothing."""
        if not is_valid_name(use_case):
            raise InvalidArgument.single("use_case", "must be lower_snake_case")
        hidden = self.root / f".deleted-{deletion_id}"
        if (self.root / use_case).exists() and not hidden.exists():
            os.rename(self.root / use_case, hidden)
            fsync_dir(self.root)
        return hidden

    def pause_reason(self, use_case: str) -> str | None:
        """Why the use case was paused; None when it is not paused."""
        try:
            return (self.root / use_case / PAUSED_MARKER).read_bytes().decode(errors="replace")
        except FileNotFoundError:
            return None

    def idempotency_window(self, minimum: timedelta) -> timedelta:
        """How long ids must be remembered: ``minimum``, or the longest label window of any use
        case when that is longer (a retry inside a decision's window must find it)."""
        return max([minimum, *(s.blueprint.longest_window for s in self.list())])

    def _latest_version(self, use_case: str) -> int:
        """Cached by the folder's mtime, which changes when a version file is added."""
        mtime = change_token(f"{self._folder}/{use_case}")
        if mtime is None:
            return 0
        with self._lock:
            seen = self._latest.get(use_case)
        if seen and seen[0] == mtime:
            return seen[1]
        folder = self.root / use_case
        versions = [int(p.stem[1:]) for p in folder.glob("v*.yaml") if p.stem[1:].isdigit()]
        version = max(versions, default=0)
        with self._lock:
            self._latest[use_case] = (mtime, version)
        return version


PAUSED_MARKER = "paused"


def _file_name(version: int) -> str:
    return f"v{version:06d}.yaml"
