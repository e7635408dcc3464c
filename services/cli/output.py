"""What the operator's commands print: each answer as a plain document (the ``--output json``
form: snake_case keys that stay put, enums as lower-case words, times as RFC 3339 in UTC or
null) and as Rich tables for people."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Callable, Iterable

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from services.cli.connection import connection

# The metrics a table shows, in this order, when a model has them; --output json has all.
HEADLINE_METRICS = ("product_value", "logged_value", "auc", "normalized_entropy", "rmse", "ndcg_at_10", "mrr")


def enum_word(enum_type, number: int, prefix: str) -> str:
    """``MODEL_STAGE_LIVE`` -> ``live``; an unspecified value is ``unspecified``."""
    try:
        return enum_type.Name(number).removeprefix(prefix).lower()
    except ValueError:
        return str(number)


def timestamp(ts) -> str | None:
    return ts.ToJsonString() if ts.seconds or ts.nanos else None


def _seconds(ts) -> float:
    return ts.seconds + ts.nanos / 1e9


def metrics(values) -> dict[str, float]:
    return {name: values[name] for name in sorted(values)}


def blueprint_doc(bp, with_spec: bool = True) -> dict[str, Any]:
    from looperpb.v1 import types_pb2

    doc = {"use_case": bp.use_case, "version": bp.version,
           "decision_type": enum_word(types_pb2.DecisionType, bp.decision_type, "DECISION_TYPE_"),
           "spec_sha256": bp.spec_sha256, "create_time": timestamp(bp.create_time)}
    if with_spec:
        doc["spec_yaml"] = bp.spec_yaml
    return doc


def use_case_doc(uc) -> dict[str, Any]:
    from looperpb.v1 import types_pb2

    return {"use_case": uc.use_case, "blueprint_version": uc.blueprint_version,
            "decision_type": enum_word(types_pb2.DecisionType, uc.decision_type, "DECISION_TYPE_"),
            "paused": uc.paused, "pause_reason": uc.pause_reason if uc.paused else None,
            "live_model_version": uc.live_model_version or None}


def model_doc(model) -> dict[str, Any]:
    from looperpb.v1 import trainer_pb2

    return {"use_case": model.use_case, "version": model.version,
            "stage": enum_word(trainer_pb2.ModelStage, model.stage, "MODEL_STAGE_"),
            "blueprint_version": model.blueprint_version, "run_id": model.run_id, "row_count": model.row_count,
            "create_time": timestamp(model.create_time), "data_start_time": timestamp(model.data_start_time),
            "data_end_time": timestamp(model.data_end_time), "metrics": metrics(model.metrics),
            "stage_history": [{"stage": enum_word(trainer_pb2.ModelStage, c.stage, "MODEL_STAGE_"),
                               "reason": c.reason or None, "change_time": timestamp(c.change_time)}
                              for c in model.stage_history]}


def run_doc(run) -> dict[str, Any]:
    from looperpb.v1 import trainer_pb2

    return {"run_id": run.run_id, "use_case": run.use_case, "blueprint_version": run.blueprint_version,
            "state": enum_word(trainer_pb2.TrainingRunState, run.state, "TRAINING_RUN_STATE_"),
            "trigger": enum_word(trainer_pb2.TrainingTrigger, run.trigger, "TRAINING_TRIGGER_"),
            "create_time": timestamp(run.create_time), "end_time": timestamp(run.end_time),
            "duration_seconds": (round(_seconds(run.end_time) - _seconds(run.create_time), 3)
                                 if timestamp(run.create_time) and timestamp(run.end_time) else None),
            "model_version": run.model_version or None, "promoted": run.promoted, "error": run.error or None,
            "metrics": metrics(run.metrics), "live_metrics": metrics(run.live_metrics),
            "traceparent": run.traceparent or None}


def decision_doc(response) -> dict[str, Any]:
    from looperpb.v1 import decision_pb2
    from looperpb.values import scalar

    d = response.decision
    return {
        "decision": {
            "use_case": d.use_case, "decision_id": d.decision_id, "action": d.action, "score": d.score,
            "value": d.value, "propensity": d.propensity, "is_default": d.is_default,
            "default_reason": (enum_word(decision_pb2.DefaultReason, d.default_reason, "DEFAULT_REASON_")
                               if d.default_reason else None),
            "is_exploration": d.is_exploration, "model_version": d.model_version or None,
            "blueprint_version": d.blueprint_version, "decide_time": timestamp(d.decide_time),
            "ranking": [{"action_id": r.action_id, "score": r.score, "propensity": r.propensity} for r in d.ranking],
        },
        "subject": dict(sorted(response.subject.items())),
        "features": {name: scalar(response.features[name]) for name in sorted(response.features)},
        "traceparent": response.traceparent or None,
    }


def label_doc(use_case: str, decision_id: str, label) -> dict[str, Any]:
    from looperpb.v1 import feedback_pb2

    return {"use_case": use_case, "decision_id": decision_id,
            "state": enum_word(feedback_pb2.LabelState, label.state, "LABEL_STATE_"), "value": label.value,
            "outcome_count": label.outcome_count, "window_end_time": timestamp(label.window_end_time)}


def join_stats_doc(use_case: str, stats) -> dict[str, Any]:
    return {"use_case": use_case, "joined_decisions": stats.joined_decisions,
            "pending_decisions": stats.pending_decisions, "attributed_outcomes": stats.attributed_outcomes,
            "late_outcomes": stats.late_outcomes, "orphan_outcomes": stats.orphan_outcomes,
            "early_outcomes": stats.early_outcomes}


def credential_doc(credential) -> dict[str, Any]:
    from looperpb.v1 import access_pb2

    return {"credential_id": credential.credential_id, "name": credential.name,
            "certificate_subject": credential.certificate_subject or None,
            "cluster_admin": credential.cluster_admin,
            "grants": {g.use_case: [enum_word(access_pb2.Role, r, "ROLE_") for r in g.roles]
                       for g in credential.grants},
            "create_time": timestamp(credential.create_time), "rotate_time": timestamp(credential.rotate_time)}


# --- printing ------------------------------------------------------------------------------
def deletion_doc(deletion) -> dict[str, Any]:
    from looperpb.v1 import trainer_pb2

    def counts(c) -> dict[str, int]:
        return {f.name: getattr(c, f.name) for f in c.DESCRIPTOR.fields}

    return {"deletion_id": deletion.deletion_id, "request_id": deletion.request_id,
            "kind": enum_word(trainer_pb2.DeletionKind, deletion.kind, "DELETION_KIND_"),
            "use_case": deletion.use_case, "subject": dict(deletion.subject),
            "subject_sha256": deletion.subject_sha256 or None,
            "state": enum_word(trainer_pb2.DeletionState, deletion.state, "DELETION_STATE_"),
            "create_time": timestamp(deletion.create_time), "update_time": timestamp(deletion.update_time),
            "end_time": timestamp(deletion.end_time), "removed": counts(deletion.removed),
            "waiting": counts(deletion.waiting), "waiting_reason": deletion.waiting_reason or None,
            "error": deletion.error or None, "requested_by": deletion.requested_by}


def console() -> Console:
    """Rich on stdout; markup off, so text from the services is printed as it is. Piped, the
    lines are not wrapped at 80 columns (so grep finds whole rows)."""
    return Console(markup=False, highlight=False, emoji=False,
                   width=None if sys.stdout.isatty() else 400, soft_wrap=False)


def emit(document: dict[str, Any], *renderables) -> None:
    """``document`` as JSON under --output json, else the renderables (tables, text)."""
    if connection().json:
        print(json.dumps(document, indent=2))
        return
    out = console()
    for renderable in renderables:
        out.print(renderable)


def table(title: str | None, columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> RenderableType:
    grid = Table(show_edge=False, pad_edge=False)
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in rows:
        grid.add_row(*(cell_text(v) for v in row))
    return _titled(title, grid)


def fields(title: str | None, pairs: Iterable[tuple[str, Any]]) -> RenderableType:
    """A two-column table of names and values."""
    grid = Table(show_header=False, show_edge=False, pad_edge=False, box=None)
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for name, value in pairs:
        grid.add_row(name, cell_text(value))
    return _titled(title, grid)


def _titled(title: str | None, grid: Table) -> RenderableType:
    """The title on a line of its own above the table (a table's own title wraps at its width)."""
    return Group(Text(title, style="bold"), grid) if title else grid


def cell_text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def when(rfc3339: str | None) -> str | None:
    """An RFC 3339 time as ``2026-11-25 16:59:44`` (UTC) for a table."""
    return rfc3339[:19].replace("T", " ") if rfc3339 else None


def headline(values: dict[str, float]) -> str:
    shown = [f"{name}={values[name]:.4g}" for name in HEADLINE_METRICS if name in values]
    return " ".join(shown) or "-"


def follow(what: str, current, refresh: Callable[[], Any], state_of: Callable[[Any], str],
           done: Iterable[str], timeout: float):
    """Polls ``refresh()`` until ``state_of`` its answer is one of ``done`` or ``timeout``
    seconds pass, and returns the last answer: a spinner on a terminal, one line on stderr
    per change of state otherwise (so a pipe or a CI log shows the progress too)."""
    err = console()
    err.file = sys.stderr
    deadline, started, seen = time.monotonic() + timeout, time.monotonic(), None
    status = err.status(what) if err.is_terminal else None
    if status:
        status.start()
    try:
        while True:
            state = state_of(current)
            if status:
                status.update(f"{what}: {state} ({time.monotonic() - started:.0f} s)")
            elif state != seen:
                print(f"{what}: {state}", file=sys.stderr, flush=True)
            seen = state
            if state in done or time.monotonic() > deadline:
                return current
            time.sleep(0.5)
            current = refresh()
    finally:
        if status:
            status.stop()

