"""`make bench`: Looper's decision path measured against a bare gRPC echo server run in the
same process tree, with tracing off and on, plus the feedback and decision-log paths.

Every figure is measured here, now, on this machine; ratios compare runs of this process
tree only. Latency: sequential calls from one client thread (p50/p99). Throughput: calls
per second from 8 client threads, one channel each, for a fixed number of calls. Looper runs
one process per service.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from examples.notifications.population import make_population  # noqa: E402
from examples.notifications.prepare import prepare as prepare_example  # noqa: E402
from examples.notifications.simulator import NotificationSimulator, PhaseResult  # noqa: E402
from services.launcher import SERVICES, start_looper  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency(call, n: int) -> tuple[float, float]:
    for _ in range(min(50, n)):  # warm-up
        call(0)
    samples = []
    for i in range(n):
        started = time.perf_counter()
        call(i)
        samples.append((time.perf_counter() - started) * 1000)
    return percentile(samples, 0.5), percentile(samples, 0.99)


def throughput(make_call, n: int, threads: int = 8) -> float:
    calls = [make_call() for _ in range(threads)]
    per_thread = n // threads
    barrier = threading.Barrier(threads + 1)

    def worker(k: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            calls[k](k * per_thread + i)

    with ThreadPoolExecutor(threads) as pool:
        for k in range(threads):
            pool.submit(worker, k)
        barrier.wait()
        started = time.perf_counter()
    return per_thread * threads / (time.perf_counter() - started)


class Report:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str]] = []

    def add(self, name: str, figure: str, note: str = "") -> None:
        self.rows.append((name, figure, note))
        print(f"  {name:<46}{figure:>22}  {note}", flush=True)


def echo_baseline(report: Report, n: int) -> tuple[float, float]:
    process = subprocess.Popen([sys.executable, "-m", "benchmarks.echo_server"], cwd=ROOT, stdout=subprocess.PIPE,
                               text=True)
    address = re.search(r"listening on (\S+)", process.stdout.readline()).group(1)
    try:
        def make_call():
            channel = grpc.insecure_channel(address)
            echo = channel.unary_unary("/bench.Echo/Echo")
            payload = b"x" * 200
            return lambda i: echo(payload, timeout=5)
        p50, p99 = latency(make_call(), n)
        rate = throughput(make_call, n)
    finally:
        process.terminate()
        process.wait()
    report.add("bare gRPC echo: latency p50 / p99", f"{p50:.3f} / {p99:.3f} ms", "baseline")
    report.add("bare gRPC echo: throughput (8 threads)", f"{rate:,.0f} calls/s", "baseline")
    return p50, rate


def prepare(data: Path, env: dict | None):
    users = make_population(1000, seed=11)
    prepare_example(data, users)
    return Deployment([start_looper(data, name, env=env) for name in SERVICES]), users


class Deployment:
    """One process per service, as deployed (the label joiner and the trainer then do not
    compete with decisions for the interpreter lock)."""

    def __init__(self, processes):
        self.processes = processes
        self.addresses = {k: v for p in processes for k, v in p.addresses.items()}

    def client(self, **kwargs):
        from looper import LooperClient

        return LooperClient(self.addresses["decision"], self.addresses["feedback"], self.addresses["trainer"],
                            token_file=self.processes[0].token_file, **kwargs)

    def stop(self) -> None:
        for process in self.processes:
            process.stop()


def train_a_model(client, users) -> str:
    """Real data through the loop, then a forced training run, so Decide runs inference."""
    from looperpb.v1 import trainer_pb2

    blueprint = (ROOT / "examples/notifications/blueprint.yaml").read_text()
    blueprint = blueprint.replace("min_labeled_rows: 2000", "min_labeled_rows: 1000000").replace("window: 3s", "window: 1s")
    client.apply_blueprint(blueprint)
    simulator = NotificationSimulator(client, users, seed=11)
    simulator.run(PhaseResult("seed"), 800, concurrency=8)
    simulator.feedback.drain()
    deadline = time.monotonic() + 60
    while client.join_stats("notification_send").joined_decisions < 700 and time.monotonic() < deadline:
        time.sleep(0.5)
    run = client.start_training_run("notification_send", force_promote=True)
    while run.state not in (trainer_pb2.TRAINING_RUN_STATE_SUCCEEDED, trainer_pb2.TRAINING_RUN_STATE_FAILED):
        time.sleep(0.3)
        run = client.get_training_run(run.run_id)
    if run.state != trainer_pb2.TRAINING_RUN_STATE_SUCCEEDED:
        raise SystemExit(f"bench: training failed: {run.error}")
    return run.model_version


def decide_bench(report: Report, label: str, looper, users, n: int, prefix: str) -> tuple[float, float]:
    from looper import LooperClient

    addresses = looper.addresses

    def make_call():
        client = LooperClient(addresses["decision"], addresses["feedback"], addresses["trainer"], timeout=10,
                              tracer_provider=None, token_file=looper.processes[0].token_file)
        return lambda i: client.decide("notification_send", f"{prefix}-{time.monotonic_ns()}-{i}",
                                       {"user_id": users[i % len(users)].user_id},
                                       {"hour_of_day": i % 24, "platform": users[i % len(users)].platform})
    probe = make_call()
    p50, p99 = latency(probe, n)
    rate = throughput(make_call, n)
    report.add(f"Decide ({label}): latency p50 / p99", f"{p50:.3f} / {p99:.3f} ms")
    report.add(f"Decide ({label}): throughput (8 threads)", f"{rate:,.0f} calls/s")
    return p50, rate


def feedback_bench(report: Report, client, n: int) -> None:
    from looper import outcome_event

    started = time.perf_counter()
    for i in range(n):
        client.log_feedback("notification_send", f"fb-{i}", "opened", 1.0, event_id=f"fb-unary-{i}")
    unary = n / (time.perf_counter() - started)
    events = [outcome_event("notification_send", f"fb-{i}", "opened", 1.0, event_id=f"fb-batch-{i}")
              for i in range(n * 10)]
    started = time.perf_counter()
    for i in range(0, len(events), 500):
        client.log_feedback_batch(events[i:i + 500])
    batched = len(events) / (time.perf_counter() - started)
    report.add("LogFeedback unary, one thread", f"{unary:,.0f} events/s", "each fsynced before the ack")
    report.add("LogFeedbackBatch of 500, one thread", f"{batched:,.0f} events/s", f"{batched / unary:.1f}x unary")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=1500)
    parser.add_argument("--tracing", choices=["on", "off"], default="on")
    args = parser.parse_args()
    report = Report()
    print("== baseline: bare gRPC echo (same runtime, same machine)")
    echo_p50, echo_rate = echo_baseline(report, args.calls)
    work = Path(tempfile.mkdtemp(prefix="looper-bench-"))
    print("== Looper, tracing off: Feast online features + CatBoost + policy + fsynced log")
    looper, users = prepare(work / "off", None)
    try:
        with looper.client(timeout=30) as client:
            model = train_a_model(client, users)
            report.add("live model", model)
            off_p50, off_rate = decide_bench(report, "tracing off", looper, users, args.calls, "off")
            feedback_bench(report, client, 300)
    finally:
        looper.stop()
    report.add("Decide vs echo: latency p50", f"{off_p50 / echo_p50:.1f}x", "Looper / bare gRPC")
    report.add("Decide vs echo: throughput", f"{off_rate / echo_rate:.2f}x", "Looper / bare gRPC")
    if args.tracing == "on":
        from services.tracing.backend import start_tracing_backend

        print("== Looper, tracing on (every request sampled, exported over OTLP to Zipkin)")
        backend = start_tracing_backend(work / "tracing")
        looper, users = prepare(work / "on", backend.otel_env(1.0))
        try:
            with looper.client(timeout=30) as client:
                train_a_model(client, users)
                on_p50, on_rate = decide_bench(report, "tracing on", looper, users, args.calls, "on")
        finally:
            looper.stop()
            backend.stop()
        report.add("tracing on / off: latency p50", f"{on_p50 / off_p50:.2f}x", "server-side tracing only")
        report.add("tracing on / off: throughput", f"{on_rate / off_rate:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
