"""The ``looper`` command: serve the services, apply a blueprint."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

SERVICES = ("decision", "feedback", "trainer")
SCALED = ("decision", "feedback")  # services that run as several worker processes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="looper", description="Looper: ML for product decisions")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run services until SIGTERM")
    serve.add_argument("service", choices=SERVICES + ("all",))
    serve.add_argument("--data-dir", type=Path)
    serve.add_argument("--host")
    for name in SERVICES:
        serve.add_argument(f"--{name}-port", type=int)
    for name in ("cert", "key", "client-ca"):
        serve.add_argument(f"--tls-{name}", type=Path, help=f"TLS: a PEM file ({name})")
    serve.add_argument("--workers", type=int, help="processes per Decision and Feedback service (default 1)")
    serve.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # started by a supervisor
    apply = commands.add_parser("apply", help="apply a blueprint YAML file through the Trainer")
    apply.add_argument("file", type=Path)
    apply.add_argument("--trainer", default="127.0.0.1:50053", help="Trainer address host:port")
    apply.add_argument("--token-file", type=Path, default=Path("data/run/looper-token"),
                       help="a file holding the bearer token (LOOPER_TOKEN overrides it)")
    features = commands.add_parser("features", help="apply Feast definitions to the data directory's repo")
    features.add_argument("action", choices=["apply"])
    features.add_argument("file", type=Path, help="a Python file defining Feast entities, sources and views")
    features.add_argument("--data-dir", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if args.command == "serve":
        return serve_command(args)
    if args.command == "features":
        return features_command(args)
    return apply_command(args)


def serve_command(args) -> int:
    from services.migration import DataDirError, open_data_dir
    from services.platform.auth import CredentialStore, bootstrap_admin
    from services.platform.files import exclusive_lock
    from services.platform.grpc_runtime import Tls, is_loopback, start_server, wait_for_termination
    from services.platform.settings import Settings, SettingsError

    try:
        settings = Settings.load(vars(args))
        data = open_data_dir(settings.data_dir)
    except (SettingsError, DataDirError) as err:
        print(f"looper: {err}", file=sys.stderr)
        return 2
    tls = Tls(settings.tls_cert, settings.tls_key, settings.tls_client_ca) if settings.tls_cert else None
    if tls is None and not is_loopback(settings.host):
        print(f"looper: refusing to serve {settings.host} without TLS (bearer tokens would cross the network in "
              "the clear): set --tls-cert and --tls-key, or bind 127.0.0.1", file=sys.stderr)
        return 2
    credentials = CredentialStore(data.access.credentials)
    if not args.worker:
        with exclusive_lock(data.locks / "bootstrap.lock"):  # services started together make one administrator
            if bootstrap_admin(credentials, data.access.local_token):
                print(f"looper: created a cluster administrator; its token is in {data.access.local_token}",
                      flush=True)
    names = SERVICES if args.service == "all" else (args.service,)
    if settings.workers > 1 and not args.worker and set(names) & set(SCALED):
        return supervise(names, settings)
    servers = []
    for name in names:
        create = _factory(name)
        running = start_server(create(settings, data, credentials), settings.host,
                               getattr(settings, f"{name}_port"), credentials, settings.max_message_bytes,
                               workers=settings.threads, tls=tls, max_in_flight=settings.max_in_flight,
                               use_case_limit=settings.use_case_max_in_flight, reuse_port=args.worker)
        servers.append(running)
        print(f"looper {name} service listening on {settings.host}:{running.port}", flush=True)
    wait_for_termination(servers, settings.grace_period)
    return 0


def supervise(names: tuple[str, ...], settings) -> int:
    """Runs the Decision and Feedback services as ``settings.workers`` processes each on a
    shared port, the Trainer as one (its scheduler trains one run per use case at a time)."""
    from services.platform.supervisor import Supervisor, Worker, reserve_port

    workers, reservations = [], []
    for name in names:
        try:
            reservation = reserve_port(settings.host, getattr(settings, f"{name}_port"))
        except OSError as err:
            print(f"looper: cannot serve {name} on {settings.host}:{getattr(settings, f'{name}_port')}: {err}",
                  file=sys.stderr)
            return 2
        reservations.append(reservation)
        command = [sys.executable, "-m", "services.cli", "serve", name, "--worker", "--workers", "1",
                   "--data-dir", str(settings.data_dir), "--host", settings.host,
                   f"--{name}-port", str(reservation.getsockname()[1])]
        for option in ("tls_cert", "tls_key", "tls_client_ca"):
            if getattr(settings, option):
                command += [f"--{option.replace('_', '-')}", str(getattr(settings, option))]
        count = settings.workers if name in SCALED else 1
        workers += [Worker(name, number, command) for number in range(1, count + 1)]
    try:
        return Supervisor(workers, grace=settings.grace_period).run()
    finally:
        for reservation in reservations:
            reservation.close()


def features_command(args) -> int:
    from services.features.store import feature_store
    from services.migration import open_data_dir
    from services.platform.settings import Settings

    settings = Settings.load(vars(args))
    data = open_data_dir(settings.data_dir)
    os.environ["LOOPER_PRODUCT_TABLES"] = str(data.features.product_tables)  # definitions may read their tables there
    names = feature_store(settings, data).apply_module(args.file)
    print(f"applied to {data.features.repo}: {', '.join(names)}")
    return 0


def _factory(name: str):
    if name == "decision":
        from services.decision.app import create
    elif name == "feedback":
        from services.feedback.app import create
    else:
        from services.trainer.app import create
    return create


def apply_command(args) -> int:
    from looper import LooperClient, LooperError

    token = os.environ.get("LOOPER_TOKEN") or (args.token_file.read_text().strip() if args.token_file.exists() else None)
    with LooperClient(trainer=args.trainer, token=token) as client:
        try:
            blueprint, created = client.apply_blueprint(args.file.read_text())
        except LooperError as err:
            print(f"looper: {err}", file=sys.stderr)
            return 1
    state = "applied as new version" if created else "unchanged; current version"
    print(f"{blueprint.use_case}: {state} {blueprint.version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
