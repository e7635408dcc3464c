"""The baseline: a bare gRPC unary echo server on the same runtime as Looper's services
(sync grpcio server, 16 worker threads), using the reflection protos so no codegen is needed."""

from __future__ import annotations

import sys
from concurrent import futures

import grpc
from grpc_health.v1 import health_pb2


def echo(request: bytes, context) -> bytes:
    return request


def main() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    handler = grpc.method_handlers_generic_handler("bench.Echo", {
        "Echo": grpc.unary_unary_rpc_method_handler(echo, request_deserializer=None, response_serializer=None)})
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"echo listening on 127.0.0.1:{port}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__" and health_pb2:
    sys.exit(main())
