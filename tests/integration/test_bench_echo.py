"""The bench's ceiling: the echo server forks its processes before any gRPC object and all
of them serve one port (SO_REUSEPORT); the kernel hands each connection to one of them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import grpc

from benchmarks.generator import process_tree

ROOT = Path(__file__).resolve().parents[2]


def test_two_echo_processes_share_one_port_and_answer_what_they_got():
    server = subprocess.Popen([sys.executable, "-m", "benchmarks.echo_server", "--processes", "2"], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        address, pids = re.search(r"listening on (\S+) pids=(\S+)", line).groups()
        children = [int(p) for p in pids.split(",")]
        assert len(children) == 2 and set(children) <= set(process_tree(server.pid))
        for i in range(8):  # one connection each: they spread over the processes
            with grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
                echo = channel.unary_unary("/bench.Echo/Echo")
                assert echo(f"payload {i}".encode(), timeout=10) == f"payload {i}".encode()
    finally:
        server.terminate()
        assert server.wait(30) == 0
    assert not [p for p in children if Path(f"/proc/{p}").exists()]
