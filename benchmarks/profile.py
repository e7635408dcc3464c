"""`make profile`: where a Decision process spends its CPU under load, by py-spy.

Trains the bench's notification model through Looper's loop (once: ``--data`` keeps the
data directory for the next run), starts ``looper serve decision --workers 1``, drives
Decide at the given concurrency with the bench's Go load generator, and samples the server
with ``py-spy record`` meanwhile (only the thread holding the GIL is sampled: Python CPU time, not waiting). Prints the
functions that hold the most samples, on their own and with what they call, and writes the
collapsed stacks (flamegraph input) next to the data directory.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import bench, generator, servers, workloads  # noqa: E402
from benchmarks.generator import UNIQUE, Job, Step  # noqa: E402
from benchmarks.otlp_sink import OtlpSink  # noqa: E402
from examples.notifications.population import make_population  # noqa: E402

PY_SPY = Path(sys.executable).parent / "py-spy"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "looper-profile")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--rank", action="store_true", help="rank 100 candidates per call instead")
    parser.add_argument("--traced", action="store_true",
                        help="with tracing on as the bench's traced column (parent-based 1%%, exported over OTLP)")
    parser.add_argument("--top", type=int, default=35)
    args = parser.parse_args(argv)
    users, items = make_population(1000, seed=11), workloads.catalog()
    data = args.data / "looper"
    if not (args.data / "trained").exists():
        args.data.mkdir(parents=True, exist_ok=True)
        bench.train(data, users, items, bench.Clock())
        (args.data / "trained").touch()
    sink = OtlpSink() if args.traced else None
    env = {**bench.TRACING_1PCT, "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint} if sink else servers.NO_TRACING
    server = servers.DecisionServer("profiled", data, 1, env)
    try:
        messages = workloads.rank_requests(users, items) if args.rank else \
            [m.SerializeToString() for m in workloads.decide_requests(users)]
        requests = generator.write_requests(args.data / "requests.bin", messages)
        job = Job(name="profile", steps=[Step(server.address, bench.DECIDE, requests, server.metadata, UNIQUE)],
                  concurrency=args.concurrency, conns=min(args.concurrency, 16), calls=args.calls, warmup=200,
                  server_pids=server.pids(), id_prefix=f"p{int(time.time())}-")
        stacks = args.data / "stacks.txt"
        pid = max(server.pids())  # the worker process (the supervisor is the parent)
        spy = subprocess.Popen([str(PY_SPY), "record", "--pid", str(pid), "--format", "raw", "--rate", "500",
                                "--output", str(stacks), "--nonblocking", "--gil"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(1)
        result = generator.run(job)
        spy.send_signal(2)
        spy.wait(30)
        print(f"c{args.concurrency}: {result['calls_per_s']:,.0f} calls/s, p50 {result['latency_ms']['p50']:.2f} ms, "
              f"{result['calls_per_server_cpu_s']:,.0f} calls per server CPU-s, errors {result['errors']}")
        report(stacks, args.top)
    finally:
        server.stop()
        if sink:
            sink.stop()
    return 0


def report(stacks: Path, top: int) -> None:
    own, inclusive, total = Counter(), Counter(), 0
    for line in stacks.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [f for f in stack.split(";")[1:] if f]  # the first frame is the thread
        if not frames:
            continue
        n = int(count)
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    print(f"{total} samples; written to {stacks}")
    for title, counter in (("own time", own), ("with callees", inclusive)):
        print(f"\n-- {title}")
        for frame, n in counter.most_common(top):
            print(f"{100 * n / total:5.1f}%  {frame[:150]}")


if __name__ == "__main__":
    raise SystemExit(main())
