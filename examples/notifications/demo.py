"""The main job (`make demo`): start Looper on embedded defaults, apply the notification
blueprint, and let the simulated product run phase one on the default policy while Looper
collects data and trains, then phase two on the learned policy. Then the product-goal layer,
in a world where causality matters (examples/reengagement): an uplift model against a
response model, an experiment of the two policies that a sequential test ends, and the
policy tuned for a goal no model predicts. Prints a table per phase, then the EXPERIMENT,
TUNING, HTE and DEMO RESULT lines."""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import time
from pathlib import Path

from examples.notifications.population import make_population
from examples.notifications.prepare import prepare
from examples.notifications.simulator import NotificationSimulator, PhaseResult

from looper.tracing import shutdown_tracing

HERE = Path(__file__).resolve().parent
ZIPKIN_PORT = 9411
ROOT = HERE.parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data" / "demo")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--phase-two-decisions", type=int, default=3000)
    parser.add_argument("--phase-one-max-decisions", type=int, default=12000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--product-goal", choices=["on", "off"], default="on",
                        help="after the learned policy: the experiment, tuning and uplift parts")
    parser.add_argument("--tracing", choices=["on", "off"], default="on",
                        help="start Zipkin and trace the services and the product (left running afterwards)")
    parser.add_argument("--trace-sample-ratio", type=float, default=0.2)
    args = parser.parse_args(argv)

    from services.launcher import start_looper

    data_dir = args.data_dir.resolve()
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    users = make_population(args.users, args.seed)
    print(f"== Feast: applying the product's feature definitions and {len(users)} user profiles")
    prepare(data_dir, users)

    tracing = start_tracing(data_dir, args) if args.tracing == "on" else None
    print("== starting Looper (decision, feedback, trainer) on embedded defaults")
    looper = start_looper(data_dir, env=tracing.otel_env(args.trace_sample_ratio) if tracing else None)
    try:
        print("   " + ", ".join(f"{k} {v}" for k, v in sorted(looper.addresses.items())))
        status = run_demo(looper, users, args)
    finally:
        looper.stop()
        shutdown_tracing()
    if tracing and status == 0:
        show_traces(tracing, data_dir)
    return status


def start_tracing(data_dir: Path, args):
    """Zipkin with the OTLP bridge, detached so that its UI outlives the demo."""
    from looper.tracing import configure_tracing
    from services.tracing.backend import preferred_port, start_tracing_backend, stop_detached

    log_dir = data_dir.parent / "tracing"
    stop_detached(log_dir)  # the previous demo's backend
    print("== starting the tracing backend (Zipkin + OTLP bridge)")
    backend = start_tracing_backend(log_dir, preferred_port(ZIPKIN_PORT), 0, detached=True)
    os.environ.update(backend.otel_env(args.trace_sample_ratio))
    configure_tracing("notification-product")  # the product's client spans
    print(f"   tracing UI {backend.ui_url}")
    return backend


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
        goal_lines = product_goal(client, args) if args.product_goal == "on" else []

    print(f"join: {stats.joined_decisions} labeled decisions, {stats.attributed_outcomes} attributed, "
          f"{stats.late_outcomes} late and {stats.orphan_outcomes} orphan outcomes "
          f"({simulator.feedback.failures} outcomes failed to send{': ' if simulator.feedback.failures else ''}"
          f"{simulator.feedback.last_error[:200]})")
    for line in goal_lines:
        print(line)
    diff = learned.mean - default.mean
    se = math.hypot(default.stderr, learned.stderr)
    base = abs(default.mean)
    print(f"DEMO RESULT default_value={default.mean:.4f} learned_value={learned.mean:.4f} "
          f"lift={100 * diff / base:.1f}% ci_low={100 * (diff - 1.96 * se) / base:.1f}% model={model.version}")
    return 0


def product_goal(client, args) -> list[str]:
    """The product-goal layer in the reengagement world; returns its three RESULT lines."""
    from examples.reengagement.hte import measure_hte, print_result
    from examples.reengagement.product_goal import run_policy_experiment, tune_for_goal

    print("== product goal: notify a lapsing user only where the notification makes them come back")
    hte = measure_hte(client, args.seed, evaluation_decisions=1500, concurrency=args.concurrency)
    print_result(hte)
    experiment = run_policy_experiment(client, args.seed, concurrency=args.concurrency)
    tuning = tune_for_goal(client, args.seed, evaluation_decisions=1500, concurrency=args.concurrency)
    if tuning.reason and tuning.tuned_value != tuning.tuned_value:
        print(f"   tuning: {tuning.reason}")
    return [experiment, tuning.line(), hte.line()]


def show_traces(tracing, data_dir: Path) -> None:
    """Picks a traced decision from the decision log and shows that the backend has its
    trace (client, Decision, Feast fetch, inference) and the feedback trace linked to it."""
    from services.decisions.log import iter_decisions
    from services.labels.outcomes import iter_outcomes
    from services.platform.data_dir import DataDir

    data = DataDir(data_dir)
    traced = [r for r in iter_decisions(data.decisions) if _sampled(r.traceparent) and r.model_version]
    opened = {e.decision_id for e in iter_outcomes(data.labels)}
    candidates = [r for r in reversed(traced) if r.decision_id in opened][:300] or traced[-1:]
    if not candidates:
        print("tracing: no sampled decision in the log")
        return
    for record in candidates:  # feedback calls are sampled too: find one whose feedback was traced
        trace_id = record.traceparent.split("-")[1]
        linked = tracing.find_traces("otel.link.0.trace_id", trace_id)
        if linked:
            break
    spans = wait_for_spans(tracing, trace_id)
    services = sorted({s["localEndpoint"]["serviceName"] for s in spans})
    print(f"TRACE decision_id={record.decision_id} trace_id={trace_id} spans={len(spans)} "
          f"services={','.join(services)} steps={','.join(sorted({s['name'] for s in spans if s['name'].startswith('looper.')}))}")
    print(f"   feedback traces linked to it: {len(linked)}")
    print(f"   find it in the UI: {tracing.search_url('looper.decision_id', record.decision_id)}")
    print(f"   the tracing UI keeps running at {tracing.ui_url} (stop it with `make stop-tracing`)")


def _sampled(traceparent: str) -> bool:
    return bool(traceparent) and int(traceparent[-2:], 16) & 1 == 1


def wait_for_spans(tracing, trace_id: str, timeout: float = 20) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            spans = tracing.trace(trace_id)
            if spans or time.monotonic() > deadline:
                return spans
        except OSError:
            if time.monotonic() > deadline:
                return []
        time.sleep(0.5)


def live_model(client, use_case: str):
    from looperpb.v1 import trainer_pb2

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
