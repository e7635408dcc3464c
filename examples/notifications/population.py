"""A seeded population of users with heterogeneous responsiveness to notifications, and
the product's data pipeline that writes their profiles to Feast."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

PLATFORMS = ("ios", "android", "web")
COUNTRIES = ("us", "br", "in", "de")
PROFILE_PART = "part-000000.parquet"  # the one part file of the profile table


@dataclass(frozen=True)
class User:
    user_id: str
    tenure_days: int
    sessions_7d: int
    notif_opens_30d: int
    avg_session_minutes: float
    country: str
    platform: str
    affinity: float  # hidden: how much this user likes notifications; only behaviour reveals it

    def open_probability(self, hour_of_day: int) -> float:
        """How likely the user opens a notification sent at this hour."""
        logit = (-1.9 + 0.55 * math.log1p(self.sessions_7d) + 0.25 * self.notif_opens_30d
                 - 0.002 * self.tenure_days + {"ios": 0.5, "android": 0.1, "web": -0.8}[self.platform]
                 + (0.7 if 18 <= hour_of_day <= 22 else -0.9 if hour_of_day < 7 else 0.0)
                 + 1.6 * self.affinity)
        return 1 / (1 + math.exp(-logit))


def make_population(size: int, seed: int) -> list[User]:
    rng = random.Random(seed)
    users = []
    for i in range(size):
        affinity = rng.gauss(0, 1)
        users.append(User(
            user_id=f"user-{i:05d}",
            tenure_days=int(rng.expovariate(1 / 300)),
            sessions_7d=int(rng.expovariate(1 / 6)),
            notif_opens_30d=min(12, int(rng.expovariate(1 / 2) + max(0.0, affinity))),
            avg_session_minutes=round(rng.lognormvariate(1.5, 0.6), 2),
            country=rng.choice(COUNTRIES),
            platform=rng.choices(PLATFORMS, weights=(4, 4, 2))[0],
            affinity=affinity,
        ))
    return users


def profile_frame(users: list[User]) -> pd.DataFrame:
    now = datetime.now(timezone.utc)
    return pd.DataFrame({
        "user_id": [u.user_id for u in users],
        "tenure_days": [u.tenure_days for u in users],
        "sessions_7d": [u.sessions_7d for u in users],
        "notif_opens_30d": [u.notif_opens_30d for u in users],
        "avg_session_minutes": [u.avg_session_minutes for u in users],
        "country": [u.country for u in users],
        "event_timestamp": [now] * len(users),
    })


def publish_profiles(repo: Path, profile_folder: Path, users: list[User]) -> None:
    """The product's pipeline: profiles to the offline table and the online store."""
    frame = profile_frame(users)
    write_profiles_offline(profile_folder, frame)
    write_profiles_online(repo, frame)


def write_profiles_offline(profile_folder: Path, frame: pd.DataFrame) -> Path:
    """Writes the profile table's part file whole or not at all (renamed into place; the
    temporary name does not match the source's ``*.parquet`` glob)."""
    profile_folder.mkdir(parents=True, exist_ok=True)
    part = profile_folder / PROFILE_PART
    partial = part.with_name(part.name + ".partial")
    frame.to_parquet(partial, index=False)
    partial.replace(part)
    return part


def write_profiles_online(repo: Path, frame: pd.DataFrame) -> None:
    from feast import FeatureStore

    FeatureStore(repo_path=str(repo)).write_to_online_store("user_profile", frame)
