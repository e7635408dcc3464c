"""What Looper recorded: ``looper decision get``, ``label get`` and ``join-stats``."""

from __future__ import annotations

from typing import Annotated

import typer

from services.cli.connection import ClientCommand, connection
from services.cli.output import decision_doc, emit, fields, join_stats_doc, label_doc, table, when
from services.cli.use_cases import UseCase

PANEL = "Decisions and labels"
DecisionId = Annotated[str, typer.Argument(metavar="DECISION_ID", help="the decision id the product passed to Decide", show_default=False)]


def register(app: typer.Typer) -> None:
    decision = typer.Typer(help="Decisions as Looper logged them.", no_args_is_help=True)
    decision.command("get", cls=ClientCommand)(get_decision)
    app.add_typer(decision, name="decision", rich_help_panel=PANEL)
    label = typer.Typer(help="The labels Looper joined to decisions.", no_args_is_help=True)
    label.command("get", cls=ClientCommand)(get_label)
    app.add_typer(label, name="label", rich_help_panel=PANEL)
    app.command("join-stats", cls=ClientCommand, rich_help_panel=PANEL)(join_stats)


def get_decision(use_case: UseCase, decision_id: DecisionId) -> None:
    """A decision as logged: what was decided, by which model, for whom, on which feature values."""
    with connection().client() as client:
        doc = decision_doc(client.get_decision(use_case, decision_id))
    d = doc["decision"]
    summary = fields(f"{use_case}: decision {decision_id}", [
        ("action", d["action"]), ("score", d["score"]), ("value", d["value"] or None),
        ("propensity", d["propensity"]),
        ("default", f"yes ({d['default_reason']})" if d["is_default"] and d["default_reason"] else d["is_default"]),
        ("exploration", d["is_exploration"]), ("model", d["model_version"]),
        ("blueprint", f"v{d['blueprint_version']}"), ("decided (UTC)", when(d["decide_time"])),
        ("subject", ", ".join(f"{k}={v}" for k, v in doc["subject"].items())), ("traceparent", doc["traceparent"])])
    shown = [summary]
    if d["ranking"]:
        shown.append(table("ranking", ["action", "score", "propensity"],
                           [(r["action_id"], r["score"], r["propensity"]) for r in d["ranking"]]))
    shown.append(table("features it decided on", ["feature", "value"], doc["features"].items()))
    emit(doc, *shown)


def get_label(use_case: UseCase, decision_id: DecisionId) -> None:
    """A decision's label: pending until its attribution window closes, then joined with its value."""
    with connection().client() as client:
        doc = label_doc(use_case, decision_id, client.get_label(use_case, decision_id))
    emit({"label": doc}, fields(f"{use_case}: label of decision {decision_id}", [
        ("state", doc["state"]), ("value", doc["value"]), ("outcomes", doc["outcome_count"]),
        ("window ends (UTC)", when(doc["window_end_time"]))]))


def join_stats(use_case: UseCase) -> None:
    """How decisions and outcomes are being joined: labeled, pending, late, orphan and early outcomes."""
    with connection().client() as client:
        doc = join_stats_doc(use_case, client.join_stats(use_case))
    emit({"join_stats": doc}, fields(f"{use_case}: feature-label join", [
        ("decisions joined (labeled)", doc["joined_decisions"]),
        ("decisions pending (window open)", doc["pending_decisions"]),
        ("outcomes attributed", doc["attributed_outcomes"]),
        ("outcomes late (after the window)", doc["late_outcomes"]),
        ("outcomes orphan (unknown decision)", doc["orphan_outcomes"]),
        ("outcomes early (before the decision)", doc["early_outcomes"])]))
