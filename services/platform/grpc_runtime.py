"""The gRPC side shared by the three services: server construction (health checking,
reflection, message size limits), mapping domain errors to rich gRPC status, and graceful
shutdown. Servicers stay thin: they translate protobuf to domain calls and nothing else.
"""

from __future__ import annotations

import faulthandler
import functools
import gc
import ipaddress
import logging
import signal
import threading
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from grpc_status import rpc_status

from services.platform.auth import CredentialStore, Rule
from services.platform.guard import Admission, AsyncCallGuard, CallGuard
from services.platform.jobs import PeriodicJob
from services.platform.errors import (DeadlineExceeded, FailedPrecondition, InvalidArgument, NotFound,
                                     ResourceExhausted, Unavailable)

log = logging.getLogger("looper.grpc")

DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
SHUTDOWN_STACKS_AFTER_SECONDS = 20  # past the grace: a hung shutdown logs its threads' stacks
SIGNAL_CHECK_SECONDS = 0.2  # how soon a signal taken by another thread is acted on


def invalid_argument_status(err: InvalidArgument) -> status_pb2.Status:
    """A google.rpc.Status with a BadRequest detail listing each field violation."""
    detail = error_details_pb2.BadRequest(field_violations=[
        error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.reason)
        for v in err.violations
    ])
    packed = any_pb2.Any()
    packed.Pack(detail)
    return status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=str(err), details=[packed])


_SIMPLE_CODES = {
    NotFound: code_pb2.NOT_FOUND,
    FailedPrecondition: code_pb2.FAILED_PRECONDITION,
    ResourceExhausted: code_pb2.RESOURCE_EXHAUSTED,
    Unavailable: code_pb2.UNAVAILABLE,
    DeadlineExceeded: code_pb2.DEADLINE_EXCEEDED,
}


def status_for(err: Exception) -> status_pb2.Status:
    """Maps a domain error to a status; anything unexpected becomes a bare INTERNAL."""
    if isinstance(err, InvalidArgument):
        return invalid_argument_status(err)
    for kind, code in _SIMPLE_CODES.items():
        if isinstance(err, kind):
            return status_pb2.Status(code=code, message=str(err))
    return status_pb2.Status(code=code_pb2.INTERNAL, message="internal error; see the server log")


def rpc_method(method: Callable) -> Callable:
    """Wraps a servicer method: domain errors become their gRPC status, never a traceback."""

    @functools.wraps(method)
    def wrapper(self, request, context: grpc.ServicerContext):
        try:
            return method(self, request, context)
        except Exception as err:  # noqa: BLE001 - every error must become a status
            context.abort_with_status(_failed(method, err))

    return wrapper


def async_rpc_method(method: Callable) -> Callable:
    """``rpc_method`` for a coroutine method of a servicer on the asyncio server."""

    @functools.wraps(method)
    async def wrapper(self, request, context: grpc.aio.ServicerContext):
        try:
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise  # the call was already given its status
        except Exception as err:  # noqa: BLE001 - every error must become a status
            status = _failed(method, err)
            await context.abort(status.code, status.details, status.trailing_metadata)

    return wrapper


def _failed(method: Callable, err: Exception) -> grpc.Status:
    status = status_for(err)
    if status.code == code_pb2.INTERNAL:
        log.exception("%s failed", method.__qualname__, exc_info=err)
    return rpc_status.to_status(status)


@dataclass
class ServiceBinding:
    """One servicer and how to register it."""

    name: str  # full service name, e.g. "looper.v1.DecisionService"
    servicer: object
    register: Callable[[object, grpc.Server], None]
    on_shutdown: Callable[[], None] = lambda: None
    interceptors: tuple = ()  # e.g. the OpenTelemetry server interceptor
    # The servicer's methods are coroutines: it is served by an asyncio server (see
    # services.platform.async_server), with interceptors of that kind.
    asynchronous: bool = False
    auth_rules: dict[str, Rule] = field(default_factory=dict)  # RPC method -> what a call needs
    # Whether the service can serve (False: its log cannot be written), and whether what it
    # depends on answers (the feature store), shown on health as its own name and as
    # "looper.dependencies"; checked every half second.
    serving: Callable[[], bool] = lambda: True
    dependencies: Callable[[], bool] = lambda: True


