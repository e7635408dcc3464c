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
import sys
from pathlib import Path

import pandas as pd

from examples.notifications.population import (PROFILE_PART, make_population, profile_frame,
                                               write_profiles_offline, write_profiles_online)

FEATURES = Path(__file__).resolve().parent / "features.py"
USERS = 1000  # user-00000 ... user-00999, the same population as `make demo`
SEED = 7


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)  # Feast's INFO lines are noise here
    data_dir = args.data_dir.resolve()
    apply_feature_definitions(data_dir)
    profiles = publish_example_profiles(data_dir)
    print(f"{len(profiles)} user profiles ({profiles.user_id.min()} ... {profiles.user_id.max()}) "
          f"offline and online in {data_dir}", flush=True)
    return 0


def apply_feature_definitions(data_dir: Path) -> None:
    """``looper features apply examples/notifications/features.py --data-dir DIR``. It sets
    LOOPER_DATA_DIR in this process (the definitions read it), which is why this module runs
    as its own process."""
    from services.cli import main as looper

    if looper(["features", "apply", str(FEATURES), "--data-dir", str(data_dir)]) != 0:
        raise SystemExit(f"applying {FEATURES} to {data_dir} failed")


def publish_example_profiles(data_dir: Path) -> pd.DataFrame:
    """The example users' profiles: the first run writes them, later runs reuse them."""
    part = data_dir / "offline" / "user_profile" / PROFILE_PART
    if part.exists():
        profiles = pd.read_parquet(part)
    else:
        profiles = profile_frame(make_population(USERS, SEED))
        write_profiles_offline(part.parent, profiles)
    write_profiles_online(data_dir / "feature_repo", profiles)
    return profiles


if __name__ == "__main__":
    sys.exit(main())
