"""Simulates the product side of "at which bitrate should this video start?" through the
Looper client only: viewers with different connections and devices start videos, the
player measures the bandwidth (roughly), asks Looper for a start bitrate and plays.

The truth: a session's real bandwidth varies around the viewer's usual one, and the player's
estimate of it is noisy. Starting above what the connection carries makes the video stall
(the closer to or above the bandwidth, the likelier); a stall is reported as ``rebuffered``
and cuts the session short. A higher bitrate otherwise looks better, more so on a big
screen, so people watch longer: the session's ``watch_minutes`` are reported when it ends.
A decision's value is the product metric's: expected minutes watched minus five per
expected stall; the best policy picks, for the session's real bandwidth, the grid value
with the highest value.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from looper import LooperClient, outcome_event

from examples.simulation import DelayedFeedback, Judged

USE_CASE = "start_bitrate"
BITRATES = tuple(range(500, 4001, 500))  # the blueprint's grid
REBUFFER_WORTH = -5.0  # the blueprint's weight of a stall, in minutes
STALL_KEEPS = 0.55  # the share of the session a stall leaves
DEVICE_MINUTES = {"tv": 30.0, "laptop": 18.0, "phone": 10.0}  # a session's length at the lowest bitrate
DEVICE_SENSITIVITY = {"tv": 0.25, "laptop": 0.15, "phone": 0.05}  # longer per doubling of the bitrate


@dataclass(frozen=True)
class Viewer:
    viewer_id: str
    device: str
    network: str
    bandwidth_kbps: float  # what the viewer's connection usually carries


@dataclass(frozen=True)
class Session:
    viewer: Viewer
    bandwidth_kbps: float  # what the connection carries during this session (hidden)
    estimate_kbps: float  # what the player measured

    def stall_probability(self, bitrate: float) -> float:
        return 1 / (1 + math.exp(-10 * (bitrate / self.bandwidth_kbps - 1.0)))

    def minutes_without_stall(self, bitrate: float) -> float:
        device = self.viewer.device
        return DEVICE_MINUTES[device] * (1 + DEVICE_SENSITIVITY[device] * math.log2(bitrate / 500))

    def expected_value(self, bitrate: float) -> float:
        """The truth: expected minutes watched plus the stall's (negative) worth."""
        stall = self.stall_probability(bitrate)
        return self.minutes_without_stall(bitrate) * (1 - (1 - STALL_KEEPS) * stall) + REBUFFER_WORTH * stall


def make_viewers(size: int, seed: int) -> list[Viewer]:
    rng = random.Random(seed)
    viewers = []
    for i in range(size):
        network = rng.choices(("wifi", "cellular"), weights=(6, 4))[0]
        median = 3000 if network == "wifi" else 1500
        viewers.append(Viewer(f"viewer-{i:05d}", rng.choices(("tv", "laptop", "phone"), weights=(3, 3, 4))[0],
                              network, min(20000.0, median * rng.lognormvariate(0, 0.6))))
    return viewers


def start_session(viewer: Viewer, rng: random.Random) -> Session:
    bandwidth = viewer.bandwidth_kbps * rng.lognormvariate(0, 0.2 if viewer.network == "wifi" else 0.3)
    return Session(viewer, bandwidth, round(bandwidth * rng.lognormvariate(0, 0.15), 1))


class PlayerProduct:
    """The video player: asks Looper for a start bitrate, plays, and reports a stall when
    one happens and the minutes watched when the session ends."""

    use_case = USE_CASE

    def __init__(self, client: LooperClient, viewers: list[Viewer], seed: int):
        self.client, self.viewers, self.seed = client, viewers, seed
        self.feedback = DelayedFeedback(client)

    @classmethod
    def build(cls, client: LooperClient, seed: int, viewers: int = 600) -> "PlayerProduct":
        return cls(client, make_viewers(viewers, seed), seed)

    def decide(self, index: int) -> Judged:
        rng = random.Random(self.seed * 1_000_003 + index)  # the same session whatever the policy
        session = start_session(rng.choice(self.viewers), rng)
        viewer = session.viewer
        decision_id = f"play-{self.seed}-{index:07d}"
        decision = self.client.decide(USE_CASE, decision_id, {"viewer_id": viewer.viewer_id},
                                      {"bandwidth_kbps": session.estimate_kbps, "device": viewer.device,
                                       "network": viewer.network})
        bitrate = decision.value
        stalled = rng.random() < session.stall_probability(bitrate)
        minutes = session.minutes_without_stall(bitrate) * (STALL_KEEPS if stalled else 1.0)
        minutes *= rng.lognormvariate(-0.045, 0.3)  # people differ; the mean factor is 1
        now = datetime.now(timezone.utc)
        if stalled:
            delay = rng.uniform(0.05, 0.3)
            self.feedback.schedule(delay, outcome_event(USE_CASE, decision_id, "rebuffered", 1.0,
                                                        event_id=f"stall-{decision_id}",
                                                        event_time=now + timedelta(seconds=delay)))
        delay = rng.uniform(0.3, 0.7)
        self.feedback.schedule(delay, outcome_event(USE_CASE, decision_id, "watch_minutes", round(minutes, 2),
                                                    event_id=f"end-{decision_id}",
                                                    event_time=now + timedelta(seconds=delay)))
        best = max(session.expected_value(b) for b in BITRATES)
        return Judged(value=session.expected_value(bitrate), best=best, decision=decision)
