"""Experiments on disk, shared by every process of a deployment: ``<root>/<use_case>/
active.json`` (the running experiment, if any) and ``history.jsonl`` (every ended one, with
its verdict and reason). The Trainer starts and ends experiments; Decision processes read the
active one on every decision, cached by the file's identity, so a change reaches them at
their next decision without any call between them.
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from services.experiments.experiment import Experiment, Verdict
from services.platform.errors import FailedPrecondition, NotFound
from services.platform.files import append_line_durably, change_token, exclusive_lock, write_file_durably

_ACTIVE, _HISTORY = "active.json", "history.jsonl"


class ExperimentStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self._folder = str(self.root)  # for change_token on the hot path
        self.root.mkdir(parents=True, exist_ok=True)
        self._cache: dict[str, tuple[tuple[int, int] | None, Experiment | None]] = {}
        self._lock = threading.Lock()

    def active(self, use_case: str) -> Experiment | None:
        """The use case's running experiment; cheap enough for every decision."""
        token = change_token(f"{self._folder}/{use_case}/{_ACTIVE}")  # every change writes a new file
        with self._lock:
            cached = self._cache.get(use_case)
        if cached and cached[0] == token:
            return cached[1]
        experiment = None
        if token is not None:
            try:
                experiment = Experiment.from_dict(json.loads((self.root / use_case / _ACTIVE).read_text()))
            except FileNotFoundError:  # ended meanwhile
                token = None
        with self._lock:
            self._cache[use_case] = (token, experiment)
        return experiment

    def start(self, experiment: Experiment) -> Experiment:
        """Makes ``experiment`` the use case's running one; refused while another runs."""
        with self._locked(experiment.use_case):
            running = self.active(experiment.use_case)
            if running is not None:
                raise FailedPrecondition(f"use case {experiment.use_case!r} already runs experiment "
                                         f"{running.experiment_id!r}; one runs at a time")
            write_file_durably(self.root / experiment.use_case / _ACTIVE, json.dumps(experiment.to_dict()).encode())
        return experiment

    def finish(self, use_case: str, experiment_id: str, verdict: Verdict, reason: str) -> Experiment:
        """Ends the running experiment with its verdict: recorded in the history first, then
        no longer active (a crash in between ends it again, with the same verdict)."""
        with self._locked(use_case):
            running = self.active(use_case)
            if running is None or running.experiment_id != experiment_id:
                raise NotFound(f"use case {use_case!r} runs no experiment {experiment_id!r}")
            ended = replace(running, end_time=datetime.now(timezone.utc), verdict=verdict, reason=reason)
            append_line_durably(self.root / use_case / _HISTORY, json.dumps(ended.to_dict()))
            (self.root / use_case / _ACTIVE).unlink()
        return ended

    def history(self, use_case: str) -> list[Experiment]:
        """Ended experiments, newest first."""
        try:
            lines = (self.root / use_case / _HISTORY).read_text().splitlines()
        except FileNotFoundError:
            return []
        return [Experiment.from_dict(json.loads(line)) for line in reversed(lines) if line.strip()]

    def find(self, use_case: str, experiment_id: str = "") -> Experiment:
        """The running experiment or an ended one by id; without an id, the running one, else
        the last ended."""
        running = self.active(use_case)
        candidates = ([running] if running else []) + self.history(use_case)
        for experiment in candidates:
            if not experiment_id or experiment.experiment_id == experiment_id:
                return experiment
        what = f"experiment {experiment_id!r}" if experiment_id else "experiment"
        raise NotFound(f"use case {use_case!r} has no {what}")

    def was_run(self, use_case: str, experiment_id: str) -> bool:
        return any(e.experiment_id == experiment_id for e in self.history(use_case))

    def _locked(self, use_case: str):
        (self.root / use_case).mkdir(parents=True, exist_ok=True)
        return exclusive_lock(self.root / use_case / ".lock")
