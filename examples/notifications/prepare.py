"""Prepares a data directory for the notification example, as `make run` does before the
services start: applies the product's Feast definitions (``features.py``) to the data
directory's Feast repo and publishes the example users' profiles offline and online.

    python -m examples.notifications.prepare --data-dir data/run

Idempotent: run again on the same directory, it re-applies the definitions (no change) and
republishes the profiles the first run wrote, with their first timestamps, so decisions
logged in between keep their point-in-time features.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from pathlib import Path

import pandas as pd

from examples.notifications.population import (PROFILE_PART, User, make_population, profile_frame,
                                               write_profiles_offline, write_profiles_online)
from services.platform.data_dir import DataDir

FEATURES = Path(__file__).resolve().parent / "features.py"
ROOT = Path(__file__).resolve().parents[2]
USERS = 1000  # user-00000 ... user-00999, the same population as `make demo`
SEED = 7


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)  # Feast's INFO lines are noise here
    profiles = prepare(args.data_dir)
    print(f"{len(profiles)} user profiles ({profiles.user_id.min()} ... {profiles.user_id.max()}) "
          f"offline and online in {args.data_dir.resolve()}", flush=True)
    return 0


def prepare(data_dir: Path, users: list[User] | None = None) -> pd.DataFrame:
    """Applies the example's Feast definitions and publishes the profiles of ``users`` (by
    default the example's 1,000 users; kept from an earlier preparation if there was one)."""
    apply_feature_definitions(data_dir)
    return publish_example_profiles(data_dir, users)


def apply_feature_definitions(data_dir: Path) -> None:
    """``looper features apply examples/notifications/features.py --data-dir DIR``, run as a
    command of its own: the definitions read where to find the product's tables from its
    environment."""
    applied = subprocess.run([sys.executable, "-m", "services.cli", "features", "apply", str(FEATURES),
                              "--data-dir", str(data_dir)], cwd=ROOT, capture_output=True, text=True)
    if applied.returncode != 0:
        raise SystemExit(f"applying {FEATURES} to {data_dir} failed:\n{applied.stdout}{applied.stderr}")


def publish_example_profiles(data_dir: Path, users: list[User] | None = None) -> pd.DataFrame:
    """The users' profiles, as the product's pipeline would publish them: the first run
    writes them, later runs (without ``users``) reuse them."""
    data = DataDir(data_dir)
    part = profile_table(data) / PROFILE_PART
    if part.exists() and users is None:
        profiles = pd.read_parquet(part)
    else:
        profiles = profile_frame(users or make_population(USERS, SEED))
        write_profiles_offline(part.parent, profiles)
    write_profiles_online(data.features.repo, profiles)
    return profiles


def profile_table(data: DataDir) -> Path:
    """Where the product keeps its profile table (``features.py`` reads it from there)."""
    return data.features.product_tables / "user_profile"


if __name__ == "__main__":
    sys.exit(main())
