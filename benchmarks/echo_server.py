"""The ceiling: a bare gRPC unary echo server in Python, the runtime Looper's services use,
with as many processes as the Decision service gets.

Each process is forked before any gRPC object exists and then builds its own server on the
same port with ``grpc.so_reuseport=1``; the kernel hands each new connection to one of
them (it balances connections, not calls: the load generator opens several). The server is
``grpc.aio`` on one thread per process (the gRPC maintainers' advice for Python, and the
fastest Python gRPC server measured here) on uvloop, as Looper's Decision service runs; or
the sync server with ``--runtime sync``.
Requests are raw bytes answered as they came (no protobuf code), so what it measures is
what any Python gRPC call costs before a handler does anything.

With ``--canned-decide DATA_DIR`` each process serves Looper's Decision service instead, as
``looper serve decision`` builds it (the asyncio server, the call guard's authentication,
admission and authorization against the data directory's credentials, the servicer, the
request decoded into a command and the answer encoded), with every call answered by one
decision the service logged before: what a Decide call costs before anything is decided.

    python -m benchmarks.echo_server --processes 2   # prints "echo listening on HOST:PORT pids=..."
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import traceback

METHOD = "/bench.Echo/Echo"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--runtime", choices=["aio", "sync"], default="aio")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--canned-decide", metavar="DATA_DIR", help="serve Decide with a canned answer (see above)")
    args = parser.parse_args(argv)
    port = args.port or free_port()
    ready_read, ready_write = os.pipe()
    children = []
    for _ in range(args.processes):
        pid = os.fork()
        if pid == 0:  # the child: no gRPC object was created before the fork
            os.close(ready_read)
            try:
                if args.canned_decide:
                    serve_canned_decide(args.canned_decide, port, ready_write)
                else:
                    serve(args.runtime, port, ready_write)
            except BaseException:  # noqa: BLE001 - told, then the parent sees no ready byte
                traceback.print_exc()
            finally:
                os._exit(0)
        children.append(pid)
    os.close(ready_write)
    with os.fdopen(ready_read, "rb") as ready:
        if len(ready.read(args.processes)) != args.processes:  # each child writes a byte when it listens
            stop(children)
            print("echo: a server process failed to start", file=sys.stderr)
            return 1
    print(f"echo listening on 127.0.0.1:{port} pids={','.join(map(str, children))}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: stop(children))
    signal.signal(signal.SIGINT, lambda *_: stop(children))
    for pid in children:
        while True:
            try:
                os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
            except ChildProcessError:
                break
    return 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop(children: list[int]) -> None:
    for pid in children:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def serve(runtime: str, port: int, ready_fd: int) -> None:
    import grpc

    options = [("grpc.so_reuseport", 1)]

    def echo(request: bytes, context) -> bytes:
        return request

    async def echo_async(request: bytes, context) -> bytes:
        return request

    def handler(function):
        return grpc.method_handlers_generic_handler("bench.Echo", {
            "Echo": grpc.unary_unary_rpc_method_handler(function, request_deserializer=None,
                                                        response_serializer=None)})

    if runtime == "sync":
        import threading
        from concurrent import futures

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=options)
        server.add_generic_rpc_handlers((handler(echo),))
        if server.add_insecure_port(f"127.0.0.1:{port}") != port:
            raise OSError(f"could not bind 127.0.0.1:{port}")
        server.start()
        os.write(ready_fd, b"1")
        stopped = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())
        stopped.wait()
        server.stop(1).wait()
        return

    import asyncio

    async def run() -> None:
        server = grpc.aio.server(options=options)
        server.add_generic_rpc_handlers((handler(echo_async),))
        if server.add_insecure_port(f"127.0.0.1:{port}") != port:
            raise OSError(f"could not bind 127.0.0.1:{port}")
        await server.start()
        os.write(ready_fd, b"1")
        stopped = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
        await stopped.wait()
        await server.stop(1)

    import uvloop

    uvloop.run(run())  # the event loop the Decision service's server runs on


def serve_canned_decide(data_dir: str, port: int, ready_fd: int) -> None:
    """The Decision service's server with a decider that answers every call at once with the
    data directory's first logged notification decision (see the module's docstring)."""
    from services.decision.server import binding
    from services.platform.auth import CredentialStore
    from services.platform.data_dir import DataDir
    from services.platform.grpc_runtime import start_configured, wait_for_termination
    from services.platform.settings import Settings
    from services.platform.telemetry import telemetry_for

    from benchmarks.floor import logged_decision
    from benchmarks.workloads import NOTIFICATIONS

    settings = Settings.load({"data_dir": data_dir})
    data = DataDir(settings.data_dir)
    answer = logged_decision(data.decisions, NOTIFICATIONS), False

    class CannedDecider:
        async def decide_async(self, command):
            return answer

    interceptors = telemetry_for("looper-decision").server_interceptors(asynchronous=True)
    running = start_configured([binding(CannedDecider(), interceptors=interceptors, threads=settings.threads)],
                               settings, port, CredentialStore(data.access.credentials), reuse_port=True)
    os.write(ready_fd, b"1")
    wait_for_termination([running], grace=1)


if __name__ == "__main__":
    sys.exit(main())
