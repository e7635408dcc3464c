"""The asyncio gRPC server, for a service whose handlers are coroutines (the Decision
service's): one event loop, on its own thread, reads every call and writes every answer, and
the handlers hand the work to other threads (a batch of decisions, a file read).

The loop is uvloop's (libuv): interleaved with asyncio's own, 2 processes, it made 4-7% more
Decide calls/s at concurrency 16 and 64.

On the thread-pool server each call holds a thread from its arrival to its answer, and
handing the GIL between a dozen threads and the batcher's cost about as much CPU as the
decisions themselves. On the loop, a call is a task: Decide calls that arrive while a batch
is being decided simply queue for the next one. Measured with the bench's Go generator on one
process, concurrency 16, before authentication was added here: about 2,300-2,400 Decide
calls/s against 1,300-1,400 on the thread-pool server.

``start_async_server`` returns a ``RunningServer`` like ``start_server``'s: health is set,
and the server stopped, from other threads through the loop.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

import grpc
import uvloop
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from services.platform.grpc_runtime import RunningServer, ServiceBinding, Tls, health_names, serve_bindings
from services.platform.jobs import PeriodicJob

START_TIMEOUT_SECONDS = 60


@dataclass
class AsyncRunningServer(RunningServer):
    loop: asyncio.AbstractEventLoop | None = None
    thread: threading.Thread | None = None

    def _stop_server(self, grace: float) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(grace), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()


class _LoopHealth:
    """The asyncio health servicer, set from other threads (the health job, shutdown)."""

    def __init__(self, servicer: HealthServicer, loop: asyncio.AbstractEventLoop):
        self.servicer, self.loop = servicer, loop

    def set(self, name: str, status) -> None:
        asyncio.run_coroutine_threadsafe(self.servicer.set(name, status), self.loop).result()

    def enter_graceful_shutdown(self) -> None:
        asyncio.run_coroutine_threadsafe(self.servicer.enter_graceful_shutdown(), self.loop).result()


def start_async_server(bindings: list[ServiceBinding], host: str, port: int, guard: grpc.aio.ServerInterceptor,
                       options: list, tls: Tls | None, max_in_flight: int) -> AsyncRunningServer:
    loop = uvloop.new_event_loop()
    thread = threading.Thread(target=_run, args=(loop,), name="grpc-asyncio", daemon=True)
    thread.start()
    try:
        server, bound, health = asyncio.run_coroutine_threadsafe(
            _start(bindings, host, port, guard, options, tls, max_in_flight), loop).result(START_TIMEOUT_SECONDS)
    except BaseException:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        raise
    running = AsyncRunningServer(server=server, port=bound, health=_LoopHealth(health, loop), bindings=bindings,
                                 loop=loop, thread=thread)
    running.health_job = PeriodicJob("health", 0.5, running.update_health).start()
    return running


def _run(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        loop.close()


async def _start(bindings: list[ServiceBinding], host: str, port: int, guard, options: list, tls: Tls | None,
                 max_in_flight: int) -> tuple[grpc.aio.Server, int, HealthServicer]:
    server = grpc.aio.server(interceptors=[*(i for b in bindings for i in b.interceptors), guard], options=options,
                             maximum_concurrent_rpcs=max_in_flight)  # beyond it: RESOURCE_EXHAUSTED at once
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    bound = serve_bindings(server, bindings, host, port, tls)
    for name in health_names(bindings):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    await server.start()
    return server, bound, health
