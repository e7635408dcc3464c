"""Runs each language's client suite for the cross-language tests and reads their results;
starts the real services they run against.

The services run in one process on loopback ports chosen here, with tracing on into a local
OTLP sink, so that a test can stop them and start them again on the same ports. A language
suite asks for that through files in the directory named by LOOPER_RESTART_DIR (the restart
handshake; each SDK's real-server test is the other side):

1. the suite creates ``ready`` once its client is connected;
2. the harness stops the services (nothing listens on their ports any more) and creates
   ``stopped``;
3. the suite issues its calls and creates ``calling``;
4. the harness starts the services again on the same ports; the calls, retried on
   UNAVAILABLE, then succeed.

Each side waits for the other's file with a generous deadline, never for a fixed time.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from services.launcher import LooperProcess, start_looper

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = ROOT / "clients"
STAMPS = ROOT / ".tools" / "stamps"
SERVICES = ("decision", "feedback", "trainer")


def require_clients_setup() -> None:
    """Skips (or, under `make test-clients`, fails) when the client toolchains are not set up."""
    missing = [tool for tool in ("go", "mvn", "node", "npm") if shutil.which(tool) is None]
    missing += [f".tools/stamps/{s}" for s in ("go-plugins", "go-mod", "npm", "maven") if not (STAMPS / s).exists()]
    if missing:
        message = f"client toolchains not set up (missing: {', '.join(missing)}); run `make setup-clients`"
        if os.environ.get("LOOPER_REQUIRE_CLIENTS") == "1":
            pytest.fail(message)
        pytest.skip(message)


def run(command: list[str], cwd: Path, env: dict[str, str], timeout: float = 240, during=None) -> str:
    """Runs a suite; fails the test with its output when it fails. ``during(process)``, when
    given, is called while the suite runs (e.g. to answer its restart handshake)."""
    with sdk_lock(cwd):
        return _run(command, cwd, env, timeout, during)


_HELD: set[str] = set()  # the SDK folders this process holds the lock of


@contextlib.contextmanager
def sdk_lock(cwd: Path):
    """One build or suite at a time in an SDK's folder: test files run on several processes
    (pytest-xdist), and two Maven runs (or a `tsc` and a `node --test`) in one folder share its
    build output, so one would compile or read while the other rewrites it. Held already by
    this process (a build and the run of what it built, under one lock), it is not taken again."""
    sdk = cwd.relative_to(CLIENTS).parts[0]
    if sdk in _HELD:
        yield
        return
    STAMPS.mkdir(parents=True, exist_ok=True)
    with open(STAMPS / f"{sdk}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _HELD.add(sdk)
        try:
            yield
        finally:
            _HELD.discard(sdk)
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run(command: list[str], cwd: Path, env: dict[str, str], timeout: float, during) -> str:
    began = time.monotonic()
    problem = None
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=stdout, stderr=stderr, text=True)
        try:
            if during is not None:
                during(process)
            process.wait(max(1.0, timeout - (time.monotonic() - began)))
        except (Exception, pytest.fail.Exception) as err:  # shown below, with the suite's output
            problem = err
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        stdout.seek(0)
        stderr.seek(0)
        output = stdout.read() + stderr.read()
    if problem is not None or process.returncode != 0:
        what = problem or f"exited {process.returncode}"
        pytest.fail(f"{' '.join(command)} in {cwd.relative_to(ROOT)}: {what}\n{output[-8000:]}")
    print(f"{' '.join(command)[:160]}: {time.monotonic() - began:.1f}s")
    return output


def go_results(output: str) -> dict[str, str]:
    """Test name -> PASS/FAIL/SKIP from `go test -v` output."""
    return {m.group(2): m.group(1) for m in re.finditer(r"--- (PASS|FAIL|SKIP): (\w+)", output)}


def node_results(output: str) -> dict[str, str]:
    """Test name -> pass/fail/skip from the TAP output of `node --test` (top-level tests)."""
    results = {}
    for m in re.finditer(r"^(ok|not ok) \d+ - (.+?)(?: # (SKIP|TODO)\b.*)?$", output, re.M):
        results[m.group(2)] = "skip" if m.group(3) == "SKIP" else "pass" if m.group(1) == "ok" else "fail"
    return results


def surefire_results(reports: Path) -> dict[str, str]:
    """Test name -> passed/failed/skipped from Surefire's XML reports."""
    results = {}
    for report in reports.glob("TEST-*.xml"):
        for case in ET.parse(report).getroot().iter("testcase"):
            outcome = "passed"
            for child in case:
                if child.tag in ("failure", "error"):
                    outcome = "failed"
                elif child.tag == "skipped":
                    outcome = "skipped"
            results[f"{case.get('classname').rsplit('.', 1)[-1]}.{case.get('name')}"] = outcome
    return results


