"""Who may call Looper (checked for every call by ``services.platform.guard.CallGuard``).

A caller is identified by a bearer token (``authorization: Bearer <token>``; Looper keeps
only its SHA-256) or, under mutual TLS, by its certificate subject's common name. A
credential carries roles per use case: ``decide`` (Decide, LogFeedback), ``read`` (reading
decisions, labels, blueprints, runs, models), ``admin`` (blueprints, training, promotion;
implies ``read``); a cluster administrator may do everything, including creating use cases
and managing credentials. Credentials live in the data directory; every process sees a
change at its next call, so rotation and revocation need no restart (``ChangeSignal``).

Each service declares, per RPC, what a call needs (``Need``): a role in the use cases the
request names, or cluster administration. Health checking and reflection stay open; an RPC
of a Looper service that declares nothing is refused.
"""

from __future__ import annotations

import contextvars
import enum
import hashlib
import json
import mmap
import os
import secrets
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

import grpc

from services.platform.errors import FailedPrecondition, InvalidArgument, NotFound

TOKEN_PREFIX = "lpr_"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS credentials (
  credential_id TEXT PRIMARY KEY, name TEXT NOT NULL, token_sha256 TEXT UNIQUE, certificate_subject TEXT UNIQUE,
  cluster_admin INTEGER NOT NULL, grants TEXT NOT NULL, create_time TEXT NOT NULL, rotate_time TEXT NOT NULL,
  revoke_time TEXT);
