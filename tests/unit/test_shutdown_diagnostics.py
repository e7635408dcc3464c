"""SIGTERM stops a service whichever thread the kernel hands it to, and a shutdown that hangs
says where: the service logs every thread's stack once it is well past its grace, and the
launcher that had to kill it warns with the end of its log (a hang in a test's teardown
otherwise passes unseen)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from services.launcher import LooperProcess

ROOT = Path(__file__).resolve().parents[2]


def test_sigterm_stops_the_service_when_another_thread_receives_it():
    """Python runs a signal's handler on the main thread; when the kernel delivers the signal
    to another thread, a main thread waiting without a timeout never wakes to run it (the
    trainer of an e2e test ignored SIGTERM for 60 s this way)."""
    script = textwrap.dedent("""
        import os, signal, threading
        from services.platform import grpc_runtime

        class Server:
            def stop(self, grace):
                print("stopped", flush=True)

        # Made before the main thread blocks SIGTERM, so it is the one thread that can take it.
        threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        grpc_runtime.wait_for_termination([Server()], grace=0)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=20)
    assert done.returncode == 0 and done.stdout == "stopped\n", done.stderr


def test_a_hung_shutdown_writes_every_threads_stack():
    script = textwrap.dedent("""
        import os, signal, threading, time
        from services.platform import grpc_runtime

        grpc_runtime.SHUTDOWN_STACKS_AFTER_SECONDS = 0.2

        class StuckServer:
            def stop(self, grace):
                time.sleep(3)  # a drain far past its grace

        threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()
        grpc_runtime.wait_for_termination([StuckServer()], grace=0)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr
    assert "Timeout" in done.stderr and "in stop" in done.stderr and "wait_for_termination" in done.stderr


def test_the_launcher_warns_with_the_log_when_it_must_kill(tmp_path):
    log = tmp_path / "serve.log"
    log.write_text("the service's last words\n")
    deaf = subprocess.Popen([sys.executable, "-c", "import signal, time\n"
                             "signal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready', flush=True)\n"
                             "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    assert deaf.stdout.readline() == "ready\n"
    with pytest.warns(UserWarning, match=r"(?s)did not exit within 0.5s of SIGTERM.*the service's last words"):
        code = LooperProcess(deaf, {}, tmp_path, log).stop(timeout=0.5)
    deaf.stdout.close()
    assert code == -9
