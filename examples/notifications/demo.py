"""The main job (`make demo`): start Looper on embedded defaults, apply the notification
blueprint, and let the simulated product run phase one on the default policy while Looper
collects data and trains, then phase two on the learned policy. Prints a table per phase
and one DEMO RESULT line."""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

from examples.notifications.population import make_population, publish_profiles
from examples.notifications.simulator import NotificationSimulator, PhaseResult

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data" / "demo")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--phase-two-decisions", type=int, default=5000)
    parser.add_argument("--phase-one-max-decisions", type=int, default=12000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)

    from services.launcher import start_looper

    data_dir = args.data_dir.resolve()
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    users = make_population(args.users, args.seed)
    print(f"== Feast: applying the product's feature definitions and {len(users)} user profiles")
    subprocess.run([sys.executable, "-m", "services.cli", "features", "apply", str(HERE / "features.py"),
                    "--data-dir", str(data_dir)], check=True, cwd=ROOT)
    publish_profiles(data_dir / "feature_repo", data_dir / "offline" / "user_profile", users)

    print("== starting Looper (decision, feedback, trainer) on embedded defaults")
    looper = start_looper(data_dir)
    try:
        print("   " + ", ".join(f"{k} {v}" for k, v in sorted(looper.addresses.items())))
        return run_demo(looper, users, args)
    finally:
        looper.stop()


def run_demo(looper, users, args) -> int:
    with looper.client(timeout=10) as client:
        blueprint, _ = client.apply_blueprint((HERE / "blueprint.yaml").read_text())
        print(f"== applied blueprint {blueprint.use_case} v{blueprint.version}")
        simulator = NotificationSimulator(client, users, args.seed)

        print("== phase one: default policy (send to everyone, 10% exploration) while Looper learns")
        default = PhaseResult("default policy")
        started = time.monotonic()
        model = None
        while model is None and default.decisions < args.phase_one_max_decisions:
            simulator.run(default, 500, args.concurrency, only_default=True)
            model = live_model(client, blueprint.use_case)
            print(f"   {default.decisions} default decisions, "
                  f"{client.join_stats(blueprint.use_case).joined_decisions} labeled, "
                  f"live model: {model.version if model else 'none yet'}")
        if model is None:
            print("DEMO FAILED: no model was trained in phase one", file=sys.stderr)
            return 1
        print(f"   model {model.version} live after {time.monotonic() - started:.0f}s: "
              + ", ".join(f"{k}={v:.3f}" for k, v in sorted(model.metrics.items())))

        print("== phase two: learned policy")
        learned = simulator.run(PhaseResult("learned policy"), args.phase_two_decisions, args.concurrency)
        simulator.feedback.drain()
        stats = client.join_stats(blueprint.use_case)

    print_table([default, learned])
    print(f"join: {stats.joined_decisions} labeled decisions, {stats.attributed_outcomes} attributed, "
          f"{stats.late_outcomes} late and {stats.orphan_outcomes} orphan outcomes "
          f"({simulator.feedback.failures} feedback calls failed)")
    diff = learned.mean - default.mean
    se = math.hypot(default.stderr, learned.stderr)
    base = abs(default.mean)
    print(f"DEMO RESULT default_value={default.mean:.4f} learned_value={learned.mean:.4f} "
          f"lift={100 * diff / base:.1f}% ci_low={100 * (diff - 1.96 * se) / base:.1f}% model={model.version}")
    return 0


def live_model(client, use_case: str):
    from looper.v1 import trainer_pb2

    return next((m for m in client.list_models(use_case) if m.stage == trainer_pb2.MODEL_STAGE_LIVE), None)


def print_table(phases: list[PhaseResult]) -> None:
    header = f"{'phase':<16}{'decisions':>10}{'by model':>10}{'sends':>8}{'opens':>8}{'value/decision':>16}{'95% CI':>20}"
    print(header)
    print("-" * len(header))
    for p in phases:
        low, high = p.ci95()
        print(f"{p.name:<16}{p.decisions:>10}{p.model_decisions:>10}{p.treatments:>8}{p.outcomes:>8}"
              f"{p.mean:>16.4f}{f'[{low:.4f}, {high:.4f}]':>20}")


if __name__ == "__main__":
    sys.exit(main())
