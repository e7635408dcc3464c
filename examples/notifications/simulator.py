"""Simulates the product side of "send this user a notification now?" through the Looper
client only: users arrive, the product asks Looper, sends or not, and users open (or not)
some time later according to their own, heterogeneous responsiveness."""

from __future__ import annotations

import heapq
import math
import random
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from looper import LooperClient, outcome_event

from examples.notifications.population import User

USE_CASE = "notification_send"


@dataclass
class PhaseResult:
    """What one phase earned, from the simulator's ground truth."""

    name: str
    values: list[float] = field(default_factory=list)  # product value per decision
    treatments: int = 0
    outcomes: int = 0
    model_decisions: int = 0
    explorations: int = 0
    model_versions: set[str] = field(default_factory=set)

    @property
    def decisions(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values) if self.values else math.nan

    @property
    def stderr(self) -> float:
        return statistics.stdev(self.values) / math.sqrt(len(self.values)) if len(self.values) > 1 else math.nan

    def ci95(self) -> tuple[float, float]:
        return self.mean - 1.96 * self.stderr, self.mean + 1.96 * self.stderr


class DelayedFeedback:
    """Reports each open when it happens, as the product would: one background thread
    sends whatever is due in one LogFeedbackBatch call, with the open's own event time."""

    def __init__(self, client: LooperClient):
        self.client = client
        self._heap: list[tuple[float, int, object]] = []
        self._cond = threading.Condition()
        self._counter = 0
        self._closed = False
        self.failures = 0
        self.last_error = ""
        self._thread = threading.Thread(target=self._loop, name="delayed-feedback", daemon=True)
        self._thread.start()

    def schedule(self, delay: float, decision_id: str, event_id: str) -> None:
        opened_at = datetime.now(timezone.utc) + timedelta(seconds=delay)
        event = outcome_event(USE_CASE, decision_id, "opened", 1.0, event_id=event_id, event_time=opened_at)
        with self._cond:
            self._counter += 1
            heapq.heappush(self._heap, (time.monotonic() + delay, self._counter, event))
            self._cond.notify()

    def drain(self) -> None:
        """Waits until every scheduled outcome was sent."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._heap and not self._closed:
                    self._cond.wait()
                if not self._heap:
                    return
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                due = []
                while self._heap and self._heap[0][0] <= time.monotonic() and len(due) < 500:
                    due.append(heapq.heappop(self._heap)[2])
            try:
                self.client.log_feedback_batch(due)
            except Exception as err:  # noqa: BLE001 - counted; the product would retry later
                self.failures += len(due)
                self.last_error = f"{datetime.now(timezone.utc):%H:%M:%S} {err}"


class NotificationSimulator:
    def __init__(self, client: LooperClient, users: list[User], seed: int,
                 outcome_value: float = 1.0, send_cost: float = 0.25, late_fraction: float = 0.03):
        self.client, self.users, self.seed = client, users, seed
        self.outcome_value, self.send_cost, self.late_fraction = outcome_value, send_cost, late_fraction
        self.feedback = DelayedFeedback(client)
        self._next_index = 0
        self._lock = threading.Lock()

    def run(self, result: PhaseResult, decisions: int, concurrency: int = 8,
            only_default: bool = False) -> PhaseResult:
        """Makes ``decisions`` decisions with ``concurrency`` product threads and adds them
        to ``result`` (with ``only_default``, only the decisions made without a model)."""
        with self._lock:
            start, self._next_index = self._next_index, self._next_index + decisions
        with ThreadPoolExecutor(concurrency) as pool:
            for value, sent, opened, decision in pool.map(self._one_decision, range(start, start + decisions)):
                if not (only_default and not decision.is_default):
                    self._add(result, value, sent, opened, decision)
        return result

    def _one_decision(self, index: int):
        rng = random.Random(self.seed * 1_000_003 + index)  # the same world whatever the policy
        user = rng.choice(self.users)
        hour = rng.randrange(24)
        decision_id = f"notif-{self.seed}-{index:07d}"
        decision = self.client.decide(USE_CASE, decision_id, {"user_id": user.user_id},
                                      {"hour_of_day": hour, "platform": user.platform})
        sent = decision.action == "true"
        opened = sent and rng.random() < user.open_probability(hour)
        if opened:
            late = rng.random() < self.late_fraction
            delay = rng.uniform(3.5, 5.0) if late else min(rng.expovariate(1 / 0.6), 2.5)
            self.feedback.schedule(delay, decision_id, f"open-{decision_id}")
        value = self.outcome_value * opened - self.send_cost * sent
        return value, sent, opened, decision

    @staticmethod
    def _add(result: PhaseResult, value: float, sent: bool, opened: bool, decision) -> None:
        result.values.append(value)
        result.treatments += sent
        result.outcomes += opened
        result.model_decisions += not decision.is_default
        result.explorations += decision.is_exploration
        if decision.model_version:
            result.model_versions.add(decision.model_version)