@dataclass(frozen=True)
class Tls:
    """The server's certificate and key (PEM), and the CA that client certificates must be
    signed by (mutual TLS) when given."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    def credentials(self) -> grpc.ServerCredentials:
        client_ca = self.client_ca.read_bytes() if self.client_ca else None
        return grpc.ssl_server_credentials([(self.key.read_bytes(), self.cert.read_bytes())],
                                           root_certificates=client_ca, require_client_auth=client_ca is not None)


DEPENDENCIES = "looper.dependencies"  # the health name of what the services depend on


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    health: health.HealthServicer
    bindings: list[ServiceBinding] = field(default_factory=list)
    health_job: PeriodicJob | None = None

    def stop(self, grace: float = 10.0) -> None:
        """Stops taking calls, drains in-flight ones, then flushes each service."""
        if self.health_job:
            self.health_job.stop()
        self.health.enter_graceful_shutdown()
        self._stop_server(grace)
        for binding in self.bindings:
            binding.on_shutdown()

    def _stop_server(self, grace: float) -> None:
        self.server.stop(grace).wait()

    def update_health(self) -> None:
        status = {True: health_pb2.HealthCheckResponse.SERVING, False: health_pb2.HealthCheckResponse.NOT_SERVING}
        serving = [binding.serving() for binding in self.bindings]
        for binding, ok in zip(self.bindings, serving):
            self.health.set(binding.name, status[ok])
        self.health.set("", status[all(serving)])
        self.health.set(DEPENDENCIES, status[all(binding.dependencies() for binding in self.bindings)])


def start_server(bindings: list[ServiceBinding], host: str, port: int, credentials: CredentialStore,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, workers: int = 16,
                 tls: Tls | None = None, max_in_flight: int = 64, use_case_limit: int = 12,
                 reuse_port: bool = False) -> RunningServer:
    """Starts a gRPC server with the bindings, health checking and reflection; every call
    to a Looper service is authenticated and authorized against the bindings' rules.
    Without TLS it binds only a loopback address: bearer tokens never cross a network in
    the clear."""
    if tls is None and not is_loopback(host):
        raise OSError(f"refusing to serve {host} without TLS: bearer tokens would cross the network in the clear; "
                      "set --tls-cert and --tls-key, or bind 127.0.0.1")
    rules = {f"/{b.name}/{method}": rule for b in bindings for method, rule in b.auth_rules.items()}
    admission = Admission(use_case_limit)
    if any(b.asynchronous for b in bindings):
        from services.platform.async_server import start_async_server

        return start_async_server(bindings, host, port, AsyncCallGuard(credentials, rules, admission, workers),
                                  server_options(max_message_bytes, reuse_port), tls, max_in_flight)
    guard = CallGuard(credentials, rules, admission)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grpc"),
        interceptors=[*(i for b in bindings for i in b.interceptors), guard],
        options=server_options(max_message_bytes, reuse_port),
        maximum_concurrent_rpcs=max_in_flight,  # beyond it gRPC answers RESOURCE_EXHAUSTED at once
    )
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    bound = serve_bindings(server, bindings, host, port, tls)
    for name in health_names(bindings):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    server.start()
    running = RunningServer(server=server, port=bound, health=health_servicer, bindings=bindings)
    running.health_job = PeriodicJob("health", 0.5, running.update_health).start()
    return running


def start_configured(bindings: list[ServiceBinding], settings, port: int, credentials: CredentialStore,
                     tls: Tls | None = None, reuse_port: bool = False) -> RunningServer:
    """``start_server`` with the limits of ``settings`` (a ``Settings``): what ``looper serve``
    starts for each service."""
    return start_server(bindings, settings.host, port, credentials, settings.max_message_bytes,
                        workers=settings.threads, tls=tls, max_in_flight=settings.max_in_flight,
                        use_case_limit=settings.use_case_max_in_flight, reuse_port=reuse_port)


def server_options(max_message_bytes: int, reuse_port: bool) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.so_reuseport", int(reuse_port)),  # several worker processes on one port
    ]


def serve_bindings(server, bindings: list[ServiceBinding], host: str, port: int, tls: Tls | None) -> int:
    """Registers the bindings on a server of either kind (its health servicer already added),
    enables reflection and adds the listening port; the port bound."""
    for binding in bindings:
        binding.register(binding.servicer, server)
    reflection.enable_server_reflection([b.name for b in bindings] + [
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME], server)
    address = f"{host}:{port}"
    bound = server.add_secure_port(address, tls.credentials()) if tls else server.add_insecure_port(address)
    if bound == 0:
        raise OSError(f"could not bind {host}:{port}")
    return bound


def health_names(bindings: list[ServiceBinding]) -> list[str]:
    """What health checking answers for: each service, the server as a whole (""), and what
    the services depend on."""
    return [b.name for b in bindings] + ["", DEPENDENCIES]


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def freeze_startup_heap() -> None:
    """Puts what starting made (Feast's registry and its libraries, the models, protobuf
    descriptors: most of the heap, and it lives as long as the process) out of the garbage
    collector's sight. A full collection walked all of it: on a Decision process at
    concurrency 64 one came every few seconds and held the GIL for 81-89 ms, a p99 of 115 ms
    against 39 (gc.callbacks timings; 3-5 ms once frozen)."""
    gc.collect()
    gc.freeze()


def wait_for_termination(servers: list[RunningServer], grace: float = 10.0) -> None:
    """Blocks until SIGTERM or SIGINT, then stops every server gracefully."""
    freeze_startup_heap()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    # Python runs the handler on this thread, and only when it wakes: a signal the kernel
    # hands to another thread (one of gRPC's, say) leaves an untimed wait asleep for good.
    while not stop.wait(SIGNAL_CHECK_SECONDS):
        pass
    log.info("shutting down: draining in-flight calls")
    # Left armed until the process is gone: a shutdown (or an exit) that hangs well past its
    # grace writes every thread's stack to stderr, the service's log.
    faulthandler.dump_traceback_later(grace + SHUTDOWN_STACKS_AFTER_SECONDS)
    for running in servers:
        running.stop(grace)
    log.info("stopped")