"""


class Role(enum.IntEnum):
    """Mirrors ``looper.v1.Role``."""

    UNSPECIFIED = 0
    DECIDE = 1
    READ = 2
    ADMIN = 3


@dataclass(frozen=True)
class Credential:
    credential_id: str
    name: str
    cluster_admin: bool
    grants: dict[str, frozenset[Role]]  # use case (or "*") -> roles
    create_time: str
    rotate_time: str
    certificate_subject: str = ""

    def allows(self, role: Role, use_case: str) -> bool:
        if self.cluster_admin:
            return True
        roles = self.grants.get(use_case, frozenset()) | self.grants.get("*", frozenset())
        return role in roles or (role == Role.READ and Role.ADMIN in roles)

    def can_read_something(self) -> bool:
        return self.cluster_admin or any(roles for roles in self.grants.values())


@dataclass(frozen=True)
class Need:
    """What one call needs: ``role`` in ``use_case``, or cluster administration (role None)."""

    role: Role | None
    use_case: str = ""


CLUSTER_ADMIN = Need(None)
ANY_GRANT = Need(Role.UNSPECIFIED)  # any credential with some grant; the servicer filters what it sees
Rule = Callable[[object], Iterable[Need]]  # request -> what the call needs

_current: contextvars.ContextVar[Credential | None] = contextvars.ContextVar("looper_caller", default=None)


def current_caller() -> Credential | None:
    """The credential of the call being served (None outside a call)."""
    return _current.get()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


# How often a process asks the database itself whether the credentials changed: the signal
# covers every change made through a CredentialStore; this covers one whose writer died
# between its commit and the signal.
RECHECK_SECONDS = 1.0


class ChangeSignal:
    """A number in a small file next to the credentials that every process maps into memory:
    a process that changes a credential writes a new one, and the others' next call sees it
    with a read of memory. (Asking SQLite on every call released the GIL on the Decision
    service's event loop, which then waited for the batch thread to give it back: without
    it, Decide made about 5% more calls/s at concurrency 16 and 64 in interleaved runs.)"""

    def __init__(self, path: Path):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < 8:
                os.ftruncate(fd, 8)
            self._map = mmap.mmap(fd, 8, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)

    def value(self) -> bytes:
        return self._map[:8]

    def send(self) -> None:
        # A fresh random value, not an increment: no lock between processes, and a torn
        # write still reads as a change.
        self._map[:8] = secrets.token_bytes(8)

    def close(self) -> None:
        self._map.close()


class CredentialStore:
    """The credentials of a data directory, shared by every process on it."""

    def __init__(self, path: Path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._changes = ChangeSignal(Path(path).with_suffix(".changes"))
        self._lock = threading.Lock()
        self._version = -1
        self._seen = b""  # the change signal when the cache was filled
        self._recheck_at = 0.0
        self._by_token: dict[str, Credential] = {}
        self._by_subject: dict[str, Credential] = {}

    # --- lookups on the hot path: cached until a process changes a credential ------------
    def by_token(self, token: str) -> Credential | None:
        self._refresh()
        return self._by_token.get(hash_token(token))

    def by_subject(self, subject: str) -> Credential | None:
        self._refresh()
        return self._by_subject.get(subject)

    def _refresh(self) -> None:
        signal = self._changes.value()
        if signal == self._seen and time.monotonic() < self._recheck_at:
            return
        # data_version changes when another connection commits; this one's own writes reset
        # _version instead.
        with self._lock:
            version = self._db.execute("PRAGMA data_version").fetchone()[0]
            if version != self._version:
                self._reload(version)
            # Marked fresh only once the cache is: a thread that takes the fast path above
            # must find the credentials loaded, not the empty cache of a starting process.
            self._seen, self._recheck_at = signal, time.monotonic() + RECHECK_SECONDS

    def _reload(self, version: int) -> None:
        """Fills the cache from the database (``_lock`` held)."""
        rows = self._db.execute("SELECT credential_id, name, token_sha256, certificate_subject, cluster_admin, "
                                "grants, create_time, rotate_time FROM credentials WHERE revoke_time IS NULL")
        by_token, by_subject = {}, {}
        for row in rows:
            credential = _credential(row)
            if row[2]:
                by_token[row[2]] = credential
            if row[3]:
                by_subject[row[3]] = credential
        self._by_token, self._by_subject, self._version = by_token, by_subject, version

    # --- management ---------------------------------------------------------------------
    def create(self, name: str, grants: dict[str, frozenset[Role]], cluster_admin: bool = False,
               certificate_subject: str = "") -> tuple[Credential, str]:
        """A new credential and its bearer token ("" for a certificate credential)."""
        token = "" if certificate_subject else new_token()
        credential_id, now = f"cred-{uuid.uuid4().hex[:12]}", now_iso()
        with self._lock:
            try:
                self._db.execute("INSERT INTO credentials VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)", (
                    credential_id, name, hash_token(token) if token else None, certificate_subject or None,
                    int(cluster_admin), _grants_json(grants), now, now))
                self._changed()
            except sqlite3.IntegrityError:
                raise InvalidArgument.single("certificate_subject", "is already the subject of a credential") from None
        return self.get(credential_id), token

    def rotate(self, credential_id: str) -> tuple[Credential, str]:
        credential = self.get(credential_id)
        if credential.certificate_subject:
            raise FailedPrecondition(f"credential {credential_id!r} is a certificate: rotate the certificate")
        token = new_token()
        with self._lock:
            self._db.execute("UPDATE credentials SET token_sha256 = ?, rotate_time = ? WHERE credential_id = ?",
                             (hash_token(token), now_iso(), credential_id))
            self._changed()
        return self.get(credential_id), token

    def revoke(self, credential_id: str) -> Credential:
        credential = self.get(credential_id)
        with self._lock:
            self._db.execute("UPDATE credentials SET revoke_time = ?, token_sha256 = NULL, certificate_subject = NULL "
                             "WHERE credential_id = ?", (now_iso(), credential_id))
            self._changed()
        return credential

    def _changed(self) -> None:
        """After a committed change (``_lock`` held): this process reloads at its next
        lookup, and so does every other one."""
        self._version = -1
        self._changes.send()

    def get(self, credential_id: str) -> Credential:
        with self._lock:
            row = self._db.execute("SELECT credential_id, name, token_sha256, certificate_subject, cluster_admin, "
                                   "grants, create_time, rotate_time FROM credentials "
                                   "WHERE credential_id = ? AND revoke_time IS NULL", (credential_id,)).fetchone()
        if row is None:
            raise NotFound(f"credential {credential_id!r} was not found")
        return _credential(row)

    def list(self) -> list[Credential]:
        with self._lock:
            rows = self._db.execute("SELECT credential_id, name, token_sha256, certificate_subject, cluster_admin, "
                                    "grants, create_time, rotate_time FROM credentials WHERE revoke_time IS NULL "
                                    "ORDER BY credential_id").fetchall()
        return [_credential(r) for r in rows]

    def has_cluster_admin(self) -> bool:
        return any(c.cluster_admin for c in self.list())

    def close(self) -> None:
        with self._lock:
            self._db.close()
            self._changes.close()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def _credential(row) -> Credential:
    credential_id, name, _, subject, cluster_admin, grants, create_time, rotate_time = row
    return Credential(credential_id=credential_id, name=name, cluster_admin=bool(cluster_admin),
                      grants={u: frozenset(Role(r) for r in roles) for u, roles in json.loads(grants).items()},
                      create_time=create_time, rotate_time=rotate_time, certificate_subject=subject or "")


def _grants_json(grants: dict[str, frozenset[Role]]) -> str:
    return json.dumps({u: sorted(int(r) for r in roles) for u, roles in grants.items()}, sort_keys=True)


def bootstrap_admin(store: CredentialStore, token_file: Path) -> str | None:
    """Creates the first cluster administrator and writes its token to ``token_file``
    (readable by its owner only), unless a cluster administrator exists already and the
    file still holds its token; returns the token when one was created."""
    if token_file.exists() and store.by_token(token_file.read_text().strip()) is not None:
        return None
    _, token = store.create("local-admin", {}, cluster_admin=True)
    token_file.parent.mkdir(parents=True, exist_ok=True)
    temporary = token_file.with_name(f".{token_file.name}.tmp")
    temporary.write_text(token + "\n")
    temporary.chmod(0o600)
    temporary.replace(token_file)
    return token


# --- checking a call (the interceptors are in services.platform.guard) --------------------
class CallRefused(Exception):
    """A call turned away before its handler runs: the status it gets, and why."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def authenticate(store: CredentialStore, metadata: dict, client_certificate: Callable[[], str]) -> Credential:
    """The bearer token's credential when the call carries one, else the client
    certificate's (mutual TLS; ``client_certificate()`` reads its subject from the call); raises
    CallRefused(UNAUTHENTICATED) otherwise."""
    header = metadata.get("authorization", "")
    if header.startswith("Bearer "):
        caller = store.by_token(header.removeprefix("Bearer ").strip())
        if caller is None:
            raise CallRefused(grpc.StatusCode.UNAUTHENTICATED, "the bearer token is not valid (revoked or rotated?)")
        return caller
    subject = client_certificate()
    if not subject:
        raise CallRefused(grpc.StatusCode.UNAUTHENTICATED,
                          "no credentials: send 'authorization: Bearer <token>' (the local development token is "
                          "in <data dir>/looper-token) or a client certificate")
    caller = store.by_subject(subject)
    if caller is None:
        raise CallRefused(grpc.StatusCode.UNAUTHENTICATED, f"client certificate {subject!r} is not a Looper credential")
    return caller


