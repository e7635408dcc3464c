"""The asyncio server's call guard: the same refusals as the thread-pool server's, and calls
beyond the places being handled wait in line instead of being shed. The call's context is
faked (the boundary); the credentials are a real store."""

from __future__ import annotations

import asyncio
from collections import namedtuple
from types import SimpleNamespace

import grpc
import pytest

from services.platform.auth import CredentialStore, Role, current_caller, needs
from services.platform.guard import Admission, AsyncCallGuard, Places

Details = namedtuple("Details", "method invocation_metadata")
METHOD = "/looper.v1.DecisionService/Decide"


class Aborted(Exception):
    pass


class FakeContext:
    def __init__(self):
        self.aborted = None

    def time_remaining(self):
        return None

    def auth_context(self):
        return {}

    async def abort(self, code, details="", trailing_metadata=()):
        self.aborted = (code, details)
        raise Aborted(details)


@pytest.fixture
def token(tmp_path) -> tuple[CredentialStore, str]:
    store = CredentialStore(tmp_path / "credentials.sqlite")
    _, secret = store.create("service", {"checkout": frozenset({Role.DECIDE})})
    return store, secret


def guarded_handler(store, handling: int, use_case_limit: int, behavior, metadata):
    guard = AsyncCallGuard(store, {METHOD: needs(Role.DECIDE, lambda r: [r.use_case])},
                           Admission(use_case_limit), handling)

    async def continuation(details):
        return grpc.unary_unary_rpc_method_handler(behavior)

    return guard.intercept_service(continuation, Details(METHOD, tuple(metadata.items())))


def test_calls_beyond_the_places_being_handled_wait_their_turn_rather_than_being_shed(token):
    store, secret = token
    running, most = [0], [0]

    async def behavior(request, context):
        running[0] += 1
        most[0] = max(most[0], running[0])
        await asyncio.sleep(0.02)
        running[0] -= 1
        return current_caller().name

    async def scenario():
        handler = await guarded_handler(store, 2, 2, behavior, {"authorization": f"Bearer {secret}"})
        contexts = [FakeContext() for _ in range(6)]
        answers = await asyncio.gather(*(handler.unary_unary(SimpleNamespace(use_case="checkout"), c)
                                         for c in contexts))
        return answers, contexts

    answers, contexts = asyncio.run(scenario())
    assert answers == ["service"] * 6 and all(c.aborted is None for c in contexts)
    assert most[0] == 2, "more calls were handled at once than the server has places"


@pytest.mark.parametrize("metadata, use_case, code", [
    ({}, "checkout", grpc.StatusCode.UNAUTHENTICATED),
    ({"authorization": "Bearer nope"}, "checkout", grpc.StatusCode.UNAUTHENTICATED),
    (None, "payments", grpc.StatusCode.PERMISSION_DENIED),
])
def test_a_call_without_valid_credentials_or_grants_is_refused_before_its_handler_runs(token, metadata, use_case,
                                                                                       code):
    store, secret = token
    ran = []

    async def behavior(request, context):
        ran.append(request)

    async def scenario():
        handler = await guarded_handler(store, 4, 4, behavior,
                                        {"authorization": f"Bearer {secret}"} if metadata is None else metadata)
        context = FakeContext()
        with pytest.raises(Aborted):
            await handler.unary_unary(SimpleNamespace(use_case=use_case), context)
        return context

    context = asyncio.run(scenario())
    assert context.aborted[0] == code and not ran


def test_a_use_case_past_its_share_of_the_places_is_shed_with_a_retry_hint(token):
    store, secret = token

    async def scenario():
        gate = asyncio.Event()

        async def behavior(request, context):
            await gate.wait()
            return "done"

        handler = await guarded_handler(store, 4, 1, behavior, {"authorization": f"Bearer {secret}"})
        first = asyncio.ensure_future(handler.unary_unary(SimpleNamespace(use_case="checkout"), FakeContext()))
        await asyncio.sleep(0.01)
        shed = FakeContext()
        with pytest.raises(Aborted):
            await handler.unary_unary(SimpleNamespace(use_case="checkout"), shed)
        gate.set()
        return await first, shed

    answer, shed = asyncio.run(scenario())
    assert answer == "done" and shed.aborted[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "retry after" in shed.aborted[1]


def test_places_go_in_order_of_arrival_even_to_a_call_arriving_as_one_is_given_back():
    places, order = Places(1), []

    async def call(name: str, hold: float = 0.0):
        await places.take()
        order.append(name)
        await asyncio.sleep(hold)
        places.give_back()

    async def scenario():
        first = asyncio.ensure_future(call("first", 0.01))
        await asyncio.sleep(0)
        waiting = [asyncio.ensure_future(call(n)) for n in ("second", "third")]
        await asyncio.sleep(0)
        await first
        late = asyncio.ensure_future(call("late"))  # arrives once the place was handed on
        await asyncio.gather(*waiting, late)

    asyncio.run(scenario())
    assert order == ["first", "second", "third", "late"] and places.free == 1


def test_a_call_cancelled_while_waiting_for_a_place_leaves_none_taken():
    places = Places(1)

    async def scenario():
        await places.take()
        waiter = asyncio.ensure_future(places.take())
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        places.give_back()

    asyncio.run(scenario())
    assert places.free == 1
