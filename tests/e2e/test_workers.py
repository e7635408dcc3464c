"""``looper serve --workers N``: the Decision and Feedback services run as N processes on one
port. Connections spread over the workers, every acknowledged decision and outcome is joined
exactly once although several processes wrote them, a killed worker is replaced while the
others keep answering, and SIGTERM stops them all."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from looper import LooperClient

from services.launcher import start_looper
from services.platform.data_dir import DataDir
from services.labels.training_table import TrainingTable
from tests.conftest import SIMPLE_BLUEPRINT

pytestmark = pytest.mark.e2e
WORKERS = 2


def children(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def worker_pids(looper) -> dict[str, set[int]]:
    """The supervisor's workers by service, from their command lines."""
    found: dict[str, set[int]] = {}
    for pid in children(looper.process.pid):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").split()
        except FileNotFoundError:
            continue
        if b"--worker" not in command:
            continue
        service = command[command.index(b"serve") + 1].decode()
        found.setdefault(service, set()).add(pid)
    return found


def segment_owners(folder: Path) -> set[str]:
    """The processes (host-pid) that wrote segments of a log."""
    return {p.name.rsplit("-", 2)[-2] for p in folder.glob("*.log")}


def clients(looper, count: int) -> list[LooperClient]:
    """Separate connections: each client opens its own, and the kernel picks a worker per connection."""
    return [looper.client(max_attempts=5) for _ in range(count)]


def test_workers_share_the_ports_and_join_every_write_exactly_once(tmp_path):
    looper = start_looper(tmp_path / "data", "all", args=["--workers", str(WORKERS)])
    pool = clients(looper, 12)
    try:
        assert {name: len(pids) for name, pids in worker_pids(looper).items()} == {
            "decision": WORKERS, "feedback": WORKERS, "trainer": 1}
        pool[0].apply_blueprint(SIMPLE_BLUEPRINT)
        ids = [f"w-{i}" for i in range(240)]

        def decide_and_report(item: tuple[int, str]) -> None:
            n, decision_id = item
            client = pool[n % len(pool)]
            client.decide("contract_test", decision_id, {"user_id": f"u{n % 7}"}, {"hour_of_day": n % 24})
            client.log_feedback("contract_test", decision_id, "clicked", 1.0, event_id=f"e-{decision_id}")

        with ThreadPoolExecutor(12) as threads:
            list(threads.map(decide_and_report, enumerate(ids)))

        data = DataDir(tmp_path / "data")
        assert len(segment_owners(data.decisions.log)) == WORKERS, "one worker took every connection"
        assert len(segment_owners(data.labels.outcome_log)) == WORKERS
        deadline = time.monotonic() + 30
        while pool[0].join_stats("contract_test").joined_decisions < len(ids) and time.monotonic() < deadline:
            time.sleep(0.2)
        stats = pool[0].join_stats("contract_test")
        assert (stats.joined_decisions, stats.pending_decisions) == (len(ids), 0)
        assert (stats.attributed_outcomes, stats.orphan_outcomes) == (len(ids), 0)
        table = TrainingTable(data.labels.training).read("contract_test")
        assert sorted(table["decision_id"]) == sorted(ids), "a decision was labeled twice or not at all"
        assert set(table["label"]) == {1.0}
    finally:
        for client in pool:
            client.close()
        looper.stop()


def test_a_killed_worker_is_replaced_while_the_others_answer(tmp_path):
    looper = start_looper(tmp_path / "data", "decision", args=["--workers", str(WORKERS)])
    trainer = start_looper(tmp_path / "data", "trainer")
    try:
        with trainer.client() as admin:
            admin.apply_blueprint(SIMPLE_BLUEPRINT)
        before = worker_pids(looper)["decision"]
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        with looper.client(max_attempts=5) as client:  # calls meanwhile reach the surviving worker
            for i in range(50):
                client.decide("contract_test", f"k-{i}", {"user_id": "u1"})
        deadline = time.monotonic() + 20
        while len(worker_pids(looper).get("decision", set()) - {victim}) < WORKERS:
            assert time.monotonic() < deadline, f"no worker replaced pid {victim}:\n{looper.log()}"
            time.sleep(0.1)
        assert f"(pid {victim}) exited with -9; restarting" in looper.log()
        workers = worker_pids(looper)["decision"]
        assert looper.stop() == 0
        assert not any(Path(f"/proc/{pid}").exists() for pid in workers), "a worker outlived SIGTERM"
    finally:
        looper.stop()
        trainer.stop()
