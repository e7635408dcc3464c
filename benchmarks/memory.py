"""`make bench-memory`: each service's resident memory after 0, 100k and 1M decisions, with
outcomes for a tenth of them, to show that memory does not grow with the decisions ever made.

Looper runs one process per service on a temporary data directory, with retention settings
short enough to act within the run (ids remembered 60 s, segments closed every 20 s,
retention every 10 s). Decisions go through DecideBatch (1,000 a call, two client threads),
outcomes through LogFeedbackBatch. Each figure is taken once the label joiner has caught up
with the decisions made so far, so the Feedback process's figure includes its work. The use
case never trains (its minimum is out of reach): training memory scales with the training
set by design and is not what this measures.

Ends with one line per service:
``MEMORY RESULT service=<name> rss_0=<MB> rss_100k=<MB> rss_1m=<MB>``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from looper import decide_request, outcome_event  # noqa: E402
from looperpb.v1 import feedback_pb2  # noqa: E402

from services.launcher import SERVICES, start_looper  # noqa: E402

USE_CASE = "memory_bench"
BLUEPRINT = f"""
name: {USE_CASE}
decision_type: binary
entities: [user_id]
default_decision: true
features:
  context: {{hour_of_day: int64}}
label: {{outcome: clicked, window: 1s}}
policy: {{exploration_rate: 0.1}}
retraining: {{min_labeled_rows: 1000000000}}
"""
SETTINGS = {"LOOPER_IDEMPOTENCY_WINDOW": "60", "LOOPER_SEGMENT_SECONDS": "20", "LOOPER_RETENTION_INTERVAL": "10",
            "OTEL_SDK_DISABLED": "true"}
BATCH = 1000
THREADS = 2


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Load:
    """Decisions in batches from a few threads; a tenth of them get a click."""

    def __init__(self, client):
        self.client = client
        self.made = 0
        self._next = 0
        self._lock = threading.Lock()

    def run_until(self, total: int) -> None:
        threads = [threading.Thread(target=self._worker, args=(total,)) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _worker(self, total: int) -> None:
        while True:
            with self._lock:
                start = self._next
                if start >= total:
                    return
                self._next = min(total, start + BATCH)
            ids = [f"m-{i:08d}" for i in range(start, self._next)]
            requests = [decide_request(USE_CASE, d, {"user_id": f"u{int(d[2:]) % 50_000}"}, {"hour_of_day": 9})
                        for d in ids]
            results = self.client.decide_batch(requests, timeout=120)
            assert all(r.WhichOneof("result") == "response" for r in results), results[0]
            clicks = [outcome_event(USE_CASE, d, "clicked", 1.0, event_id=f"c-{d}") for d in ids[::10]]
            self.client.log_feedback_batch(clicks, timeout=120)
            with self._lock:
                self.made += len(ids)


def wait_for_joiner(client, decision_id: str, timeout: float = 600) -> None:
    """Until the label joiner has labeled the newest decision (it reads the log in order)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get_label(USE_CASE, decision_id).state == feedback_pb2.LABEL_STATE_JOINED:
            return
        time.sleep(0.5)
    raise RuntimeError(f"the label joiner did not reach {decision_id} within {timeout}s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument("--checkpoint", type=int, default=100_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="looper-memory-") as work:
        data = Path(work) / "data"
        processes = {name: start_looper(data, name, env=SETTINGS) for name in SERVICES}
        try:
            client = _client(processes)
            client.apply_blueprint(BLUEPRINT)
            figures = {name: [] for name in SERVICES}
            load = Load(client)
            began = time.monotonic()
            for total in (0, args.checkpoint, args.decisions):
                load.run_until(total)
                if total:
                    wait_for_joiner(client, f"m-{total - 1:08d}")
                for name, process in processes.items():
                    figures[name].append(rss_mb(process.process.pid))
                print(f"{total:>9,} decisions after {time.monotonic() - began:6.0f}s: "
                      + ", ".join(f"{n} {figures[n][-1]:.0f} MB" for n in SERVICES), flush=True)
            disk = sum(f.stat().st_size for f in data.rglob("*") if f.is_file()) / 2**20
            print(f"data directory at the end: {disk:,.0f} MB")
            client.close()
        finally:
            for process in processes.values():
                process.stop()
    for name in SERVICES:
        zero, hundred, million = figures[name]
        print(f"MEMORY RESULT service={name} rss_0={zero:.0f} rss_100k={hundred:.0f} rss_1m={million:.0f}")
    return 0


def _client(processes):
    from looper import LooperClient

    return LooperClient(*(processes[name].addresses[name] for name in SERVICES), timeout=30,
                        token_file=processes["decision"].token_file)


if __name__ == "__main__":
    sys.exit(main())
