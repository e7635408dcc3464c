"""``looper serve`` and ``looper features apply``: the commands that run on the data directory's
machine (the others are clients of the services)."""

from __future__ import annotations

import logging
import os
import sys
from enum import Enum
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Optional

import typer

SERVICES = ("decision", "feedback", "trainer")
SCALED = ("decision", "feedback")  # services that run as several worker processes


class Service(str, Enum):
    decision = "decision"
    feedback = "feedback"
    trainer = "trainer"
    all = "all"


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel="Running Looper")(serve)
    features = typer.Typer(help="Feast definitions of the data directory's feature repo.", no_args_is_help=True)
    features.command("apply")(features_apply)
    app.add_typer(features, name="features", rich_help_panel="Running Looper")


def _pem(name: str):
    return typer.Option(f"--tls-{name}", help=f"TLS: a PEM file ({name})", show_default=False)


def serve(service: Annotated[Service, typer.Argument(help="the service to run, or all three", show_default=False)],
          data_dir: Annotated[Optional[Path], typer.Option(help="data directory (LOOPER_DATA_DIR)")] = None,
          host: Annotated[Optional[str], typer.Option(help="address to bind (LOOPER_HOST)")] = None,
          decision_port: Annotated[Optional[int], typer.Option(help="LOOPER_DECISION_PORT, 50051")] = None,
          feedback_port: Annotated[Optional[int], typer.Option(help="LOOPER_FEEDBACK_PORT, 50052")] = None,
          trainer_port: Annotated[Optional[int], typer.Option(help="LOOPER_TRAINER_PORT, 50053")] = None,
          tls_cert: Annotated[Optional[Path], _pem("cert")] = None,
          tls_key: Annotated[Optional[Path], _pem("key")] = None,
          tls_client_ca: Annotated[Optional[Path], _pem("client-ca")] = None,
          workers: Annotated[Optional[int], typer.Option(
              help="processes per Decision and Feedback service (default 1)")] = None,
          worker: Annotated[bool, typer.Option(hidden=True)] = False) -> None:  # started by a supervisor
    """Run services until SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = SimpleNamespace(service=service.value, data_dir=data_dir, host=host, decision_port=decision_port,
                           feedback_port=feedback_port, trainer_port=trainer_port, tls_cert=tls_cert,
                           tls_key=tls_key, tls_client_ca=tls_client_ca, workers=workers, worker=worker)
    raise typer.Exit(serve_command(args))


def features_apply(file: Annotated[Path, typer.Argument(
                       metavar="FILE", exists=True, dir_okay=False, help="a Python file defining Feast entities, sources and views")],
                   data_dir: Annotated[Optional[Path], typer.Option(help="data directory (LOOPER_DATA_DIR)")] = None
                   ) -> None:
    """Apply Feast definitions to the data directory's repo."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    raise typer.Exit(features_command(SimpleNamespace(file=file, data_dir=data_dir)))


def serve_command(args) -> int:
    from services.migration import DataDirError, open_data_dir
    from services.platform.auth import CredentialStore, bootstrap_admin
    from services.platform.files import exclusive_lock
    from services.platform.grpc_runtime import Tls, is_loopback, start_configured, wait_for_termination
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
        running = start_configured(create(settings, data, credentials), settings, getattr(settings, f"{name}_port"),
                                   credentials, tls=tls, reuse_port=args.worker)
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
