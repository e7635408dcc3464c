"""`make demo EXAMPLE=feed_ranking`: Looper learns to order a feed of eight candidate posts
for each user (a ranking decision with candidate features and a position effect). Phase one
shows the candidates as the candidate generator returns them while Looper collects clicks,
each naming its post, and trains itself; phase two ranks with the learned model. Each feed
is valued by the simulator's truth (its expected clicks); the demo prints a table per phase
and one RESULT line."""

from __future__ import annotations

import sys
from pathlib import Path

from examples.feed_ranking.simulator import FeedProduct
from examples.simulation import demo_main

BLUEPRINT = Path(__file__).resolve().parent / "blueprint.yaml"


def main(argv: list[str] | None = None) -> int:
    return demo_main("feed_ranking", BLUEPRINT, FeedProduct.build, argv,
                     summary="feed_ranking: in which order should this user's feed show its posts?",
                     phase_one_decisions=6000, phase_two_decisions=2000)


if __name__ == "__main__":
    sys.exit(main())
