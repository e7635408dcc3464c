"""How an operator's command reaches Looper: the service addresses, the credential, TLS and
the output format. They may be given before the command (``looper --output json models X``)
or after it (``looper models X --output json``); a flag wins over its environment variable,
which wins over the default. A failed call ends the command with exit code 1 and one message
that names the gRPC code, the service and its address; usage errors exit with 2."""

from __future__ import annotations

import copy
import os
import sys
from contextvars import ContextVar
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import grpc
import typer
from typer.core import TyperCommand

DEFAULT_ADDRESSES = {"decision": "127.0.0.1:50051", "feedback": "127.0.0.1:50052", "trainer": "127.0.0.1:50053"}
DEFAULT_TOKEN_FILE = Path("data/run/looper-token")  # what `make run` writes: the local cluster administrator's
PANEL = "Connection and output"


class OutputFormat(str, Enum):
    table = "table"
    json = "json"


@dataclass(frozen=True)
class Connection:
    decision: str
    feedback: str
    trainer: str
    token_file: Path | None  # None: LOOPER_TOKEN, else LOOPER_TOKEN_FILE, else DEFAULT_TOKEN_FILE when it exists
    tls_ca: Path | None
    output: OutputFormat

    @property
    def json(self) -> bool:
        return self.output is OutputFormat.json

    def token(self) -> tuple[str | None, str]:
        """The bearer token and where it came from (for the message when it is refused)."""
        if self.token_file is not None:
            return _read_token(self.token_file, "--token-file"), f"the token in {self.token_file}"
        if os.environ.get("LOOPER_TOKEN"):
            return os.environ["LOOPER_TOKEN"].strip(), "the token in LOOPER_TOKEN"
        if os.environ.get("LOOPER_TOKEN_FILE"):
            path = Path(os.environ["LOOPER_TOKEN_FILE"])
            return _read_token(path, "LOOPER_TOKEN_FILE"), f"the token in {path}"
        if DEFAULT_TOKEN_FILE.is_file():
            return _read_token(DEFAULT_TOKEN_FILE, "the default token file"), f"the token in {DEFAULT_TOKEN_FILE}"
        return None, "no token"

    def client(self):
        """A LooperClient for these addresses and this credential."""
        from looper import LooperClient

        token, _ = self.token()
        credentials = None
        if self.tls_ca is not None:
            try:
                credentials = grpc.ssl_channel_credentials(root_certificates=self.tls_ca.read_bytes())
            except OSError as err:
                raise typer.BadParameter(str(err), param_hint="--tls-ca") from None
        try:
            return LooperClient(self.decision, self.feedback, self.trainer, token=token, token_file=None,
                                credentials=credentials, timeout=30)
        except ValueError as err:  # a token would cross the network in the clear
            raise typer.BadParameter(f"{err}; with looper, pass --tls-ca FILE", param_hint="--token-file") from None


def _read_token(path: Path, source: str) -> str:
    try:
        return path.read_text().strip()
    except OSError as err:
        raise typer.BadParameter(f"cannot read the token file given by {source}: {err}",
                                 param_hint="--token-file") from None


def connection_options(
    ctx: typer.Context,
    output: Annotated[OutputFormat, typer.Option(
        "--output", "-o", help="table for people, json for programs (one document, stable keys)",
        rich_help_panel=PANEL)] = OutputFormat.table,
    decision: Annotated[str, typer.Option(
        envvar="LOOPER_DECISION_ADDR", help="Decision service host:port", rich_help_panel=PANEL)]
        = DEFAULT_ADDRESSES["decision"],
    feedback: Annotated[str, typer.Option(
        envvar="LOOPER_FEEDBACK_ADDR", help="Feedback service host:port", rich_help_panel=PANEL)]
        = DEFAULT_ADDRESSES["feedback"],
    trainer: Annotated[str, typer.Option(
        envvar="LOOPER_TRAINER_ADDR", help="Trainer service host:port (it also hosts the Access service)",
        rich_help_panel=PANEL)] = DEFAULT_ADDRESSES["trainer"],
    token_file: Annotated[Optional[Path], typer.Option(
        help=f"a file holding the bearer token; without it LOOPER_TOKEN, else LOOPER_TOKEN_FILE, "
             f"else {DEFAULT_TOKEN_FILE} when it exists", show_default=False, rich_help_panel=PANEL)] = None,
    tls_ca: Annotated[Optional[Path], typer.Option(
        envvar="LOOPER_TLS_CA", help="CA certificate (PEM) of services that serve TLS", show_default=False,
        rich_help_panel=PANEL)] = None,
) -> None:
    """Looper: ML for product decisions. `looper serve all` runs the services; the other
    commands are an operator's view of them. Exit codes: 0 ok, 1 a call failed, 2 usage."""
    ctx.obj = Connection(decision, feedback, trainer, token_file, tls_ca, output)


def _option_params() -> list:
    probe = typer.Typer(add_completion=False)
    probe.command()(connection_options)
    return typer.main.get_command(probe).params


OPTION_PARAMS = _option_params()
OPTION_NAMES = [p.name for p in OPTION_PARAMS]
_current: ContextVar[Connection] = ContextVar("looper_cli_connection")


class ClientCommand(TyperCommand):
    """A command that calls Looper: it takes the connection options after its name too, and
    turns a failed call into exit code 1 and one message."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.params.extend(copy.copy(p) for p in OPTION_PARAMS)

    def invoke(self, ctx: typer.Context):
        given = {name: ctx.params.pop(name) for name in OPTION_NAMES}
        root = ctx.find_root()
        merged = {}
        for name, value in given.items():
            if _on_command_line(ctx, name) or root is ctx or not _on_command_line(root, name):
                merged[name] = value  # this command's flag, else the environment or the default
            else:
                merged[name] = root.params[name]  # given before the command's name
        ctx.obj = Connection(**merged)
        token = _current.set(ctx.obj)
        try:
            return super().invoke(ctx)
        except _looper_error() as err:
            report_failure(err, ctx.obj)
            raise typer.Exit(1) from None
        finally:
            _current.reset(token)


def _on_command_line(ctx: typer.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def _looper_error():
    from looper import LooperError

    return LooperError


def report_failure(err, connection: Connection) -> None:
    """``looper: CODE: <service at address>: message``, each field violation on its own line,
    and what to do about a missing or refused credential."""
    message = err.message
    if err.service and err.service not in message:
        message = f"{err.service}: {message}"
    lines = [f"looper: {err.code.name}: {message}"]
    lines += [f"  {v.field}: {v.description}" for v in err.violations]
    if err.code is grpc.StatusCode.UNAUTHENTICATED:
        _, source = connection.token()
        if source == "no token":
            lines.append(f"looper: no token was sent: pass --token-file FILE or set LOOPER_TOKEN ({DEFAULT_TOKEN_FILE} "
                         "is the local administrator's token that `make run` writes)")
        else:
            lines.append(f"looper: {source} was refused")
    print("\n".join(lines), file=sys.stderr)


def connection() -> Connection:
    """The connection of the command being run."""
    return _current.get()
