"""`make demo EXAMPLE=bitrate`: Looper learns the bitrate a video starts at (a numeric
decision with two outcomes: minutes watched, worth 1 each, and stalls, worth -5). Phase one
starts every video at 1,500 kbps (with 25% exploration over the grid) while Looper collects
data and trains one model per outcome; phase two uses the learned policy, which picks the
value with the best predicted product value. Each session is valued by the simulator's
truth; the demo prints a table per phase and one RESULT line."""

from __future__ import annotations

import sys
from pathlib import Path

from examples.bitrate.simulator import PlayerProduct
from examples.simulation import demo_main

BLUEPRINT = Path(__file__).resolve().parent / "blueprint.yaml"


def main(argv: list[str] | None = None) -> int:
    return demo_main("bitrate", BLUEPRINT, PlayerProduct.build, argv,
                     summary="bitrate: at which bitrate should this video start?",
                     phase_one_decisions=12000, phase_two_decisions=3000)


if __name__ == "__main__":
    sys.exit(main())
