"""A full disk, on a small file system made for the test: every acknowledged decision is
stored, every other call gets UNAVAILABLE (never INTERNAL), health says NOT_SERVING while
the log cannot be written, and the service recovers by itself when space returns; in both
durability modes."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from looper import LooperError

from services.launcher import start_looper
from tests.conftest import SIMPLE_BLUEPRINT

pytestmark = pytest.mark.e2e
DISK_BYTES = 16 * 1024 * 1024


@pytest.fixture()
def small_disk(tmp_path):
    """A 16 MiB tmpfs as the data directory (the services' own log stays outside it)."""
    mount = tmp_path / "data"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(mount)],
                             capture_output=True, text=True)
    assert mounted.returncode == 0, f"this test needs to mount a tmpfs (root): {mounted.stderr}"
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path, leave_bytes: int) -> Path:
    """A ballast file that leaves about ``leave_bytes`` free."""
    stat = os.statvfs(folder)
    ballast = folder / "ballast"
    with open(ballast, "wb") as out:
        out.truncate(0)
        remaining = stat.f_bavail * stat.f_frsize - leave_bytes
        chunk = b"\0" * (1 << 20)
        while remaining > 0:
            out.write(chunk[:remaining])
            remaining -= len(chunk)
    return ballast


def health(address: str, service: str = "looper.v1.DecisionService") -> int:
    with grpc.insecure_channel(address) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                         timeout=5).status


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.mark.parametrize("durability", ["fsync", "os"])
def test_a_full_disk_loses_nothing_acknowledged_and_recovers(small_disk, durability):
    looper = start_looper(small_disk, env={"LOOPER_DURABILITY": durability})
    acked, refused = [], []
    try:
        with looper.client(max_attempts=1, timeout=10) as client:
            client.apply_blueprint(SIMPLE_BLUEPRINT)
            ballast = fill(small_disk, leave_bytes=96 * 1024)
            for i in range(3000):
                decision_id = f"full-{i}"
                try:
                    client.decide("contract_test", decision_id, {"user_id": f"u{i}"}, {"platform": "x" * 200})
                    acked.append(decision_id)
                except LooperError as err:
                    refused.append(err)
                    if len(refused) >= 20:
                        break
            assert acked and len(refused) >= 20, "the disk never filled"
            assert {e.code for e in refused} == {grpc.StatusCode.UNAVAILABLE}, refused[:3]
            wait_for(lambda: health(looper.addresses["decision"]) == health_pb2.HealthCheckResponse.NOT_SERVING,
                     10, "health to say NOT_SERVING")
            ballast.unlink()  # space returns
            wait_for(lambda: health(looper.addresses["decision"]) == health_pb2.HealthCheckResponse.SERVING,
                     20, "health to say SERVING again")
            after = client.decide("contract_test", "after-recovery", {"user_id": "u"})
            acked.append(after.decision_id)
    finally:
        looper.stop()
    restarted = start_looper(small_disk)
    try:
        with restarted.client() as client:
            missing = [d for d in acked if not _logged(client, d)]
        assert missing == [], f"{len(missing)} of {len(acked)} acknowledged decisions were lost"
    finally:
        restarted.stop()


def _logged(client, decision_id: str) -> bool:
    try:
        return client.get_decision("contract_test", decision_id).decision.decision_id == decision_id
    except LooperError:
        return False
