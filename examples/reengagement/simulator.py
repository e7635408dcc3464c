"""Simulates the product side of "send this lapsing user a re-engagement notification?"
through the Looper client only, in a world where causality matters.

Users come back on their own: how likely a user is to be active again within the week
(``returned``, the goal) depends on how long they have been away, how much they used the
product before, and their platform. A notification changes that probability by the user's
*effect*, which differs from the response rate:

- "sure things" (recent, engaged users) return anyway and open notifications the most; the
  notification adds almost nothing and still costs;
- "persuadables" (away for one to four weeks after regular use) return much more often when
  reminded;
- "sleeping dogs" (users who already got many notifications last week, and web users, whose
  notifications are pop-ups) are put off: the notification lowers their chance to return;
- "lost causes" (long gone) neither return nor respond.

The effect is driven only by what the product sees (days inactive, sessions in the last 30
days, notifications in the last 7 days, platform), so a model can learn it. The effects are
larger than real re-engagement effects usually are, so that a few thousand randomized
decisions are enough to learn them.

Outcomes reported: ``opened`` and ``unsubscribed`` (proxies, only when a notification was
sent) and ``returned`` (the goal). The proxies only partly explain the goal: opening goes
with returning among those who were sent one, and unsubscribing with notification fatigue,
but users return without opening anything, and the sure things open the most.

The simulator knows every user's truth: ``true_effect(user)``, the value of each action
(a return is worth the blueprint's ``outcome_value``, a notification costs its
``treatment_cost``), and so what the best policy earns.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml
from looper import LooperClient, outcome_event

from examples.simulation import DelayedFeedback, Judged

BLUEPRINT = Path(__file__).resolve().parent / "blueprint.yaml"
_METRIC = yaml.safe_load(BLUEPRINT.read_text())["product_metric"]
USE_CASE = "reengagement"
RETURN_WORTH = float(_METRIC["outcome_value"])  # a user active again within the week
NOTIFICATION_COST = float(_METRIC["treatment_cost"])
PLATFORMS = ("ios", "android", "web")


def _sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


@dataclass(frozen=True)
class User:
    user_id: str
    days_inactive: int  # days since the last visit
    sessions_30d: int  # sessions in the 30 days before
    notifications_7d: int  # notifications received in the last week
    platform: str

    def context(self) -> dict:
        """What the product sends Looper with each decision."""
        return {"days_inactive": self.days_inactive, "sessions_30d": self.sessions_30d,
                "notifications_7d": self.notifications_7d, "platform": self.platform}

    def return_probability(self, sent: bool) -> float:
        """The truth: how likely the user is active again within the week."""
        baseline = _sigmoid(1.2 - 0.09 * self.days_inactive + 0.35 * math.log1p(self.sessions_30d)
                            - 0.3 * (self.platform == "web"))
        if not sent:
            return baseline
        lapsing = (math.exp(-((self.days_inactive - 16) / 9.0) ** 2)
                   * (0.4 + 0.6 * min(self.sessions_30d, 8) / 8))  # away a few weeks after regular use
        annoyed = 0.07 * max(0, self.notifications_7d - 3) + 0.06 * (self.platform == "web")
        return min(0.99, max(0.01, baseline + 0.32 * lapsing - annoyed))

    def open_probability(self) -> float:
        """How likely the user opens a notification that was sent (engaged users open more)."""
        return _sigmoid(-1.0 + 0.3 * math.log1p(self.sessions_30d) - 0.03 * self.days_inactive
                        + 0.3 * (self.platform == "ios"))

    def unsubscribe_probability(self) -> float:
        return 0.01 + 0.03 * max(0, self.notifications_7d - 3)

    def value(self, sent: bool) -> float:
        """The expected product value of the decision: the return's worth, less the cost of sending."""
        return RETURN_WORTH * self.return_probability(sent) - (NOTIFICATION_COST if sent else 0.0)


def true_effect(user: User) -> float:
    """The notification's effect on the user's probability to return within the week."""
    return user.return_probability(True) - user.return_probability(False)


