"""Deleting data: ``looper delete subject``, ``delete use-case`` and ``deletion get``.

A deletion hides what it covers at once and is carried out in the background by the
Trainer's deletion job; these commands ask for one and follow it (``--wait``)."""

from __future__ import annotations

import sys
import uuid
from typing import Annotated

import typer

from services.cli.connection import ClientCommand, connection
from services.cli.output import deletion_doc, emit, fields, follow, when
from services.cli.use_cases import UseCase

PANEL = "Deleting data"
DONE = ("done", "failed")
Wait = Annotated[bool, typer.Option("--wait", help="follow the deletion until it is done or failed")]
Timeout = Annotated[float, typer.Option(min=1, help="with --wait: give up waiting after this many seconds")]
RequestId = Annotated[str, typer.Option(
    help="makes a retry safe: the same request id returns the same deletion (default: a fresh one)")]


def register(app: typer.Typer) -> None:
    delete = typer.Typer(help="Delete a subject's data or a whole use case, everywhere Looper keeps it.",
                         no_args_is_help=True)
    delete.command("subject", cls=ClientCommand)(delete_subject)
    delete.command("use-case", cls=ClientCommand)(delete_use_case)
    app.add_typer(delete, name="delete", rich_help_panel=PANEL)
    deletion = typer.Typer(help="Deletions and how far they got.", no_args_is_help=True)
    deletion.command("get", cls=ClientCommand)(get_deletion)
    app.add_typer(deletion, name="deletion", rich_help_panel=PANEL)


def delete_subject(use_case: UseCase,
                   subject: Annotated[list[str], typer.Argument(
                       metavar="KEY=VALUE...", help="the subject's entity values, e.g. user_id=u1",
                       show_default=False)],
                   wait: Wait = False, timeout: Timeout = 300, request_id: RequestId = "") -> None:
    """Delete one subject's decisions, outcomes, labels, training rows and personalization features."""
    entities = _entities(subject)
    with connection().client() as client:
        deletion = client.delete_subject_data(use_case, entities, request_id or uuid.uuid4().hex)
        _show(client, deletion, wait, timeout)


def delete_use_case(use_case: UseCase,
                    yes: Annotated[bool, typer.Option("--yes", help="confirm: the use case and all its data go")] = False,
                    reason: Annotated[str, typer.Option(help="why, for the audit log")] = "",
                    wait: Wait = False, timeout: Timeout = 300, request_id: RequestId = "") -> None:
    """Delete a use case: its blueprints, models, runs, experiments, logs, labels and features."""
    if not yes:
        raise typer.BadParameter(f"deleting {use_case} removes all its data; pass --yes to confirm",
                                 param_hint="--yes")
    with connection().client() as client:
        deletion = client.delete_use_case(use_case, request_id or uuid.uuid4().hex, reason)
        _show(client, deletion, wait, timeout)


def get_deletion(deletion_id: Annotated[str, typer.Argument(
                     metavar="DELETION_ID", help="the id a delete command printed (del-...)", show_default=False)],
                 wait: Wait = False, timeout: Timeout = 300) -> None:
    """A deletion: its state, what it removed, and what it still waits for."""
    with connection().client() as client:
        _show(client, client.get_deletion(deletion_id), wait, timeout)


def _entities(pairs: list[str]) -> dict[str, str]:
    entities = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="KEY=VALUE")
        if key in entities:
            raise typer.BadParameter(f"{key} is given twice", param_hint="KEY=VALUE")
        entities[key] = value
    return entities


def _show(client, deletion, wait: bool, timeout: float) -> None:
    if wait:
        deletion = follow(f"deletion {deletion.deletion_id}", deletion,
                          lambda: client.get_deletion(deletion.deletion_id),
                          lambda d: deletion_doc(d)["state"], DONE, timeout)
    doc = deletion_doc(deletion)
    about = ", ".join(f"{k}={v}" for k, v in doc["subject"].items()) or doc["subject_sha256"]
    removed = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in doc["removed"].items() if n)
    waiting = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in doc["waiting"].items() if n)
    emit({"deletion": doc}, fields(f"{doc['use_case']}: deletion {doc['deletion_id']}", [
        ("what", f"{doc['kind']} {about}" if about else doc["kind"]), ("state", doc["state"]),
        ("requested (UTC)", when(doc["create_time"])), ("by", doc["requested_by"]),
        ("ended (UTC)", when(doc["end_time"])), ("removed", removed or None),
        ("waiting for", f"{waiting} ({doc['waiting_reason']})" if waiting else doc["waiting_reason"]),
        ("error", doc["error"])]),
        *([] if doc["state"] in DONE else [f"follow it with `looper deletion get {doc['deletion_id']} --wait`"]))
    if doc["state"] == "failed":
        print(f"looper: deletion {doc['deletion_id']} failed: {doc['error']}", file=sys.stderr)
        raise typer.Exit(1)
    if wait and doc["state"] not in DONE:
        print(f"looper: deletion {doc['deletion_id']} is still {doc['state']} after {timeout:g} s", file=sys.stderr)
        raise typer.Exit(1)