def authorize(caller: Credential, needs: Iterable[Need]) -> None:
    """Raises CallRefused(PERMISSION_DENIED) unless ``caller`` has every need."""
    for need in needs:
        if need.role is None and not caller.cluster_admin:
            raise CallRefused(grpc.StatusCode.PERMISSION_DENIED,
                              f"credential {caller.name!r} is not a cluster administrator")
        if need.role == Role.UNSPECIFIED and not caller.can_read_something():
            raise CallRefused(grpc.StatusCode.PERMISSION_DENIED, f"credential {caller.name!r} has no grants")
        if need.role and not caller.allows(need.role, need.use_case):
            raise CallRefused(grpc.StatusCode.PERMISSION_DENIED, f"credential {caller.name!r} lacks the "
                              f"{need.role.name.lower()} role in use case {need.use_case!r}")


def calling_as(caller: Credential):
    """Makes ``caller`` the current caller for the block (``current_caller``)."""
    return _CallingAs(caller)


class _CallingAs:
    def __init__(self, caller: Credential):
        self.caller = caller

    def __enter__(self):
        self.token = _current.set(self.caller)

    def __exit__(self, *exc) -> None:
        _current.reset(self.token)


def certificate_subject(context) -> str:
    """The common name of the call's client certificate ("" without one)."""
    values = (context.auth_context() or {}).get("x509_common_name") or []
    return values[0].decode() if values else ""


# --- rules, as the services declare them --------------------------------------------------
def needs(role: Role, use_cases: Callable[[object], Iterable[str]]) -> Rule:
    """A rule: ``role`` in every use case the request names (distinct ones once)."""
    return lambda request: [Need(role, u) for u in dict.fromkeys(use_cases(request))]


@dataclass
class AuthSetup:
    """What a service hands the server to check its calls: its rules and the store."""

    store: CredentialStore
    rules: dict[str, Rule] = field(default_factory=dict)
