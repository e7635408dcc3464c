"""The Python client's side of the credential checks every SDK makes against the real
services (the Go, Java and TypeScript ones run in their suites, see test_cross_language.py):
a call without a token, or with one Looper does not know, gets the typed
UnauthenticatedError; one whose credential may only read the use case gets
PermissionDeniedError on Decide, and its reads go through."""

from __future__ import annotations

import uuid

import pytest
from looper import NotFoundError, PermissionDeniedError, UnauthenticatedError
from looperpb.v1 import access_pb2

USE_CASE = "client_contract"


def test_calls_without_the_right_credential_fail_with_typed_errors(stack, monkeypatch):
    run_id = f"r{uuid.uuid4().hex[:10]}"
    with stack.client() as admin:
        reader = admin.access.CreateCredential(access_pb2.CreateCredentialRequest(
            name=f"{run_id}-py-reader", grants=[access_pb2.Grant(use_case=USE_CASE, roles=[access_pb2.ROLE_READ])]),
            timeout=10)
        try:
            monkeypatch.delenv("LOOPER_TOKEN", raising=False)
            monkeypatch.delenv("LOOPER_TOKEN_FILE", raising=False)
            for token in (None, "lpr_not-a-token"):
                with stack.client(token=token, token_file=None, max_attempts=1) as client:
                    with pytest.raises(UnauthenticatedError):
                        client.decide(USE_CASE, f"{run_id}-py-denied", {"user_id": "u-py"})
            with stack.client(token=reader.token, token_file=None, max_attempts=1) as client:
                with pytest.raises(PermissionDeniedError):
                    client.decide(USE_CASE, f"{run_id}-py-denied", {"user_id": "u-py"})
                with pytest.raises(NotFoundError):  # a reader may read; the decision was never made
                    client.get_decision(USE_CASE, f"{run_id}-py-denied")
        finally:
            admin.access.RevokeCredential(access_pb2.RevokeCredentialRequest(
                credential_id=reader.credential.credential_id), timeout=10)
