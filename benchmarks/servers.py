"""The servers the bench measures, each started on free loopback ports and stopped by its
own process id: Looper's Decision service (``looper serve decision``), the Python gRPC echo
(the ceiling) and Decide's gRPC layer with a canned answer, and the peer stack a user would
assemble (``feast listen`` + MLServer)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from benchmarks.generator import process_tree
from services.launcher import start_looper, wait_healthy

ROOT = Path(__file__).resolve().parents[1]
PEERS_VENV = ROOT / ".tools" / "peers"
FEAST = Path(sys.executable).parent / "feast"
FEAST_METHOD = "/GrpcFeatureServer/GetOnlineFeatures"  # feast listen's service has no proto package
# Off unless a test asks otherwise: Looper's tracing is configured per server below.
NO_TRACING = {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": ""}
# The bench drives one use case: it may hold every handler thread. With the default share
# (12 of 16 threads) a saturated process sheds the rest with a 50 ms retry hint, and the
# figures at concurrency 64 would measure that hint rather than the server.
ONE_USE_CASE = {"LOOPER_THREADS": "16", "LOOPER_USE_CASE_MAX_IN_FLIGHT": "16"}


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def workers_flag() -> tuple[bool, str]:
    """Whether ``looper serve`` takes ``--workers`` (it is being added), and why not."""
    done = subprocess.run([sys.executable, "-m", "services.cli", "serve", "--help"], cwd=ROOT,
                          capture_output=True, text=True)
    if "--workers" in done.stdout:
        return True, ""
    return False, "`looper serve --help` lists no --workers flag in this tree"


class DecisionServer:
    """``looper serve decision`` on a prepared data directory (several may share one)."""

    def __init__(self, name: str, data_dir: Path, workers: int | None, env: dict[str, str]):
        self.name = name
        args = ["--workers", str(workers)] if workers else []
        self.looper = start_looper(data_dir, "decision", env={**ONE_USE_CASE, **env}, args=args, timeout=120)
        self.address = self.looper.addresses["decision"]
        self.token = self.looper.token_file.read_text().strip()
        self.metadata = {"authorization": f"Bearer {self.token}"}

    def pids(self) -> list[int]:
        return process_tree(self.looper.process.pid)

    def stop(self) -> None:
        self.looper.stop()


class EchoServer:
    """The echo (the ceiling); or, given a data directory, Decide's gRPC layer with a canned
    answer (see benchmarks/echo_server.py)."""

    def __init__(self, processes: int, canned_decide: Path | None = None):
        args = ["--canned-decide", str(canned_decide)] if canned_decide else []
        self.process = subprocess.Popen([sys.executable, "-m", "benchmarks.echo_server", "--processes",
                                         str(processes), *args], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                                        env={**os.environ, **ONE_USE_CASE, **NO_TRACING})
        line = self.process.stdout.readline()
        found = re.search(r"listening on (\S+)", line)
        if not found:
            self.stop()
            raise RuntimeError(f"the echo server did not start: {line!r}")
        self.address = found.group(1)

    def pids(self) -> list[int]:
        return process_tree(self.process.pid)

    def stop(self) -> None:
        _stop(self.process)


class PeerStack:
    """``feast listen`` (Feast's gRPC feature server, from Looper's virtualenv: same Feast, same
    repo) and MLServer 1.7.1 with its CatBoost runtime subclassed to answer probabilities
    (from its own virtualenv), serving Looper's trained model file."""

    def __init__(self, work: Path, feature_repo: Path, model_file: Path, model_name: str):
        self.logs = work
        work.mkdir(parents=True, exist_ok=True)
        self.feast_address = f"127.0.0.1:{free_port()}"
        self.feast = subprocess.Popen(
            [str(FEAST), "-c", str(feature_repo), "listen", "--address", self.feast_address,
             "--max_workers", "16", "--registry_ttl_sec", "60"],
            cwd=work, stdout=open(work / "feast.log", "w"), stderr=subprocess.STDOUT,
            env={**os.environ, **NO_TRACING})
        grpc_port, http_port = free_port(), free_port()
        repository = work / "mlserver"
        (repository / model_name).mkdir(parents=True, exist_ok=True)
        (repository / "settings.json").write_text(json.dumps({
            "host": "127.0.0.1", "http_port": http_port, "grpc_port": grpc_port, "metrics_endpoint": None,
            "parallel_workers": 0, "debug": False, "load_models_at_startup": True}))
        (repository / model_name / "model-settings.json").write_text(json.dumps({
            "name": model_name, "implementation": "mlserver_runtime.CatBoostProbabilities",
            "parameters": {"uri": str(model_file)}}))
        self.mlserver_address = f"127.0.0.1:{grpc_port}"
        self.mlserver = subprocess.Popen(
            [str(PEERS_VENV / "bin" / "mlserver"), "start", str(repository)], cwd=repository,
            stdout=open(work / "mlserver.log", "w"), stderr=subprocess.STDOUT,
            env={**os.environ, **NO_TRACING, "PYTHONPATH": str(ROOT / "benchmarks" / "peers"),
                 "VIRTUAL_ENV": str(PEERS_VENV)}, start_new_session=True)
        try:
            wait_healthy(self.feast_address, 120)
            self._wait_model(http_port, model_name, 180)
        except BaseException:
            self.stop()
            raise

    def _wait_model(self, http_port: int, model_name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{http_port}/v2/models/{model_name}/ready"
        while time.monotonic() < deadline:
            if self.mlserver.poll() is not None:
                break
            try:
                with urllib.request.urlopen(url, timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"MLServer did not load {model_name}:\n{(self.logs / 'mlserver.log').read_text()[-3000:]}")

    def pids(self) -> list[int]:
        return process_tree(self.feast.pid) + process_tree(self.mlserver.pid)

    def stop(self) -> None:
        _stop(self.feast)
        _stop(self.mlserver)


def _stop(process: subprocess.Popen, timeout: float = 20) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
