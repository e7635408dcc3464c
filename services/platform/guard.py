"""The server interceptor every call to a Looper service goes through (``CallGuard`` on the
thread-pool servers, ``AsyncCallGuard`` on the Decision service's asyncio one; the checks are
the same), in this order:

1. a call whose deadline has already passed is not started (DEADLINE_EXCEEDED);
2. the caller is authenticated and authorized (``services.platform.auth``);
3. admission: one use case may hold at most ``use_case_limit`` of the calls being handled at
   once, so a busy use case cannot starve the others; beyond it the call is shed with
   RESOURCE_EXHAUSTED and a RetryInfo hint. (Beyond the server's own ``max_in_flight``
   calls, gRPC itself sheds with RESOURCE_EXHAUSTED before any handler runs.)

Health checking and reflection stay open.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter, deque

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from services.platform.auth import (CallRefused, Credential, CredentialStore, Rule, authenticate, authorize, calling_as,
                                    certificate_subject)

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


class _Checks:
    """What both interceptors check before a Looper call's handler runs."""

    def __init__(self, store: CredentialStore, rules: dict[str, Rule], admission: Admission,
                 service_prefixes: tuple[str, ...] = ("/looper.v1.",)):
        self.store, self.rules, self.admission, self.prefixes = store, rules, admission, service_prefixes

    def guards(self, handler, details) -> bool:
        """Whether the call is checked (health checking and reflection stay open)."""
        return handler is not None and handler.unary_unary is not None and details.method.startswith(self.prefixes)

    def admit(self, details, metadata: dict, request, context) -> tuple[Credential, list[str]]:
        """The caller and the use cases it now holds a place in (``admission.leave`` them
        after the call); raises CallRefused."""
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            raise CallRefused(grpc.StatusCode.DEADLINE_EXCEEDED, "the call's deadline passed before it was started")
        caller = authenticate(self.store, metadata, lambda: certificate_subject(context))
        rule = self.rules.get(details.method)
        if rule is None:
            raise CallRefused(grpc.StatusCode.PERMISSION_DENIED, f"{details.method} has no access rule")
        needs = list(rule(request))
        authorize(caller, needs)
        use_cases = sorted({n.use_case for n in needs if n.role and n.use_case})
        if not self.admission.enter(use_cases):
            raise _Shed(use_cases)
        return caller, use_cases


class CallGuard(_Checks, grpc.ServerInterceptor):
    """The checks on a thread-pool server."""

    def intercept_service(self, continuation, details):
        handler = continuation(details)
        if not self.guards(handler, details):
            return handler
        metadata = dict(details.invocation_metadata or ())
        inner = handler.unary_unary

        def guarded(request, context):
            try:
                caller, use_cases = self.admit(details, metadata, request, context)
            except _Shed as shed:
                context.abort_with_status(shed.status())
            except CallRefused as refused:
                context.abort(refused.code, refused.message)
            try:
                with calling_as(caller):
                    return inner(request, context)
            finally:
                self.admission.leave(use_cases)

        return grpc.unary_unary_rpc_method_handler(guarded, request_deserializer=handler.request_deserializer,
                                                   response_serializer=handler.response_serializer)


class AsyncCallGuard(_Checks, grpc.aio.ServerInterceptor):
    """The same checks on an asyncio server (the Decision service's). A call is handled once
    one of ``handling`` places is free, as on the thread-pool server a call waits for one of
    its threads: the use case's share (admission) is of the calls being handled, and the
    others wait in line rather than being shed."""

    def __init__(self, store: CredentialStore, rules: dict[str, Rule], admission: Admission, handling: int):
        super().__init__(store, rules, admission)
        self.places = Places(handling)

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if not self.guards(handler, details):
            return handler
        metadata = dict(details.invocation_metadata or ())
        inner = handler.unary_unary

        async def guarded(request, context):
            await self.places.take()
            try:
                return await checked(request, context)
            finally:
                self.places.give_back()

        async def checked(request, context):
            try:
                caller, use_cases = self.admit(details, metadata, request, context)
            except _Shed as shed:
                status = shed.status()
                await context.abort(status.code, status.details, status.trailing_metadata)
            except CallRefused as refused:
                await context.abort(refused.code, refused.message)
            try:
                with calling_as(caller):  # a context variable: each call's task has its own
                    return await inner(request, context)
            finally:
                self.admission.leave(use_cases)

        return grpc.unary_unary_rpc_method_handler(guarded, request_deserializer=handler.request_deserializer,
                                                   response_serializer=handler.response_serializer)


class Places:
    """``count`` places taken in order of arrival: a place given back goes to the call that
    has waited longest. (asyncio.Semaphore lets a call arriving just then take it first, and
    under a steady overload some calls waited ten times the others.)"""

    def __init__(self, count: int):
        self.free = count
        self._waiting: deque[asyncio.Future] = deque()

    async def take(self) -> None:
        if self.free > 0 and not self._waiting:
            self.free -= 1
            return
        place = asyncio.get_running_loop().create_future()
        self._waiting.append(place)
        try:
            await place
        except asyncio.CancelledError:
            if place.done() and not place.cancelled():
                self.give_back()  # it was handed this place as it gave up
            else:
                self._waiting.remove(place)
            raise

    def give_back(self) -> None:
        while self._waiting:
            place = self._waiting.popleft()
            if not place.done():
                place.set_result(None)  # handed over: the count of free places does not change
                return
        self.free += 1


class _Shed(CallRefused):
    """Admission turned the call away: RESOURCE_EXHAUSTED with a retry hint."""

    def __init__(self, use_cases: list[str]):
        super().__init__(grpc.StatusCode.RESOURCE_EXHAUSTED, "")
        self.use_cases = use_cases

    def status(self):
        return _shed(self.use_cases)


def _shed(use_cases: list[str]):
    """RESOURCE_EXHAUSTED with a google.rpc.RetryInfo saying when to try again."""
    hint = any_pb2.Any()
    hint.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(nanos=RETRY_AFTER_MS * 1_000_000)))
    return rpc_status.to_status(status_pb2.Status(
        code=code_pb2.RESOURCE_EXHAUSTED, details=[hint],
        message=f"use case {', '.join(use_cases)} has as many calls in progress as it may; retry after "
                f"{RETRY_AFTER_MS} ms"))
