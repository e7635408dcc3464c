"""Simulates the product side of a feed through the Looper client only: a user opens the
feed, the candidate generator returns eight posts of the catalog (in no useful order), the
product asks Looper to rank them, shows them in that order, and the user clicks some.

The truth is a cascade-free position model: the user looks at slot ``k`` with probability
``EXAMINE[k]`` (lower slots are seen less) and clicks a post they look at with a probability
that depends on the post (quality, freshness) and on the user (the post's topic against the
topic the user reads most, and a small hidden clickiness). Each click is reported with the
post it concerns. A ranking's value is its expected number of clicks; the best policy
orders the posts by their click probability for this user (best for any decreasing
``EXAMINE``).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from looper import LooperClient, outcome_event

from examples.simulation import DelayedFeedback, Judged

USE_CASE = "feed_ranking"
TOPICS = ("news", "sports", "music", "tech", "food")
DEVICES = ("phone", "desktop")
FEED_SIZE = 8
EXAMINE = tuple(0.8 ** slot for slot in range(FEED_SIZE))  # the chance the user looks at each slot


@dataclass(frozen=True)
class Post:
    post_id: str
    topic: str
    quality: float
    age_hours: float

    @property
    def features(self) -> dict[str, float | str]:
        return {"topic": self.topic, "quality": self.quality, "age_hours": self.age_hours}


@dataclass(frozen=True)
class User:
    user_id: str
    topic: str  # the topic the user reads most
    device: str
    clickiness: float  # hidden

    def click_probability(self, post: Post) -> float:
        """The truth: how likely the user clicks ``post`` once they look at it."""
        logit = (-2.2 + 2.4 * (post.quality - 0.5) + 1.8 * (post.topic == self.topic)
                 - 0.03 * post.age_hours + 0.2 * (self.device == "phone") + self.clickiness)
        return 1 / (1 + math.exp(-logit))


def make_catalog(size: int, seed: int) -> list[Post]:
    rng = random.Random(seed)
    return [Post(f"post-{i:04d}", rng.choice(TOPICS), round(rng.betavariate(2, 2), 3),
                 round(rng.uniform(0, 48), 1)) for i in range(size)]


def make_users(size: int, seed: int) -> list[User]:
    rng = random.Random(seed + 1)
    return [User(f"user-{i:05d}", rng.choice(TOPICS), rng.choice(DEVICES), rng.gauss(0, 0.2)) for i in range(size)]


def expected_clicks(user: User, order: list[Post]) -> float:
    return sum(EXAMINE[slot] * user.click_probability(post) for slot, post in enumerate(order))


class FeedProduct:
    """The product: asks Looper to rank the candidates, shows them, reports each click with
    the post it concerns."""

    use_case = USE_CASE

    def __init__(self, client: LooperClient, users: list[User], catalog: list[Post], seed: int):
        self.client, self.users, self.catalog, self.seed = client, users, catalog, seed
        self.posts = {post.post_id: post for post in catalog}
        self.feedback = DelayedFeedback(client)

    @classmethod
    def build(cls, client: LooperClient, seed: int, users: int = 500, posts: int = 150) -> "FeedProduct":
        return cls(client, make_users(users, seed), make_catalog(posts, seed), seed)

    def decide(self, index: int) -> Judged:
        rng = random.Random(self.seed * 1_000_003 + index)  # the same feed whatever the policy
        user = rng.choice(self.users)
        candidates = rng.sample(self.catalog, FEED_SIZE)
        decision_id = f"feed-{self.seed}-{index:07d}"
        decision = self.client.decide(USE_CASE, decision_id, {"user_id": user.user_id},
                                      {"user_topic": user.topic, "device": user.device},
                                      [(post.post_id, post.features) for post in candidates])
        shown = [self.posts[item.action_id] for item in decision.ranking]
        now = datetime.now(timezone.utc)
        for slot, post in enumerate(shown):
            if rng.random() < EXAMINE[slot] * user.click_probability(post):
                delay = rng.uniform(0.05, 0.6)
                event = outcome_event(USE_CASE, decision_id, "clicked", 1.0, event_id=f"click-{decision_id}-{slot}",
                                      event_time=now + timedelta(seconds=delay))
                event.action_id = post.post_id  # the client's outcome_event does not take it yet
                self.feedback.schedule(delay, event)
        best = sorted(candidates, key=user.click_probability, reverse=True)
        return Judged(value=expected_clicks(user, shown), best=expected_clicks(user, best), decision=decision)
