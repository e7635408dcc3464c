"""Simulates the product side of "which of four layouts?" through the Looper client only:
users of different devices and reading habits arrive, the product asks Looper which layout
to show, shows it, and the user opens an article (or not) with a probability that depends
on the layout, the device, how much the user reads, the hour, and a small hidden taste.

The simulator knows every user's truth, so each decision is valued by its expected outcome,
and the best policy (the layout with the highest open probability for each user) is known.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from looper import LooperClient, outcome_event

from examples.simulation import DelayedFeedback, Judged

USE_CASE = "home_layout"
LAYOUTS = ("classic", "grid", "compact", "story")
DEVICES = ("phone", "tablet", "desktop")
# How each layout suits each device (logit): phones want compact, tablets a grid, and
# desktops are best served by today's classic layout.
DEVICE_EFFECT = {
    "classic": {"phone": -0.3, "tablet": -0.1, "desktop": 0.5},
    "grid": {"phone": -0.7, "tablet": 0.9, "desktop": 0.2},
    "compact": {"phone": 0.7, "tablet": -0.3, "desktop": -0.5},
    "story": {"phone": -0.9, "tablet": -0.9, "desktop": -0.9},
}


@dataclass(frozen=True)
class User:
    user_id: str
    device: str
    articles_read_7d: int
    taste: tuple[float, ...]  # hidden: a small personal liking per layout

    def open_probability(self, layout: str, hour_of_day: int) -> float:
        """The truth: how likely this user opens an article on this layout at this hour."""
        logit = (-1.3 + 0.3 * (18 <= hour_of_day <= 23) + DEVICE_EFFECT[layout][self.device]
                 + (0.13 * min(self.articles_read_7d, 16) if layout == "story" else 0.0)  # heavy readers: stories
                 + self.taste[LAYOUTS.index(layout)])
        return 1 / (1 + math.exp(-logit))


def make_users(size: int, seed: int) -> list[User]:
    rng = random.Random(seed)
    return [User(user_id=f"user-{i:05d}", device=rng.choices(DEVICES, weights=(5, 2, 3))[0],
                 articles_read_7d=min(40, int(rng.expovariate(1 / 6))),
                 taste=tuple(rng.gauss(0, 0.15) for _ in LAYOUTS))
            for i in range(size)]


class LayoutProduct:
    """The product: asks Looper for a layout, shows it, reports an open when one happens."""

    use_case = USE_CASE

    def __init__(self, client: LooperClient, users: list[User], seed: int):
        self.client, self.users, self.seed = client, users, seed
        self.feedback = DelayedFeedback(client)

    @classmethod
    def build(cls, client: LooperClient, seed: int, users: int = 600) -> "LayoutProduct":
        return cls(client, make_users(users, seed), seed)

    def decide(self, index: int) -> Judged:
        rng = random.Random(self.seed * 1_000_003 + index)  # the same visit whatever the policy
        user = rng.choice(self.users)
        hour = rng.randrange(24)
        decision_id = f"layout-{self.seed}-{index:07d}"
        decision = self.client.decide(USE_CASE, decision_id, {"user_id": user.user_id},
                                      {"device": user.device, "articles_read_7d": user.articles_read_7d,
                                       "hour_of_day": hour})
        shown = decision.action
        probability = user.open_probability(shown, hour)
        if rng.random() < probability:
            delay = rng.uniform(0.05, 0.6)
            self.feedback.schedule(delay, outcome_event(
                USE_CASE, decision_id, "article_opened", 1.0, event_id=f"open-{decision_id}",
                event_time=datetime.now(timezone.utc) + timedelta(seconds=delay)))
        best = max(user.open_probability(layout, hour) for layout in LAYOUTS)
        return Judged(value=probability, best=best, decision=decision)
