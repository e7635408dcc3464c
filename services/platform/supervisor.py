"""Runs a service as several worker processes on one port.

Python runs one call's code at a time per process, so a service uses more than one core
only as several processes. The supervisor reserves each service's port, starts the workers
with ``SO_REUSEPORT`` (the kernel spreads new connections over them), restarts a worker that
dies, and on SIGTERM asks every worker to drain and stop. The workers share nothing but the
data directory, which is built for it: each writes log segments of its own, ids are claimed
in a shared SQLite index, and single-process work (the label joiner's pass, retention) runs
under an flock.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import socket
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field

log = logging.getLogger("looper.supervisor")

CONFIG_ERROR = 2  # a worker that exits with it will not do better when restarted
_PR_SET_PDEATHSIG = 1


@dataclass
class Worker:
    service: str
    number: int
    command: list[str]
    process: subprocess.Popen | None = None
    deaths: deque = field(default_factory=lambda: deque(maxlen=8))  # monotonic times of recent deaths

    @property
    def name(self) -> str:
        return f"{self.service} worker {self.number}"


def reserve_port(host: str, port: int) -> socket.socket:
    """Holds ``host:port`` (a free one when 0) for the workers: a bound, not listening socket
    with SO_REUSEPORT, so only processes that also ask for it (the workers) can bind there.
    Fails when anything else already uses the port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if port:
        with socket.socket(family, socket.SOCK_STREAM) as probe:  # without SO_REUSEPORT: is anyone there?
            probe.bind((host, port))
    reservation = socket.socket(family, socket.SOCK_STREAM)
    reservation.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    reservation.bind((host, port))
    return reservation


class Supervisor:
    """Keeps the workers running until SIGTERM or SIGINT. A worker that exits is restarted
    after a pause that grows with repeated deaths; one that keeps dying (``max_deaths``
    within ``death_window`` seconds) or reports a configuration error stops them all."""

    def __init__(self, workers: list[Worker], grace: float = 10.0, max_deaths: int = 5,
                 death_window: float = 60.0):
        self.workers, self.grace = workers, grace
        self.max_deaths, self.death_window = max_deaths, death_window
        self._stop = threading.Event()

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self._stop.set())
        for worker in self.workers:
            self._start(worker)
        status = 0
        while not self._stop.wait(0.2):
            status = self._tend()
            if status:
                break
        self._stop_all()
        return status

    def stop(self) -> None:
        """Asks ``run`` to stop every worker and return (what SIGTERM does)."""
        self._stop.set()

    def _tend(self) -> int:
        """Restarts the workers that exited; non-zero when the supervisor should give up."""
        now = time.monotonic()
        for worker in self.workers:
            code = worker.process.poll()
            if code is None:
                continue
            worker.deaths.append(now)
            recent = [t for t in worker.deaths if now - t < self.death_window]
            if code == CONFIG_ERROR or len(recent) >= self.max_deaths:
                log.error("%s (pid %d) exited with %d, %d times in %.0f s: stopping every worker", worker.name,
                          worker.process.pid, code, len(recent), self.death_window)
                return code or 1
            pause = min(0.25 * 2 ** (len(recent) - 1), 5.0)
            log.warning("%s (pid %d) exited with %d; restarting it in %.2f s", worker.name, worker.process.pid,
                        code, pause)
            if self._stop.wait(pause):
                return 0
            self._start(worker)
        return 0

    def _start(self, worker: Worker) -> None:
        worker.process = subprocess.Popen(worker.command, preexec_fn=_die_with_parent)
        log.info("%s started (pid %d)", worker.name, worker.process.pid)

    def _stop_all(self) -> None:
        running = [w.process for w in self.workers if w.process and w.process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)  # each drains its in-flight calls, then flushes
        deadline = time.monotonic() + self.grace + 20
        for process in running:
            try:
                process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                log.error("pid %d did not stop in time; killing it", process.pid)
                process.kill()
                process.wait()


def _die_with_parent() -> None:
    """A worker gets SIGTERM when the supervisor dies, even by SIGKILL: no orphans keep the port."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:  # not Linux: orphans are possible, the port reservation is not
        pass
