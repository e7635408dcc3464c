"""``looper report USE_CASE``: an experiment's report as text (or JSON), and a picture of it —
each arm's value per decision with its fixed-horizon interval and its anytime-valid
confidence sequence — written as a self-contained HTML page (inline SVG) next to it."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Annotated, Any

import typer
from looperpb.v1 import trainer_pb2

from services.cli.connection import ClientCommand, connection
from services.cli.output import emit, enum_word, fields, table, timestamp, when
from services.cli.use_cases import UseCase

PANEL = "Experiments"


def register(app: typer.Typer) -> None:
    app.command("report", cls=ClientCommand, rich_help_panel=PANEL)(report)


def report(use_case: UseCase,
           experiment: Annotated[str, typer.Option("--experiment", "-e", help="an ended experiment's id; default: "
                                                   "the running one, else the last that ended")] = "",
           picture: Annotated[Path | None, typer.Option(help="where to write the picture (HTML); default: "
                                                        "<use case>-<experiment>.html here")] = None,
           no_picture: Annotated[bool, typer.Option("--no-picture", help="write no picture")] = False) -> None:
    """An experiment's arms on the product metric: values with intervals, each against control, the
    sample-ratio check and the verdict."""
    with connection().client() as client:
        doc = report_doc(client.experiment_report(use_case, experiment))
    shown = [fields(f"{use_case}: experiment {doc['experiment_id']} ({doc['kind']})", [
        ("verdict", doc["verdict"]), ("why", doc["reason"]), ("started (UTC)", when(doc["start_time"])),
        ("ended (UTC)", when(doc["end_time"]) or "running"), ("blueprint", f"v{doc['blueprint_version']}"),
        ("sample ratio", f"p={doc['srm_p_value']:.3g}" + (" MISMATCH: the split is broken" if doc["srm_detected"]
                                                          else "")),
        ("intervals", f"{doc['confidence']:.0%}; 'anytime' ones stay valid however often this is read")])]
    shown.append(table("arms (value: product value per labeled decision)",
                       ["arm", "model", "share", "decisions", "labeled", "outcomes", "value", "interval",
                        "anytime", "vs control", "anytime diff", "p"],
                       [(a["name"], a["model"], f"{a['share']:.0%}", a["decisions"], a["labeled_decisions"],
                         a["outcomes"], f"{a['value']:.4f}", _span(a["value_ci"]), _span(a["value_cs"]),
                         "" if a["name"] == doc["control"] else f"{a['diff']:+.4f}",
                         "" if a["name"] == doc["control"] else _span(a["diff_cs"]),
                         "" if a["name"] == doc["control"] else f"{a['diff_p_value']:.3g}") for a in doc["arms"]]))
    if not no_picture:
        path = picture or Path(f"{use_case}-{doc['experiment_id']}.html")
        path.write_text(picture_html(doc))
        doc["picture"] = str(path)
        shown.append(f"picture: {path}")
    emit({"report": doc}, *shown)


def report_doc(report: trainer_pb2.ExperimentReport) -> dict[str, Any]:
    return {
        "use_case": report.use_case, "experiment_id": report.experiment_id,
        "kind": enum_word(trainer_pb2.ExperimentKind, report.kind, "EXPERIMENT_KIND_"),
        "control": report.control, "verdict": enum_word(trainer_pb2.ExperimentVerdict, report.verdict,
                                                        "EXPERIMENT_VERDICT_"),
        "reason": report.reason, "start_time": timestamp(report.start_time),
        "end_time": timestamp(report.end_time) if report.HasField("end_time") else None,
        "blueprint_version": report.blueprint_version, "confidence": report.confidence,
        "srm_p_value": report.srm_p_value, "srm_detected": report.srm_detected,
        "arms": [{"name": a.name, "model": a.model, "share": a.share, "policy": dict(a.policy),
                  "decisions": a.decisions, "labeled_decisions": a.labeled_decisions, "outcomes": a.outcomes,
                  "value": a.value, "value_ci": _pair(a.value_ci), "value_cs": _pair(a.value_cs), "diff": a.diff,
                  "diff_ci": _pair(a.diff_ci), "diff_cs": _pair(a.diff_cs), "diff_p_value": a.diff_p_value,
                  "outcome_means": dict(a.outcome_means)} for a in report.arms],
    }


def picture_html(doc: dict[str, Any]) -> str:
    """Each arm's value with its interval (thick) and its anytime-valid sequence (thin), on one
    axis; an unbounded end (too few labels) is drawn to the edge."""
    arms = doc["arms"]
    finite = [v for a in arms for v in (a["value"], *a["value_ci"], *a["value_cs"]) if v is not None] or [0.0, 1.0]
    low, high = min(finite), max(finite)
    pad = (high - low) * 0.1 or 0.1
    low, high = low - pad, high + pad
    width, row, left = 720, 46, 160

    def x(value: float | None, unbounded: float = 0.0) -> float:
        value = unbounded if value is None else min(max(value, low), high)
        return left + (value - low) / (high - low) * (width - left - 20)

    rows = []
    for i, arm in enumerate(arms):
        y = 30 + i * row
        (cs_low, cs_high), (ci_low, ci_high) = arm["value_cs"], arm["value_ci"]
        rows.append(
            f'<text x="{left - 10}" y="{y + 4}" text-anchor="end">{html.escape(arm["name"])}</text>'
            f'<line x1="{x(cs_low, low):.1f}" x2="{x(cs_high, high):.1f}" y1="{y}" y2="{y}" stroke="#888" '
            f'stroke-width="2"/><line x1="{x(ci_low, low):.1f}" x2="{x(ci_high, high):.1f}" y1="{y}" y2="{y}" '
            f'stroke="#1f5fa8" stroke-width="7"/>'
            f'<circle cx="{x(arm["value"]):.1f}" cy="{y}" r="5" fill="#c0392b"/>'
            f'<text x="{x(arm["value"]):.1f}" y="{y - 10}" text-anchor="middle" font-size="11">'
            f'{arm["value"]:.4f} (n={arm["labeled_decisions"]})</text>')
    height = 40 + len(arms) * row
    axis = "".join(f'<text x="{x(v):.1f}" y="{height}" text-anchor="middle" font-size="11">{v:.3f}</text>'
                   for v in (low + (high - low) * k / 4 for k in range(5)))
    title = html.escape(f"{doc['use_case']}: {doc['experiment_id']} — {doc['verdict']}")
    return (f"<!doctype html><meta charset='utf-8'><title>{title}</title><body style='font-family:sans-serif'>"
            f"<h2>{title}</h2><p>{html.escape(doc['reason'])}</p>"
            f"<svg width='{width}' height='{height + 10}' font-family='sans-serif' font-size='13'>{''.join(rows)}{axis}"
            f"</svg><p>Product value per labeled decision: the dot; thick: the {doc['confidence']:.0%} interval at "
            f"this sample size; thin: the anytime-valid confidence sequence.</p></body>")


def _pair(interval) -> list[float | None]:
    """An interval's ends; an unbounded end (too few labels yet) is None (JSON has no infinity)."""
    return [v if _finite(v) else None for v in (interval.low, interval.high)]


def _span(pair: list[float | None]) -> str:
    low, high = pair
    return f"[{'-inf' if low is None else f'{low:.4f}'}, {'inf' if high is None else f'{high:.4f}'}]"


def _finite(value: float) -> bool:
    return value == value and abs(value) != float("inf")  # not NaN, not infinite
