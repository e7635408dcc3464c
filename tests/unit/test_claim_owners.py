"""Whose claim is it: a claim in the shared id index names its process as ``<host>-<pid>``;
only a process on this host that no longer runs has left its claim behind."""

from __future__ import annotations

import os
import socket

import pytest

from services.platform.id_index import IndexEntry
from tests.unit.test_decision_log import dead_owner


def entry(owner: str) -> IndexEntry:
    return IndexEntry(time=0.0, done=False, address=None, owner=owner)


def test_a_claim_of_a_process_that_runs_here_is_alive_and_one_that_exited_is_not():
    assert entry(f"{socket.gethostname()}-{os.getpid()}").owner_alive()
    assert not entry(dead_owner()).owner_alive()


@pytest.mark.parametrize("owner", ["elsewhere-1", "another-host-{pid}", "{host}-not-a-pid", "{host}-"])
def test_a_claim_this_host_cannot_check_counts_as_alive(owner):
    pid = int(dead_owner().rpartition("-")[2])  # dead here, but named for another host
    assert entry(owner.format(host=socket.gethostname(), pid=pid)).owner_alive()


def test_a_host_name_with_hyphens_is_split_at_the_last_one(monkeypatch):
    pid = int(dead_owner().rpartition("-")[2])
    monkeypatch.setattr(socket, "gethostname", lambda: "web-01-eu")
    assert not entry(f"web-01-eu-{pid}").owner_alive()
    assert entry(f"web-01-eu-{os.getpid()}").owner_alive()
