"""`make demo EXAMPLE=layouts`: Looper learns which of four home-page layouts to show each
user (a multi-action decision). Phase one shows everyone today's classic layout (with 25%
exploration) while Looper collects data and trains itself; phase two uses the learned
policy. Each decision is valued by the simulator's truth (the probability that the user
opens an article); the demo prints a table per phase and one RESULT line."""

from __future__ import annotations

import sys
from pathlib import Path

from examples.layouts.simulator import LayoutProduct
from examples.simulation import demo_main

BLUEPRINT = Path(__file__).resolve().parent / "blueprint.yaml"


def main(argv: list[str] | None = None) -> int:
    return demo_main("layouts", BLUEPRINT, LayoutProduct.build, argv,
                     summary="layouts: which of four home-page layouts should this user see?",
                     phase_one_decisions=12000, phase_two_decisions=3000)


if __name__ == "__main__":
    sys.exit(main())
