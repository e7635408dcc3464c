"""Starts and queries the embedded tracing backend: Zipkin (installed by the Makefile from
Maven Central into .tools/zipkin) plus the OTLP bridge, on loopback ports."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ZIPKIN_JAR = ROOT / ".tools" / "zipkin" / "zipkin-server-3.5.1-exec.jar"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def preferred_port(port: int) -> int:
    """``port`` when it is free on loopback, else any free port."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return free_port()
    return port


@dataclass
class TracingBackend:
    zipkin_port: int
    bridge_port: int
    processes: list[subprocess.Popen]

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.zipkin_port}/zipkin/"

    @property
    def otlp_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.bridge_port}"

    def otel_env(self, sampler_ratio: float = 1.0) -> dict[str, str]:
        """The standard OTEL_* variables that send a process's telemetry here."""
        return {"OTEL_EXPORTER_OTLP_ENDPOINT": self.otlp_endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": str(sampler_ratio),
                "OTEL_BSP_SCHEDULE_DELAY": "500", "OTEL_METRIC_EXPORT_INTERVAL": "5000"}

    def find_traces(self, tag: str, value: str, lookback_seconds: int = 3600) -> list[list[dict]]:
        """Traces with a span tagged ``tag=value``, through Zipkin's HTTP query API."""
        query = urllib.parse.urlencode({"annotationQuery": f"{tag}={value}", "limit": 50,
                                        "lookback": lookback_seconds * 1000, "endTs": int(time.time() * 1000)})
        return self._get(f"/api/v2/traces?{query}")

    def trace(self, trace_id: str) -> list[dict]:
        return self._get(f"/api/v2/trace/{trace_id}")

    def search_url(self, tag: str, value: str) -> str:
        """A UI link that runs the tag search."""
        query = urllib.parse.urlencode({"annotationQuery": f"{tag}={value}", "lookback": "1h",
                                        "endTs": int(time.time() * 1000) + 3_600_000, "limit": 10})
        return f"{self.ui_url}?{query}"

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"{self.otlp_endpoint}/metrics", timeout=10) as reply:
            return reply.read().decode()

    def _get(self, path: str):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.zipkin_port}{path}", timeout=10) as reply:
            return json.loads(reply.read())

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


def start_tracing_backend(log_dir: Path, zipkin_port: int = 0, bridge_port: int = 0,
                          detached: bool = False, timeout: float = 120) -> TracingBackend:
    """Starts Zipkin (in-memory storage) and the OTLP bridge; waits until both answer.
    ``detached`` lets them outlive this process (the demo leaves the UI up)."""
    if not ZIPKIN_JAR.exists():
        raise FileNotFoundError(f"{ZIPKIN_JAR} is missing: run `make setup`")
    log_dir.mkdir(parents=True, exist_ok=True)
    zipkin_port, bridge_port = zipkin_port or free_port(), bridge_port or free_port()
    common = dict(stderr=subprocess.STDOUT, start_new_session=detached, cwd=ROOT)
    zipkin = subprocess.Popen(
        ["java", "-Xmx512m", "-XX:+UseSerialGC", "-jar", str(ZIPKIN_JAR), "--armeria.ports[0].ip=127.0.0.1",
         f"--armeria.ports[0].port={zipkin_port}", "--logging.level.root=WARN"],
        stdout=open(log_dir / "zipkin.log", "w"), env={**os.environ, "STORAGE_TYPE": "mem"}, **common)
    bridge = subprocess.Popen(
        [sys.executable, "-m", "services.tracing.otlp_to_zipkin", "--listen", f"127.0.0.1:{bridge_port}",
         "--zipkin", f"http://127.0.0.1:{zipkin_port}"], stdout=open(log_dir / "bridge.log", "w"), **common)
    backend = TracingBackend(zipkin_port, bridge_port, [zipkin, bridge])
    (log_dir / "pids").write_text(f"{zipkin.pid} {bridge.pid}\n")
    deadline = time.monotonic() + timeout
    for url in (f"http://127.0.0.1:{zipkin_port}/health", f"http://127.0.0.1:{bridge_port}/health"):
        while True:
            try:
                urllib.request.urlopen(url, timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline or zipkin.poll() is not None or bridge.poll() is not None:
                    backend.stop()
                    raise RuntimeError(f"tracing backend did not start; see {log_dir}") from None
                time.sleep(0.3)
    return backend


def stop_detached(log_dir: Path) -> None:
    """Stops a backend that a previous process started detached."""
    pids = (log_dir / "pids").read_text().split() if (log_dir / "pids").exists() else []
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 20  # let them go, so their ports are free again
    while any(_alive(int(pid)) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
