"""Models and training: ``looper models``, ``runs``, ``train``, ``promote`` and ``rollback``."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from services.cli.connection import ClientCommand, connection
from services.cli.output import emit, fields, follow, headline, model_doc, run_doc, table, when
from services.cli.use_cases import UseCase

PANEL = "Models and training"
DONE = ("succeeded", "failed")
STAGES = {"live": "LIVE", "retired": "was live", "candidate": "candidate", "shadow": "shadow", "canary": "canary",
          "rolled_back": "rolled back"}


def register(app: typer.Typer) -> None:
    for command in (models, runs, train, promote, rollback):
        app.command(cls=ClientCommand, rich_help_panel=PANEL)(command)


def models(use_case: UseCase) -> None:
    """A use case's model versions, newest first: which is live, which were, their metrics."""
    with connection().client() as client:
        listed = [model_doc(m) for m in client.list_models(use_case)]
        triggers = {r.run_id: run_doc(r)["trigger"] for r in client.list_training_runs(use_case)}
    for model in listed:
        model["trigger"] = triggers.get(model["run_id"])  # None once the run is no longer kept
    live = next((m["version"] for m in listed if m["stage"] == "live"), None)
    rows = [(m["version"], STAGES.get(m["stage"], m["stage"]), f"v{m['blueprint_version']}", m["run_id"],
             m["trigger"], m["row_count"], when(m["create_time"]),
             f"{when(m['data_start_time'])} .. {when(m['data_end_time'])}", headline(m["metrics"]))
            for m in listed]
    changes = sorted(((c["change_time"] or "", m["version"], c) for m in listed for c in m["stage_history"]),
                     key=lambda change: change[0], reverse=True)
    history = table("stage changes, newest first", ["when (UTC)", "model", "stage", "why"],
                    [(when(at), version, STAGES.get(c["stage"], c["stage"]), c["reason"])
                     for at, version, c in changes])
    emit({"use_case": use_case, "live_model_version": live, "models": listed},
         *([table(f"{use_case}: live model {live or 'none (the default decision answers)'}",
                  ["model", "stage", "blueprint", "run", "trigger", "rows", "trained (UTC)", "data (UTC)",
                   "holdout metrics"], rows), "", history] if listed else
           [f"{use_case}: no models yet (`looper train {use_case}` starts a run; it needs labeled decisions)"]))


def runs(use_case: UseCase) -> None:
    """A use case's training runs, newest first: why each started, how it ended, new vs live model."""
    with connection().client() as client:
        listed = [run_doc(r) for r in client.list_training_runs(use_case)]
    rows = [(r["run_id"], r["state"], r["trigger"], f"v{r['blueprint_version']}", when(r["create_time"]),
             _took(r), r["model_version"], r["promoted"], _versus(r), r["error"]) for r in listed]
    emit({"use_case": use_case, "runs": listed},
         table(f"{use_case}: training runs", ["run", "state", "trigger", "blueprint", "started (UTC)", "took",
                                              "model", "promoted", "product value new / live", "error"], rows)
         if listed else f"{use_case}: no training runs yet")


def train(use_case: UseCase,
          wait: Annotated[bool, typer.Option("--wait", help="show the run's progress until it ends")] = False,
          force_promote: Annotated[bool, typer.Option(
              "--force-promote", help="make the new model live even if it does not beat the live one")] = False,
          timeout: Annotated[float, typer.Option(min=1, help="with --wait: give up waiting after this many seconds")]
          = 1800) -> None:
    """Start a training run (with --wait, follow it until it succeeds or fails)."""
    with connection().client() as client:
        run = client.start_training_run(use_case, force_promote=force_promote)
        if wait:
            run = _follow(client, run, timeout)
    doc = run_doc(run)
    summary = fields(f"{use_case}: training run {doc['run_id']}", [
        ("state", doc["state"]), ("blueprint", f"v{doc['blueprint_version']}"), ("model", doc["model_version"]),
        ("promoted", doc["promoted"] if doc["state"] in DONE else None), ("new model", headline(doc["metrics"])),
        ("live model", headline(doc["live_metrics"])), ("error", doc["error"])])
    hint = "" if wait else f"follow it with `looper runs {use_case}`, or start it with --wait"
    emit({"run": doc}, summary, *([hint] if hint else []))
    if doc["state"] == "failed":
        print(f"looper: training run {doc['run_id']} of {use_case} failed: {doc['error']}", file=sys.stderr)
        raise typer.Exit(1)
    if wait and doc["state"] not in DONE:
        print(f"looper: training run {doc['run_id']} is still {doc['state']} after {timeout:g} s; "
              f"follow it with `looper runs {use_case}`", file=sys.stderr)
        raise typer.Exit(1)


def _follow(client, run, timeout: float):
    return follow(f"training run {run.run_id}", run, lambda: client.get_training_run(run.run_id),
                  lambda r: run_doc(r)["state"], DONE, timeout)


def promote(use_case: UseCase,
            version: Annotated[str, typer.Argument(metavar="VERSION", help="the model version, e.g. m000002", show_default=False)]
            ) -> None:
    """Make a registered model version the live one."""
    with connection().client() as client:
        model = model_doc(client.promote_model(use_case, version))
    emit({"model": model}, f"{use_case}: {model['version']} is live ({headline(model['metrics'])})")


def rollback(use_case: UseCase) -> None:
    """Make the model that was live before the current one live again."""
    with connection().client() as client:
        model = model_doc(client.rollback_model(use_case))
    emit({"model": model}, f"{use_case}: rolled back; {model['version']} is live ({headline(model['metrics'])})")


def _took(run: dict) -> str | None:
    return f"{run['duration_seconds']:.1f} s" if run["duration_seconds"] is not None else None


def _versus(run: dict) -> str | None:
    new, live = run["metrics"].get("product_value"), run["live_metrics"].get("product_value")
    if new is None:
        return None
    return f"{new:.4g} / {live:.4g}" if live is not None else f"{new:.4g} / -"
