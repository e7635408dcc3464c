"""Credentials are shared by every process on a data directory: a change made by one is seen
by the others at their next call, without asking the database on every call."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from services.platform import auth
from services.platform.auth import CredentialStore, Role


@pytest.fixture
def stores(tmp_path):
    """Two stores on one credentials file, as two processes would open it: one that changes
    credentials and one that serves calls."""
    path = tmp_path / "credentials.sqlite"
    admin, serving = CredentialStore(path), CredentialStore(path)
    yield admin, serving
    admin.close()
    serving.close()


def _statements(store: CredentialStore) -> list[str]:
    """The SQL statements ``store`` runs from now on."""
    ran: list[str] = []
    store._db.set_trace_callback(ran.append)
    return ran


def test_a_revocation_in_one_process_refuses_the_token_at_the_next_call_of_another(stores):
    admin, serving = stores
    made, token = admin.create("checkout", {"checkout": frozenset({Role.DECIDE})})
    assert serving.by_token(token).credential_id == made.credential_id
    rotated_from = token
    _, token = admin.rotate(made.credential_id)
    assert serving.by_token(rotated_from) is None and serving.by_token(token) is not None
    admin.revoke(made.credential_id)
    assert serving.by_token(token) is None


def test_lookups_ask_the_database_nothing_while_no_credential_changes(stores):
    admin, serving = stores
    _, token = admin.create("checkout", {"checkout": frozenset({Role.DECIDE})})
    serving.by_token(token)  # fills the cache
    ran = _statements(serving)
    for _ in range(100):
        assert serving.by_token(token) is not None
    assert ran == [], "a lookup queried the database although nothing changed"
    admin.create("other", {})
    serving.by_token(token)
    assert any("data_version" in statement for statement in ran), "a signalled change was not looked at"


def test_a_change_whose_writer_died_before_signalling_is_seen_within_the_recheck(stores, tmp_path, monkeypatch):
    admin, serving = stores
    made, token = admin.create("checkout", {"checkout": frozenset({Role.DECIDE})})
    assert serving.by_token(token) is not None
    with sqlite3.connect(tmp_path / "credentials.sqlite") as db:  # revoked by a process that died before its signal
        db.execute("UPDATE credentials SET token_sha256 = NULL WHERE credential_id = ?", (made.credential_id,))
    assert serving.by_token(token) is not None, "the cache is not asked to recheck before its time"
    now = auth.time.monotonic()
    monkeypatch.setattr(auth.time, "monotonic", lambda: now + auth.RECHECK_SECONDS + 1)
    assert serving.by_token(token) is None


def test_a_lookup_during_the_first_load_waits_for_it_instead_of_finding_no_credentials(stores):
    # A worker that had just started refused a valid token to one of its first concurrent
    # calls: the cache was marked fresh before it was filled.
    admin, serving = stores
    _, token = admin.create("checkout", {"checkout": frozenset({Role.DECIDE})})
    loading, release = threading.Event(), threading.Event()

    def hold_the_load(statement: str) -> None:
        if statement.startswith("SELECT credential_id") and not loading.is_set():
            loading.set()
            release.wait(10)

    serving._db.set_trace_callback(hold_the_load)
    found: dict[str, object] = {}
    first = threading.Thread(target=lambda: found.setdefault("first", serving.by_token(token)))
    first.start()
    assert loading.wait(10)
    second = threading.Thread(target=lambda: found.setdefault("second", serving.by_token(token)))
    second.start()
    second.join(0.3)  # it returns early only if it skipped the load under way
    release.set()
    for thread in (first, second):
        thread.join(10)
    assert found["first"] is not None
    assert found["second"] is not None, "a lookup took the empty cache for a loaded one"
