"""`make run`: the three services on their standard ports, traced into a local Zipkin
(unless OTEL_SDK_DISABLED=true or tracing is pointed elsewhere), until Ctrl-C. The data
directory is first prepared for the README's quick start (the notification example)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from services.tracing.backend import ROOT, preferred_port, start_tracing_backend


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=Path("data/run"))
    args = parser.parse_args()
    if prepare_quick_start(args.data_dir) != 0:
        print(f"make run: preparing {args.data_dir} for the quick start failed (see above)", file=sys.stderr)
        return 1
    backend = None
    env = dict(os.environ)
    if env.get("OTEL_SDK_DISABLED", "").lower() != "true" and "OTEL_EXPORTER_OTLP_ENDPOINT" not in env:
        backend = start_tracing_backend(args.data_dir.parent / "tracing-run", preferred_port(9411),
                                        preferred_port(4318))
        env.update(backend.otel_env())
        print(f"tracing UI: {backend.ui_url}  (OTLP on {backend.otlp_endpoint})", flush=True)
    services = subprocess.Popen([sys.executable, "-m", "services.cli", "serve", "all", "--data-dir",
                                 str(args.data_dir)], env=env)
    signal.signal(signal.SIGTERM, lambda *_: services.send_signal(signal.SIGTERM))  # drain, then stop
    try:
        return services.wait()
    except KeyboardInterrupt:  # Ctrl-C reached the services too (same process group)
        return services.wait()
    finally:
        if backend:
            backend.stop()


def prepare_quick_start(data_dir: Path) -> int:
    """Applies the notification example's Feast definitions to ``data_dir`` and publishes its
    user profiles (idempotent), in a child process: Feast stays out of this long-lived one."""
    return subprocess.run([sys.executable, "-m", "examples.notifications.prepare", "--data-dir",
                           str(data_dir.resolve())], cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main())