def make_users(size: int, seed: int) -> list[User]:
    rng = random.Random(seed)
    users = []
    for i in range(size):
        days = min(60, int(rng.expovariate(1 / 14)))
        sessions = min(30, _poisson(rng, max(0.5, 12 * math.exp(-days / 20))))
        users.append(User(f"user-{i:05d}", days, sessions, _poisson(rng, 2.5),
                          rng.choices(PLATFORMS, weights=(45, 40, 15))[0]))
    return users


def _poisson(rng: random.Random, mean: float) -> int:
    count, threshold, product = 0, math.exp(-mean), rng.random()
    while product > threshold:
        count += 1
        product *= rng.random()
    return count


@dataclass(frozen=True)
class Outcome:
    """One decision and its truth."""

    user: User
    sent: bool
    returned: bool  # what happened
    judged: Judged

    @property
    def estimated_effect(self) -> float:
        """The served model's predicted effect: its score of sending minus that of not sending."""
        scores = {item.action_id: item.score for item in self.judged.decision.ranking}
        return scores.get("true", math.nan) - scores.get("false", math.nan)


class ReengagementProduct:
    """The product: asks Looper whether to notify, notifies or not, and reports opens,
    unsubscribes and returns when they happen."""

    use_case = USE_CASE

    def __init__(self, client: LooperClient, users: list[User], seed: int):
        self.client, self.users, self.seed = client, users, seed
        self.feedback = DelayedFeedback(client)
        self.outcomes: dict[int, Outcome] = {}
        self._lock = threading.Lock()
        self.phase = "p0"  # part of each decision id, so that phases may replay the same users

    @classmethod
    def build(cls, client: LooperClient, seed: int, users: int = 5000) -> "ReengagementProduct":
        return cls(client, make_users(users, seed), seed)

    def user_at(self, index: int) -> tuple[User, random.Random]:
        """The ``index``-th visit's user and its random draws: the same whatever the policy."""
        rng = random.Random(self.seed * 1_000_003 + index)
        return rng.choice(self.users), rng

    def decide(self, index: int) -> Judged:
        user, rng = self.user_at(index)
        decision_id = f"reengage-{self.seed}-{self.phase}-{index:07d}"
        decision = self.client.decide(USE_CASE, decision_id, {"user_id": user.user_id}, user.context())
        sent = decision.action == "true"
        returned = self._report(decision_id, user, sent, rng)
        judged = Judged(value=user.value(sent), best=max(user.value(True), user.value(False)), decision=decision)
        with self._lock:
            self.outcomes[index] = Outcome(user, sent, returned, judged)
        return judged

    def _report(self, decision_id: str, user: User, sent: bool, rng: random.Random) -> bool:
        """Draws what happens and schedules each outcome when it happens: an open (sent
        only; returning goes with it), an unsubscribe (sent only), a return within the week
        (compressed into a second). Returns whether the user returned."""
        now = datetime.now(timezone.utc)
        returns = user.return_probability(sent)
        if sent:
            opens = user.open_probability()
            opened = rng.random() < opens
            # P(return | opened) and P(return | not opened) keep P(return) = ``returns``.
            tie = min(0.3, (1 - returns) / (1 - opens), returns / opens)
            returns = returns + tie * (1 - opens) if opened else returns - tie * opens
            if opened:
                self._schedule(decision_id, "opened", rng.uniform(0.05, 0.3), now)
            if rng.random() < user.unsubscribe_probability():
                self._schedule(decision_id, "unsubscribed", rng.uniform(0.1, 0.5), now)
        returned = rng.random() < returns
        if returned:
            self._schedule(decision_id, "returned", rng.uniform(0.1, 0.8), now)
        return returned

    def _schedule(self, decision_id: str, outcome: str, delay: float, now: datetime) -> None:
        self.feedback.schedule(delay, outcome_event(USE_CASE, decision_id, outcome, 1.0,
                                                    event_id=f"{outcome}-{decision_id}",
                                                    event_time=now + timedelta(seconds=delay)))
