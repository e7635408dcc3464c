"""What the bench asks for: the two use cases it trains through Looper's own loop (the
notification example and a ranking of catalog items with numeric candidate features), and
the requests each workload sends, serialized once with the real protobuf classes so that
the Go generator only moves bytes."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path

from looper import decide_request, outcome_event
from looperpb.v1 import decision_pb2, trainer_pb2

from benchmarks.generator import UNIQUE
from examples.notifications.population import User
from examples.notifications.simulator import NotificationSimulator, PhaseResult

ROOT = Path(__file__).resolve().parents[1]
NOTIFICATIONS = "notification_send"
RANKING = "bench_feed"
RANKING_BLUEPRINT = f"""
name: {RANKING}
description: Order catalog items for a user's feed (the bench's ranking use case).
decision_type: ranking
entities: [user_id]
default_decision: as_given
features:
  feast: [user_profile:tenure_days, user_profile:sessions_7d, user_profile:country]
  candidate: {{price: double, quality: double, freshness_hours: int64}}
label: {{outcome: clicked, window: 1s}}
model:
  params: {{iterations: 200, depth: 5, learning_rate: 0.1}}
policy: {{exploration_rate: 0.1}}
retraining: {{min_labeled_rows: 1000000000}}
"""
CATALOG_SIZE = 2000
RANKED = 100  # candidates in one ranking call


@dataclass(frozen=True)
class Item:
    item_id: str
    price: float
    quality: float
    freshness_hours: int


def catalog(seed: int = 5) -> list[Item]:
    rng = random.Random(seed)
    return [Item(f"item-{i:05d}", round(rng.lognormvariate(3, 0.8), 2), round(rng.random(), 4),
                 rng.randrange(0, 24 * 14)) for i in range(CATALOG_SIZE)]


def candidates(items: list[Item]) -> list[tuple[str, dict]]:
    return [(i.item_id, {"price": i.price, "quality": i.quality, "freshness_hours": i.freshness_hours})
            for i in items]


# --- training through the loop ---------------------------------------------------------

def train_notifications(client, users: list[User]) -> str:
    """Decisions from the example's simulator, their opens, then a forced training run."""
    blueprint = (ROOT / "examples/notifications/blueprint.yaml").read_text()
    blueprint = blueprint.replace("min_labeled_rows: 2000", "min_labeled_rows: 1000000000").replace(
        "window: 3s", "window: 1s")
    client.apply_blueprint(blueprint)
    simulator = NotificationSimulator(client, users, seed=11)
    simulator.run(PhaseResult("seed"), 800, concurrency=8)
    simulator.feedback.drain()
    wait_joined(client, NOTIFICATIONS, 700)
    return train(client, NOTIFICATIONS)


def train_ranking(client, users: list[User], items: list[Item], decisions: int = 300, shown: int = 20) -> str:
    """Feeds of ``shown`` catalog items; users click the better and cheaper items near the
    top more often; the clicks name the item they concern; then a forced training run."""
    client.apply_blueprint(RANKING_BLUEPRINT)
    rng = random.Random(3)
    requests = []
    for d in range(decisions):
        user = rng.choice(users)
        requests.append(decide_request(RANKING, f"train-feed-{d:05d}", {"user_id": user.user_id}, {},
                                       candidates(rng.sample(items, shown))))
    by_id = {i.item_id: i for i in items}
    events = []
    for start in range(0, len(requests), 100):
        for result in client.decide_batch(requests[start:start + 100], timeout=120):
            decision = result.response.decision
            for slot, scored in enumerate(decision.ranking):
                item = by_id[scored.action_id]
                appeal = 0.6 * item.quality - 0.004 * item.price - 0.05 * slot
                if rng.random() < max(0.02, min(0.9, appeal)):
                    event = outcome_event(RANKING, decision.decision_id, "clicked", 1.0,
                                          event_id=f"click-{decision.decision_id}-{scored.action_id}")
                    event.action_id = scored.action_id
                    events.append(event)
    for start in range(0, len(events), 500):
        client.log_feedback_batch(events[start:start + 500], timeout=60)
    wait_joined(client, RANKING, int(decisions * 0.9))
    return train(client, RANKING)


def wait_joined(client, use_case: str, joined: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while client.join_stats(use_case).joined_decisions < joined:
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: the label joiner joined fewer than {joined} {use_case} decisions in {timeout}s")
        time.sleep(0.5)


def train(client, use_case: str) -> str:
    run = client.start_training_run(use_case, force_promote=True)
    while run.state not in (trainer_pb2.TRAINING_RUN_STATE_SUCCEEDED, trainer_pb2.TRAINING_RUN_STATE_FAILED):
        time.sleep(0.3)
        run = client.get_training_run(run.run_id)
    if run.state != trainer_pb2.TRAINING_RUN_STATE_SUCCEEDED:
        raise SystemExit(f"bench: training {use_case} failed: {run.error}")
    return run.model_version


# --- requests --------------------------------------------------------------------------

def decide_requests(users: list[User], count: int = 1000, seed: int = 1) -> list[decision_pb2.DecideRequest]:
    """Notification decisions for random users at random hours; ids filled in per call."""
    rng = random.Random(seed)
    requests = []
    for _ in range(count):
        user = rng.choice(users)
        requests.append(decide_request(NOTIFICATIONS, UNIQUE, {"user_id": user.user_id},
                                       {"hour_of_day": rng.randrange(24), "platform": user.platform}))
    return requests


def batch_requests(users: list[User], size: int, count: int = 20) -> list[bytes]:
    singles = decide_requests(users, size * count, seed=2)
    return [decision_pb2.DecideBatchRequest(requests=singles[i * size:(i + 1) * size]).SerializeToString()
            for i in range(count)]


def rank_requests(users: list[User], items: list[Item], count: int = 50) -> list[bytes]:
    """A user's feed: RANKED catalog items, each with its numeric features."""
    rng = random.Random(4)
    return [decide_request(RANKING, UNIQUE, {"user_id": rng.choice(users).user_id}, {},
                           candidates(rng.sample(items, RANKED))).SerializeToString() for _ in range(count)]


def echo_payloads(requests: list[decision_pb2.DecideRequest]) -> list[bytes]:
    """Bytes the size of a Decide request (the echo answers them as they came)."""
    return [b"x" * r.ByteSize() for r in requests[:50]]
