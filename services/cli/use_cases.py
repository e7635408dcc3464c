"""Use cases and their blueprints: ``looper use-cases``, ``apply``, ``blueprint show|diff|history``,
``pause`` and ``resume``."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from services.cli.connection import ClientCommand, connection
from services.cli.output import blueprint_doc, emit, fields, table, use_case_doc, when

UseCase = Annotated[str, typer.Argument(metavar="USE_CASE", help="the use case's name", show_default=False)]
PANEL = "Use cases and blueprints"


def register(app: typer.Typer) -> None:
    app.command("use-cases", cls=ClientCommand, rich_help_panel=PANEL)(use_cases)
    app.command(cls=ClientCommand, rich_help_panel=PANEL)(apply)
    blueprint = typer.Typer(help="A use case's blueprint versions.", no_args_is_help=True)
    blueprint.command("show", cls=ClientCommand)(show)
    blueprint.command("diff", cls=ClientCommand)(diff)
    blueprint.command("history", cls=ClientCommand)(history)
    app.add_typer(blueprint, name="blueprint", rich_help_panel=PANEL)
    app.command(cls=ClientCommand, rich_help_panel=PANEL)(pause)
    app.command(cls=ClientCommand, rich_help_panel=PANEL)(resume)


def use_cases() -> None:
    """Every use case you may read: its blueprint version, whether it is paused, its live model."""
    with connection().client() as client:
        listed = [use_case_doc(u) for u in client.list_use_cases()]
    rows = [(u["use_case"], u["decision_type"], u["blueprint_version"],
             f"paused: {u['pause_reason']}" if u["paused"] and u["pause_reason"] else
             "paused" if u["paused"] else "running", u["live_model_version"] or "none (default decision)")
            for u in listed]
    emit({"use_cases": listed},
         table(None, ["use case", "decision", "blueprint", "state", "live model"], rows) if listed else
         "no use cases yet: apply a blueprint with `looper apply BLUEPRINT.yaml`")


def apply(file: Annotated[Path, typer.Argument(metavar="FILE", exists=True, dir_okay=False, help="a blueprint YAML file")]) -> None:
    """Apply a blueprint YAML file through the Trainer: a changed blueprint becomes a new version."""
    with connection().client() as client:
        blueprint, created = client.apply_blueprint(file.read_text())
    state = "applied as new version" if created else "unchanged; current version"
    emit({"blueprint": blueprint_doc(blueprint, with_spec=False), "created": created},
         f"{blueprint.use_case}: {state} {blueprint.version}")


def show(use_case: UseCase,
         version: Annotated[int, typer.Option(min=0, help="the version to show; 0 is the current one")] = 0) -> None:
    """A blueprint version's YAML, exactly as applied."""
    with connection().client() as client:
        blueprint = client.get_blueprint(use_case, version)
    doc = blueprint_doc(blueprint)
    emit({"blueprint": doc},
         fields(None, [("use case", doc["use_case"]), ("version", doc["version"]),
                       ("decision", doc["decision_type"]), ("applied", when(doc["create_time"])),
                       ("sha256", doc["spec_sha256"])]),
         "",
         Text(blueprint.spec_yaml.rstrip("\n")))


def diff(use_case: UseCase,
         a: Annotated[int, typer.Argument(metavar="A", min=1, help="the older version", show_default=False)],
         b: Annotated[int, typer.Argument(metavar="B", min=1, help="the newer version", show_default=False)]) -> None:
    """A unified diff of two blueprint versions' YAML."""
    with connection().client() as client:
        old, new = client.get_blueprint(use_case, a), client.get_blueprint(use_case, b)
    lines = list(difflib.unified_diff(old.spec_yaml.splitlines(keepends=True), new.spec_yaml.splitlines(keepends=True),
                                      f"{use_case} v{a}", f"{use_case} v{b}"))
    text = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
    emit({"use_case": use_case, "from_version": a, "to_version": b, "identical": not lines, "diff": text},
         Text(text.rstrip("\n")) if lines else f"{use_case}: v{a} and v{b} are identical")


def history(use_case: UseCase) -> None:
    """Every version of a use case's blueprint, with how many lines each changed."""
    with connection().client() as client:
        current = client.get_blueprint(use_case)
        versions = [client.get_blueprint(use_case, v) for v in range(1, current.version)] + [current]
    docs, previous = [], ""
    for blueprint in versions:
        changed = list(difflib.unified_diff(previous.splitlines(), blueprint.spec_yaml.splitlines(), lineterm="", n=0))
        body = [line for line in changed if not line.startswith(("---", "+++", "@@"))]
        docs.append({**blueprint_doc(blueprint, with_spec=False),
                     "lines_added": sum(line.startswith("+") for line in body),
                     "lines_removed": sum(line.startswith("-") for line in body)})
        previous = blueprint.spec_yaml
    rows = [(f"v{d['version']}" + (" (current)" if d["version"] == current.version else ""), when(d["create_time"]),
             d["decision_type"], d["spec_sha256"][:12], f"+{d['lines_added']} -{d['lines_removed']}")
            for d in reversed(docs)]
    emit({"use_case": use_case, "current_version": current.version, "versions": docs},
         table(f"{use_case}: blueprint versions, newest first",
               ["version", "applied (UTC)", "decision", "sha256", "lines"], rows))


def pause(use_case: UseCase,
          reason: Annotated[str, typer.Option(help="why, for the audit log and whoever resumes it")] = "") -> None:
    """Pause a use case: it answers its default decision (still logged) and does not train."""
    with connection().client() as client:
        client.pause_use_case(use_case, reason)
    emit({"use_case": use_case, "paused": True, "reason": reason or None},
         f"{use_case}: paused; it answers its default decision until `looper resume {use_case}`")


def resume(use_case: UseCase) -> None:
    """Resume a paused use case: its live model decides again and it trains on schedule."""
    with connection().client() as client:
        client.resume_use_case(use_case)
    emit({"use_case": use_case, "paused": False}, f"{use_case}: resumed")
