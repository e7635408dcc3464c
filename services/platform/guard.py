"""The one server interceptor every call to a Looper service goes through, in this order:

1. a call whose deadline has already passed is not started (DEADLINE_EXCEEDED);
2. the caller is authenticated and authorized (``services.platform.auth``);
3. admission: one use case may hold at most ``use_case_limit`` of the calls being handled at
   once, so a busy use case cannot starve the others; beyond it the call is shed with
   RESOURCE_EXHAUSTED and a RetryInfo hint. (Beyond the server's own ``max_in_flight``
   calls, gRPC itself sheds with RESOURCE_EXHAUSTED before any handler runs.)

Health checking and reflection stay open.
"""

from __future__ import annotations

import threading
from collections import Counter

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from services.platform.auth import CredentialStore, Rule, authenticate, authorize, calling_as

RETRY_AFTER_MS = 50


class Admission:
    """Counts the calls being handled per use case and turns away those over the limit."""

    def __init__(self, use_case_limit: int):
        self.limit = use_case_limit
        self.shed = 0
        self._handling: Counter[str] = Counter()
        self._lock = threading.Lock()

    def enter(self, use_cases: list[str]) -> bool:
        with self._lock:
            if any(self._handling[u] >= self.limit for u in use_cases):
                self.shed += 1
                return False
            self._handling.update(use_cases)
            return True

    def leave(self, use_cases: list[str]) -> None:
        with self._lock:
            self._handling.subtract(use_cases)


class CallGuard(grpc.ServerInterceptor):
    def __init__(self, store: CredentialStore, rules: dict[str, Rule], admission: Admission,
                 service_prefixes: tuple[str, ...] = ("/looper.v1.",)):
        self.store, self.rules, self.admission, self.prefixes = store, rules, admission, service_prefixes

    def intercept_service(self, continuation, details):
        handler = continuation(details)
        if handler is None or handler.unary_unary is None or not details.method.startswith(self.prefixes):
            return handler  # health checking and reflection stay open
        rule = self.rules.get(details.method)
        metadata = dict(details.invocation_metadata or ())
        inner = handler.unary_unary

        def guarded(request, context):
            remaining = context.time_remaining()
            if remaining is not None and remaining <= 0:
                context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the call's deadline passed before it was started")
            caller = authenticate(self.store, metadata, context)
            if rule is None:
                context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{details.method} has no access rule")
            needs = list(rule(request))
            authorize(caller, needs, context)
            use_cases = sorted({n.use_case for n in needs if n.role and n.use_case})
            if not self.admission.enter(use_cases):
                context.abort_with_status(_shed(use_cases))
            try:
                with calling_as(caller):
                    return inner(request, context)
            finally:
                self.admission.leave(use_cases)

        return grpc.unary_unary_rpc_method_handler(guarded, request_deserializer=handler.request_deserializer,
                                                   response_serializer=handler.response_serializer)


def _shed(use_cases: list[str]):
    """RESOURCE_EXHAUSTED with a google.rpc.RetryInfo saying when to try again."""
    hint = any_pb2.Any()
    hint.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(nanos=RETRY_AFTER_MS * 1_000_000)))
    return rpc_status.to_status(status_pb2.Status(
        code=code_pb2.RESOURCE_EXHAUSTED, details=[hint],
        message=f"use case {', '.join(use_cases)} has as many calls in progress as it may; retry after "
                f"{RETRY_AFTER_MS} ms"))
