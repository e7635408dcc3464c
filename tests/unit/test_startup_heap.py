"""A serving process puts what starting made out of the garbage collector's sight: a full
collection under load otherwise walked the whole startup heap and held the GIL for 80 ms."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_serving_puts_what_starting_made_out_of_the_collectors_sight():
    """A full collection walks every object it tracks: the startup heap frozen, it walks only
    what serving made since."""
    script = textwrap.dedent("""
        import gc, os, signal, threading
        from services.platform import grpc_runtime

        started = [{"made while starting": i} for i in range(10000)]
        before = gc.get_freeze_count()

        class Server:
            def stop(self, grace):
                print(before, gc.get_freeze_count() > before + len(started), flush=True)

        threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()
        grpc_runtime.wait_for_termination([Server()], grace=0)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=20)
    assert done.returncode == 0 and done.stdout == "0 True\n", (done.stdout, done.stderr)
