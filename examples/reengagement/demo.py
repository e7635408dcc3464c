"""`make demo EXAMPLE=reengagement`: a notification whose effect is not its response rate.
Phase one is a randomized experiment (every decision a coin flip) from which Looper trains
an uplift model (an X-learner over CatBoost); then the same users are decided by the
``response`` objective (notify where P(return | notified) is worth the cost) and by the
``uplift`` objective (notify where the effect is). Each decision is valued by the
simulator's truth; the demo prints a table and the HTE RESULT line."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from examples.reengagement.hte import measure_hte, print_result
from examples.simulation import ROOT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data" / "demo-reengagement")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--randomized-decisions", type=int, default=6000)
    parser.add_argument("--evaluation-decisions", type=int, default=2000, help="per policy")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)

    from services.launcher import start_looper

    started = time.monotonic()
    data_dir = args.data_dir.resolve()
    shutil.rmtree(data_dir, ignore_errors=True)
    print("== reengagement: notify a lapsing user only where the notification makes them come back")
    print("== starting Looper (decision, feedback, trainer) on embedded defaults")
    looper = start_looper(data_dir)
    try:
        with looper.client(timeout=10) as client:
            result = measure_hte(client, args.seed, randomized_decisions=args.randomized_decisions,
                                 evaluation_decisions=args.evaluation_decisions, concurrency=args.concurrency)
    except TimeoutError as err:
        print(f"DEMO FAILED: {err}", file=sys.stderr)
        return 1
    finally:
        looper.stop()
    print_result(result)
    print(f"== done in {time.monotonic() - started:.0f}s")
    print(result.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
