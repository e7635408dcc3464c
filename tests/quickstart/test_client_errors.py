"""The errors a newcomer meets first: calling Looper when nothing listens where the client
was pointed. The message names the service and the address tried; the class stays typed."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys

import pytest

from looper import AsyncLooperClient, DeadlineExceededError, LooperClient, UnavailableError
from tests.conftest import EXAMPLE_BLUEPRINT, ROOT


@pytest.fixture()
def closed_address():
    """A loopback port that refuses connections: bound, so no one else takes it, but not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture()
def silent_address():
    """A loopback port that accepts connections (the kernel's backlog) but never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield f"127.0.0.1:{sock.getsockname()[1]}"


def test_each_unreachable_service_is_named_with_its_address(closed_address):
    with LooperClient(closed_address, closed_address, closed_address) as client:
        calls = {"Decision": lambda: client.decide("notification_send", "d-1", {"user_id": "42"}),
                 "Feedback": lambda: client.log_feedback("notification_send", "d-1", "opened"),
                 "Trainer": lambda: client.list_models("notification_send")}
        for service, call in calls.items():
            with pytest.raises(UnavailableError) as raised:
                call()
            assert raised.value.message.startswith(f"{service} service at {closed_address} is unavailable: ")
            assert str(raised.value).startswith("UNAVAILABLE: ")


def test_the_async_client_names_the_unreachable_service(closed_address):
    async def log_feedback():
        async with AsyncLooperClient(closed_address, closed_address) as client:
            await client.log_feedback("notification_send", "d-1", "opened")

    with pytest.raises(UnavailableError, match=f"Feedback service at {closed_address} is unavailable"):
        asyncio.run(log_feedback())


def test_a_service_that_never_answers_is_named_with_its_address(silent_address):
    with LooperClient(silent_address, silent_address, silent_address, timeout=0.3) as client:
        with pytest.raises(DeadlineExceededError, match=f"Decision service at {silent_address} did not answer"):
            client.decide("notification_send", "d-1", {"user_id": "42"})


def test_looper_apply_without_a_trainer_says_where_it_looked(closed_address):
    applied = subprocess.run([sys.executable, "-m", "services.cli", "apply", str(EXAMPLE_BLUEPRINT),
                              "--trainer", closed_address], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert applied.returncode == 1
    assert f"looper: UNAVAILABLE: Trainer service at {closed_address} is unavailable" in applied.stderr
