"""The worker supervisor with small real processes standing in for the services: it
restarts a worker that dies, gives up on one that keeps dying or reports a configuration
error, stops every worker on request, and holds ports that others cannot take."""

from __future__ import annotations

import socket
import sys
import threading
from pathlib import Path

import pytest

from services.platform.supervisor import Supervisor, Worker, reserve_port


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def run_until(supervisor: Supervisor, condition, timeout: float = 20) -> int:
    """Runs the supervisor (it installs signal handlers: main thread only) until ``condition``."""
    def watch():
        deadline = threading.Event()
        while not condition() and not deadline.wait(0.05):
            pass
        supervisor.stop()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    timer = threading.Timer(timeout, supervisor.stop)
    timer.start()
    try:
        return supervisor.run()
    finally:
        timer.cancel()


def test_a_worker_that_dies_is_started_again(tmp_path: Path):
    starts = tmp_path / "starts"
    # Each start leaves a mark; the first exits at once (a crash), the next ones keep running.
    code = (f"import pathlib, sys, time; p = pathlib.Path({str(starts)!r}); n = len(p.read_text()) "
            "if p.exists() else 0; p.write_text('x' * (n + 1));\nif n == 0: sys.exit(1)\ntime.sleep(60)")
    supervisor = Supervisor([Worker("decision", 1, python(code))], max_deaths=3)
    status = run_until(supervisor, lambda: starts.exists() and len(starts.read_text()) >= 2)
    assert status == 0
    assert len(starts.read_text()) == 2
    assert supervisor.workers[0].process.poll() is not None, "stop() left the worker running"


def test_a_worker_that_keeps_dying_stops_the_supervisor():
    worker = Worker("decision", 1, python("import sys; sys.exit(3)"))
    supervisor = Supervisor([worker, Worker("decision", 2, python("import time; time.sleep(60)"))],
                            max_deaths=3, death_window=60)
    assert run_until(supervisor, lambda: False) == 3
    assert len(worker.deaths) == 3
    assert supervisor.workers[1].process.poll() is not None, "the healthy worker was left running"


def test_a_configuration_error_is_not_retried():
    worker = Worker("feedback", 1, python("import sys; sys.exit(2)"))
    assert run_until(Supervisor([worker], max_deaths=5), lambda: False) == 2
    assert len(worker.deaths) == 1


def test_stop_waits_for_workers_to_drain(tmp_path: Path):
    drained = tmp_path / "drained"
    code = (f"import pathlib, signal, sys, time\n"
            f"def bye(*_):\n    time.sleep(0.3); pathlib.Path({str(drained)!r}).write_text('ok'); sys.exit(0)\n"
            "signal.signal(signal.SIGTERM, bye)\npathlib.Path(sys.argv[1]).write_text('up')\ntime.sleep(60)")
    up = tmp_path / "up"
    supervisor = Supervisor([Worker("decision", 1, [*python(code), str(up)])])
    assert run_until(supervisor, up.exists) == 0
    assert drained.read_text() == "ok"


def test_a_reserved_port_is_shared_only_with_reuse_port_sockets():
    reservation = reserve_port("127.0.0.1", 0)
    port = reservation.getsockname()[1]
    try:
        worker = socket.socket()
        worker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        worker.bind(("127.0.0.1", port))  # a worker binds beside the reservation
        worker.listen()
        worker.close()
        with pytest.raises(OSError):
            with socket.socket() as stranger:
                stranger.bind(("127.0.0.1", port))
    finally:
        reservation.close()


def test_a_port_in_use_cannot_be_reserved():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with pytest.raises(OSError):
            reserve_port("127.0.0.1", listener.getsockname()[1])
