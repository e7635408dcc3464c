"""Starts the real Looper services as a subprocess on free loopback ports: used by the
tests, the demo and anything else that needs a local Looper and must stop it afterwards."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

_LISTENING = re.compile(r"looper (\w+) service listening on ([\d.]+:\d+)")
SERVICES = ("decision", "feedback", "trainer")
LOG_TAIL_CHARS = 20_000


@dataclass
class LooperProcess:
    process: subprocess.Popen
    addresses: dict[str, str]
    data_dir: Path
    log_path: Path

    def client(self, **kwargs):
        from looper import LooperClient

        # A service this process does not run gets an address nothing listens on.
        decision, feedback, trainer = (self.addresses.get(name, "127.0.0.1:9") for name in SERVICES)
        kwargs.setdefault("token_file", self.token_file)
        return LooperClient(decision, feedback, trainer, **kwargs)

    @property
    def token_file(self) -> Path:
        """The local development token: a cluster administrator's, written at first start."""
        return self.data_dir / "looper-token"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Signals the services and waits for them to drain and exit; one that has not
        exited after ``timeout`` seconds is killed (its exit code then says so: -9)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            # A hang is a bug even when the tests pass: the warning reaches the test summary.
            warnings.warn(f"looper serve did not exit within {timeout:g}s of {signal.Signals(sig).name} and was "
                          f"killed; the end of its log:\n{self.log()[-LOG_TAIL_CHARS:]}", stacklevel=2)
            return self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text()


def start_looper(data_dir: Path, service: str = "all", env: dict | None = None,
                 ports: dict[str, int] | None = None, timeout: float = 120, args: list[str] = ()) -> LooperProcess:
    """Runs ``looper serve`` and waits until every started service answers health checks."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"{data_dir.name}-{service}-{time.time_ns()}.log"
    command = [sys.executable, "-m", "services.cli", "serve", service, "--data-dir", str(data_dir), *args]
    for name in SERVICES:
        command += [f"--{name}-port", str((ports or {}).get(name, 0))]
    log_file = open(log_path, "w")
    process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT,
                               env={**os.environ, **(env or {})}, cwd=Path(__file__).resolve().parents[1])
    expected = SERVICES if service == "all" else (service,)
    deadline = time.monotonic() + timeout
    addresses: dict[str, str] = {}
    while len(addresses) < len(expected):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"looper serve did not start:\n{log_path.read_text()}")
        addresses = dict(_LISTENING.findall(log_path.read_text()))
        time.sleep(0.05)
    for address in addresses.values():
        if "--tls-cert" in args:  # the caller holds the certificates; the port is open
            socket.create_connection(address.rsplit(":", 1), timeout=max(deadline - time.monotonic(), 1)).close()
        else:
            wait_healthy(address, deadline - time.monotonic())
    return LooperProcess(process, addresses, data_dir, log_path)


def wait_healthy(address: str, timeout: float) -> None:
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        response = stub.Check(health_pb2.HealthCheckRequest(), timeout=max(timeout, 1), wait_for_ready=True)
        assert response.status == health_pb2.HealthCheckResponse.SERVING