def fenced_block(markdown: str, info: str) -> str:
    """The body of the first ```info fenced block of a Markdown document."""
    m = re.search(rf"^```{re.escape(info)}\n(.*?)^```$", markdown, re.M | re.S)
    assert m, f"no ```{info} block"
    return m.group(1)


def free_ports(count: int) -> list[int]:
    """Loopback ports that are free now (bound at the same time, so all different)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def wait_for_file(path: Path, process: subprocess.Popen, timeout: float) -> bool:
    """Waits until ``path`` exists (True) or ``process`` has exited without creating it (False)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            return path.exists()
        if time.monotonic() > deadline:
            pytest.fail(f"the suite did not create {path.name} within {timeout:.0f}s")
        time.sleep(0.05)
    return True


class OtlpSink:
    """An OTLP/HTTP endpoint on a free loopback port that keeps the (service name, trace id)
    of every span exported to it, so a test can see a trace reach a service's exporter."""

    def __init__(self) -> None:
        self._spans: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path == "/v1/traces":
                    sink._record(trace_service_pb2.ExportTraceServiceRequest.FromString(body))
                self.send_response(200)  # an empty body is an empty Export*ServiceResponse
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, name="otlp-sink", daemon=True).start()

    def _record(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        with self._lock:
            for resource_spans in request.resource_spans:
                service = next((a.value.string_value for a in resource_spans.resource.attributes
                                if a.key == "service.name"), "")
                for scope_spans in resource_spans.scope_spans:
                    self._spans.update((service, span.trace_id.hex()) for span in scope_spans.spans)

    def otel_env(self) -> dict[str, str]:
        """Tracing on, every span sampled and exported here within a fraction of a second."""
        return {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{self._server.server_port}",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_TRACES_SAMPLER": "always_on",
                "OTEL_BSP_SCHEDULE_DELAY": "200", "OTEL_METRIC_EXPORT_INTERVAL": "60000"}

    def wait_for_trace(self, service: str, trace_id: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if (service, trace_id) in self._spans:
                    return
            assert time.monotonic() < deadline, f"{service} exported no span of trace {trace_id} in {timeout:.0f}s"
            time.sleep(0.1)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class Stack:
    """The three real services in one process, on loopback ports chosen here and traced into
    an OtlpSink; they can be stopped and started again on the same ports. ``token`` is the
    local cluster administrator's, written at the first start (it stays across restarts)."""

    def __init__(self, data_dir: Path, sink: OtlpSink) -> None:
        self.data_dir = data_dir
        self.sink = sink
        self.ports = dict(zip(SERVICES, free_ports(len(SERVICES))))
        self.addresses = {name: f"127.0.0.1:{port}" for name, port in self.ports.items()}
        self._process: LooperProcess | None = None
        self.start()
        self.token = self._process.token_file.read_text().strip()

    def start(self) -> None:
        self._process = start_looper(self.data_dir, ports=self.ports, env=self.sink.otel_env())
        assert self._process.addresses == self.addresses, self._process.addresses

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None

    def client(self, **kwargs):
        """A Python client of the services, with the administrator's token unless ``kwargs`` say otherwise."""
        assert self._process is not None, "the services are stopped"
        return self._process.client(**kwargs)

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a language suite: the services' addresses, the administrator's
        token in LOOPER_TOKEN (each SDK's fallback when given no token), and ``extra``."""
        return {**os.environ, "LOOPER_DECISION_ADDR": self.addresses["decision"],
                "LOOPER_FEEDBACK_ADDR": self.addresses["feedback"], "LOOPER_TRAINER_ADDR": self.addresses["trainer"],
                "LOOPER_TOKEN": self.token, **extra}

    def restart_when_asked(self, handshake: Path, timeout: float = 240):
        """A ``during`` for `run` that answers the suite's restart handshake in ``handshake``."""
        def answer(suite: subprocess.Popen) -> None:
            if not wait_for_file(handshake / "ready", suite, timeout):
                return  # the suite ended without asking
            self.stop()
            try:
                (handshake / "stopped").touch()
                wait_for_file(handshake / "calling", suite, timeout)
            finally:
                self.start()  # whatever the suite did, the services are back for later tests
        return answer
