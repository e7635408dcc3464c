"""The operator's `looper` commands against real services (one `looper serve all` on free
ports for the module), called in-process through Typer's runner: each command's table and
JSON output on a real use case with real models, the exit codes (0 ok, 1 a failed call, 2
usage) and the messages of the failures an operator meets first."""

from __future__ import annotations

import json
import socket
import time

import pytest
from looper import outcome_event
from typer.testing import CliRunner

from services.cli import app
from services.launcher import start_looper
from tests.conftest import SIMPLE_BLUEPRINT

USE_CASE = "contract_test"  # SIMPLE_BLUEPRINT: binary, context features only, a 2 s label window
PAUSABLE = "cli_pausable"
DECISIONS = 60


def looper(stack, *args: str, expect: int = 0, env: dict | None = None):
    """Runs `looper ARGS` in-process against the module's services; checks the exit code."""
    server, _ = stack
    base = {"LOOPER_DECISION_ADDR": server.addresses["decision"], "LOOPER_FEEDBACK_ADDR": server.addresses["feedback"],
            "LOOPER_TRAINER_ADDR": server.addresses["trainer"], "LOOPER_TOKEN_FILE": str(server.token_file),
            "LOOPER_TOKEN": None}
    result = CliRunner().invoke(app, list(args), env={**base, **(env or {})})
    assert result.exit_code == expect, (f"looper {' '.join(args)} exited {result.exit_code}, not {expect}:\n"
                                        f"{result.stdout}{result.stderr}{result.exception!r}")
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def as_json(stack, *args: str) -> dict:
    return json.loads(looper(stack, *args, "--output", "json").stdout)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Looper with two use cases; the first has labeled decisions (clicks on iOS only) and three
    model versions trained through `looper train --wait --force-promote`, the last one live."""
    folder = tmp_path_factory.mktemp("cli")
    server = start_looper(folder / "data")
    stack = (server, {})
    try:
        blueprint = folder / "blueprint.yaml"
        blueprint.write_text(SIMPLE_BLUEPRINT)
        looper(stack, "apply", str(blueprint))
        blueprint.write_text(SIMPLE_BLUEPRINT.replace("exploration_rate: 0.2", "exploration_rate: 0.3"))
        looper(stack, "apply", str(blueprint))  # version 2
        (folder / "pausable.yaml").write_text(SIMPLE_BLUEPRINT.replace(f"name: {USE_CASE}", f"name: {PAUSABLE}"))
        looper(stack, "apply", str(folder / "pausable.yaml"))
        with server.client() as product:
            events = []
            for i in range(DECISIONS):
                platform = "ios" if i % 2 else "web"
                product.decide(USE_CASE, f"cli-{i}", {"user_id": f"u{i}"}, {"hour_of_day": i % 24, "platform": platform})
                if platform == "ios":
                    events.append(outcome_event(USE_CASE, f"cli-{i}", "clicked", 1.0, event_id=f"cli-{i}-click"))
            product.log_feedback_batch(events)
            deadline = time.monotonic() + 30
            while product.join_stats(USE_CASE).joined_decisions < DECISIONS:
                assert time.monotonic() < deadline, "the decisions were not labeled within 30 s"
                time.sleep(0.2)
        stack[1]["runs"] = [as_json(stack, "train", USE_CASE, "--wait", "--force-promote")["run"] for _ in range(3)]
        yield stack
    finally:
        server.stop()


def test_train_waits_for_the_run_and_reports_it(stack):
    runs = stack[1]["runs"]
    assert [r["state"] for r in runs] == ["succeeded"] * 3 and all(r["promoted"] for r in runs)
    assert [r["model_version"] for r in runs] == ["m000001", "m000002", "m000003"]
    assert runs[0]["trigger"] == "manual" and runs[0]["blueprint_version"] == 2
    assert {"auc", "product_value"} <= set(runs[0]["metrics"]) and runs[0]["duration_seconds"] > 0
    started = looper(stack, "train", PAUSABLE, "-o", "json")  # without --wait: the queued run
    run_id = json.loads(started.stdout)["run"]["run_id"]
    with stack[0].client() as client:  # it fails (no labeled rows); let it end before another run starts
        deadline = time.monotonic() + 30
        while not client.get_training_run(run_id).end_time.seconds:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert f"follow it with `looper runs {PAUSABLE}`" in looper(stack, "train", PAUSABLE).stdout


def test_a_failed_training_run_exits_1_with_its_error(stack):
    failed = looper(stack, "train", PAUSABLE, "--wait", "--output", "json", expect=1)
    assert json.loads(failed.stdout)["run"]["state"] == "failed"
    assert "failed: only 0 labeled rows; at least 20 are needed" in failed.stderr


def test_use_cases(stack):
    listed = {u["use_case"]: u for u in as_json(stack, "use-cases")["use_cases"]}
    assert {USE_CASE, PAUSABLE} <= set(listed)  # other tests of the module may add use cases
    assert set(listed[USE_CASE]) == {"use_case", "blueprint_version", "decision_type", "paused", "pause_reason",
                                     "live_model_version"}
    assert listed[USE_CASE]["blueprint_version"] == 2 and listed[USE_CASE]["decision_type"] == "binary"
    assert listed[USE_CASE]["live_model_version"] and listed[PAUSABLE]["live_model_version"] is None
    table = looper(stack, "use-cases").stdout
    row = next(line for line in table.splitlines() if line.startswith(PAUSABLE))
    assert "binary" in row and "running" in row and "none (default decision)" in row


def test_pause_and_resume(stack):
    assert as_json(stack, "pause", PAUSABLE, "--reason", "incident 42") == {
        "use_case": PAUSABLE, "paused": True, "reason": "incident 42"}
    listed = {u["use_case"]: u for u in as_json(stack, "use-cases")["use_cases"]}
    assert (listed[PAUSABLE]["paused"], listed[PAUSABLE]["pause_reason"]) == (True, "incident 42")
    assert "paused: incident 42" in looper(stack, "use-cases").stdout
    assert f"{PAUSABLE}: resumed" in looper(stack, "resume", PAUSABLE).stdout
    assert not {u["use_case"]: u for u in as_json(stack, "use-cases")["use_cases"]}[PAUSABLE]["paused"]


def test_blueprint_show(stack):
    latest = as_json(stack, "blueprint", "show", USE_CASE)["blueprint"]
    assert latest["version"] == 2 and "exploration_rate: 0.3" in latest["spec_yaml"]
    assert set(latest) == {"use_case", "version", "decision_type", "spec_sha256", "create_time", "spec_yaml"}
    shown = looper(stack, "blueprint", "show", USE_CASE, "--version", "1").stdout
    assert "exploration_rate: 0.2" in shown and latest["spec_sha256"] not in shown
    assert shown.rstrip().endswith("retraining: {min_labeled_rows: 100000}")  # the YAML as applied, after a header


def test_blueprint_diff(stack):
    diff = as_json(stack, "blueprint", "diff", USE_CASE, "1", "2")
    assert not diff["identical"] and (diff["from_version"], diff["to_version"]) == (1, 2)
    assert "-policy: {exploration_rate: 0.2}\n+policy: {exploration_rate: 0.3}\n" in diff["diff"]
    text = looper(stack, "blueprint", "diff", USE_CASE, "1", "2").stdout
    assert text.startswith(f"--- {USE_CASE} v1\n+++ {USE_CASE} v2\n@@") and text == diff["diff"]
    assert "are identical" in looper(stack, "blueprint", "diff", USE_CASE, "2", "2").stdout


def test_blueprint_history(stack):
    history = as_json(stack, "blueprint", "history", USE_CASE)
    assert history["current_version"] == 2
    assert [(v["version"], v["lines_added"], v["lines_removed"]) for v in history["versions"]] == [(1, 12, 0), (2, 1, 1)]
    table = looper(stack, "blueprint", "history", USE_CASE).stdout
    assert table.index("v2 (current)") < table.index("v1 ") and "+1 -1" in table


def test_models(stack):
    models = as_json(stack, "models", USE_CASE)
    by_version = {m["version"]: m for m in models["models"]}
    assert list(by_version) == ["m000003", "m000002", "m000001"]  # newest first
    live = [m["version"] for m in models["models"] if m["stage"] == "live"]
    assert live == [models["live_model_version"]]
    assert {m["stage"] for m in models["models"]} <= {"live", "retired", "candidate"}
    assert all(m["trigger"] == "manual" and m["row_count"] == DECISIONS and "auc" in m["metrics"]
               for m in models["models"])
    history = by_version[live[0]]["stage_history"]
    assert history and history[-1]["stage"] == "live" and history[-1]["change_time"]
    assert set(history[-1]) == {"stage", "reason", "change_time"}
    table = looper(stack, "models", USE_CASE).stdout
    assert f"live model {live[0]}" in table and "LIVE" in table and "was live" in table
    assert "stage changes, newest first" in table
    assert "product_value=" in table and "auc=" in table


def test_promote_and_rollback(stack):
    before = as_json(stack, "models", USE_CASE)["live_model_version"]
    other = "m000001" if before != "m000001" else "m000002"
    promoted = as_json(stack, "promote", USE_CASE, other)["model"]
    assert (promoted["version"], promoted["stage"]) == (other, "live")
    assert as_json(stack, "models", USE_CASE)["live_model_version"] == other
    rolled = looper(stack, "rollback", USE_CASE).stdout
    assert f"{USE_CASE}: rolled back; {before} is live" in rolled
    assert f"{USE_CASE}: {other} is live" in looper(stack, "promote", USE_CASE, other).stdout
    assert as_json(stack, "rollback", USE_CASE)["model"]["version"] == before


def test_runs(stack):
    runs = as_json(stack, "runs", USE_CASE)["runs"]
    trained = [r["run_id"] for r in stack[1]["runs"]]
    assert [r["run_id"] for r in runs if r["run_id"] in trained] == trained[::-1]  # newest first
    assert all(r["state"] == "succeeded" and r["promoted"] for r in runs if r["run_id"] in trained)
    assert runs[0]["live_metrics"], "a run after the first is evaluated against the live model"
    table = looper(stack, "runs", USE_CASE).stdout
    assert all(run_id in table for run_id in trained) and "succeeded" in table and "manual" in table


def test_decision_get(stack):
    got = as_json(stack, "decision", "get", USE_CASE, "cli-3")
    assert got["decision"]["decision_id"] == "cli-3" and got["decision"]["blueprint_version"] == 2
    assert got["decision"]["action"] in ("true", "false") and got["decision"]["model_version"] is None
    assert got["decision"]["default_reason"] == "no_model"  # decided before any model was trained
    assert got["subject"] == {"user_id": "u3"} and got["features"] == {"hour_of_day": 3, "platform": "ios"}
    assert set(got) == {"decision", "subject", "features", "traceparent"}
    table = looper(stack, "decision", "get", USE_CASE, "cli-3").stdout
    assert "yes (no_model)" in table and "user_id=u3" in table
    assert any(line.split() == ["platform", "│", "ios"] for line in table.splitlines()), table


def test_label_get(stack):
    label = as_json(stack, "label", "get", USE_CASE, "cli-3")["label"]
    assert (label["state"], label["value"], label["outcome_count"]) == ("joined", 1.0, 1)
    assert as_json(stack, "label", "get", USE_CASE, "cli-4")["label"]["value"] == 0.0  # no click: the missing value
    table = looper(stack, "label", "get", USE_CASE, "cli-3").stdout
    assert "joined" in table and "outcomes" in table


def test_join_stats(stack):
    stats = as_json(stack, "join-stats", USE_CASE)["join_stats"]
    assert stats["joined_decisions"] >= DECISIONS and stats["attributed_outcomes"] == DECISIONS // 2
    assert stats["orphan_outcomes"] == stats["late_outcomes"] == 0
    assert "decisions joined (labeled)" in looper(stack, "join-stats", USE_CASE).stdout


def test_credentials_create_list_rotate_revoke(stack):
    made = as_json(stack, "credentials", "create", "cli-reader", "--grant", f"{USE_CASE}=read")
    credential_id, token = made["credential"]["credential_id"], made["token"]
    assert made["credential"]["grants"] == {USE_CASE: ["read"]} and token.startswith("lpr_")
    listed = {c["credential_id"]: c for c in as_json(stack, "credentials", "list")["credentials"]}
    assert listed[credential_id]["name"] == "cli-reader" and "token" not in listed[credential_id]
    assert "cli-reader" in looper(stack, "credentials", "list").stdout
    as_reader = {"LOOPER_TOKEN_FILE": None, "LOOPER_TOKEN": token}
    seen = json.loads(looper(stack, "use-cases", "-o", "json", env=as_reader).stdout)["use_cases"]
    assert [u["use_case"] for u in seen] == [USE_CASE]  # only what the credential may read
    denied = looper(stack, "pause", USE_CASE, env=as_reader, expect=1)
    assert denied.stderr.startswith(f"looper: PERMISSION_DENIED: Trainer service at {stack[0].addresses['trainer']}")
    rotated = as_json(stack, "credentials", "rotate", credential_id)["token"]
    assert rotated != token
    refused = looper(stack, "use-cases", env=as_reader, expect=1)  # the old token
    assert "looper: UNAUTHENTICATED" in refused.stderr and "the token in LOOPER_TOKEN was refused" in refused.stderr
    revoked = looper(stack, "credentials", "revoke", credential_id).stdout
    assert f"revoked {credential_id} (cli-reader)" in revoked
    looper(stack, "use-cases", env={"LOOPER_TOKEN_FILE": None, "LOOPER_TOKEN": rotated}, expect=1)


@pytest.mark.parametrize("args, service", [
    (["models", "no_such_case"], "Trainer"), (["runs", "no_such_case"], "Trainer"),
    (["blueprint", "show", "no_such_case"], "Trainer"), (["blueprint", "history", "no_such_case"], "Trainer"),
    (["blueprint", "diff", "no_such_case", "1", "2"], "Trainer"), (["train", "no_such_case"], "Trainer"),
    (["promote", "no_such_case", "m000001"], "Trainer"), (["rollback", "no_such_case"], "Trainer"),
    (["pause", "no_such_case"], "Trainer"), (["resume", "no_such_case"], "Trainer"),
    (["decision", "get", "no_such_case", "d-1"], "Decision"), (["label", "get", "no_such_case", "d-1"], "Feedback"),
    (["join-stats", "no_such_case"], "Feedback"), (["delete", "subject", "no_such_case", "user_id=u1"], "Trainer"),
])
def test_an_unknown_use_case_exits_1_naming_the_service(stack, args, service):
    failed = looper(stack, *args, expect=1)
    address = stack[0].addresses[service.lower()]
    assert failed.stderr.startswith(f"looper: NOT_FOUND: {service} service at {address}: "), failed.stderr
    assert "no_such_case" in failed.stderr and "Traceback" not in failed.stderr and failed.stdout == ""


def test_bad_field_values_are_printed_one_a_line(stack, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(SIMPLE_BLUEPRINT.replace("window: 2s", "window: soon"))
    failed = looper(stack, "apply", str(bad), expect=1)
    assert failed.stderr.startswith("looper: INVALID_ARGUMENT: Trainer service at ")
    assert "\n  spec_yaml.label.window: must be a duration like 30s, 15m, 1h or 7d" in failed.stderr
    unknown = looper(stack, "promote", USE_CASE, "m000999", expect=1)
    assert "looper: NOT_FOUND: Trainer service at " in unknown.stderr


@pytest.mark.parametrize("args", [
    [], ["models"], ["blueprint", "show"], ["blueprint", "diff", USE_CASE, "1"], ["blueprint", "diff", USE_CASE, "1", "x"],
    ["blueprint", "show", USE_CASE, "--version", "-1"], ["use-cases", "--output", "yaml"], ["no-such-command"],
    ["train", USE_CASE, "--wiat"], ["credentials", "create", "x", "--grant", f"{USE_CASE}=owner"],
    ["apply", "no/such/blueprint.yaml"], ["use-cases", "--token-file", "no/such/token"], ["serve", "everything"],
])
def test_usage_errors_exit_2(stack, args):
    looper(stack, *args, expect=2)


def test_without_a_token_the_message_says_how_to_pass_one(stack, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no data/run/looper-token here
    failed = looper(stack, "use-cases", env={"LOOPER_TOKEN_FILE": None}, expect=1)
    assert failed.stderr.startswith(f"looper: UNAUTHENTICATED: Trainer service at {stack[0].addresses['trainer']}: "
                                    "no credentials")
    assert "no token was sent: pass --token-file FILE or set LOOPER_TOKEN" in failed.stderr


def test_options_before_or_after_the_command_and_flags_before_variables(stack):
    server, _ = stack
    trainer = server.addresses["trainer"]
    assert json.loads(looper(stack, "--output", "json", "use-cases").stdout)["use_cases"]
    assert json.loads(looper(stack, "use-cases", "-o", "json").stdout)["use_cases"]
    with socket.socket() as closed:  # bound but not listening: refuses connections
        closed.bind(("127.0.0.1", 0))
        nowhere = f"127.0.0.1:{closed.getsockname()[1]}"
        flag_wins = looper(stack, "use-cases", "--trainer", trainer, env={"LOOPER_TRAINER_ADDR": nowhere})
        assert USE_CASE in flag_wins.stdout
        after_wins = looper(stack, "--trainer", nowhere, "use-cases", "--trainer", trainer)
        assert USE_CASE in after_wins.stdout
        unreachable = looper(stack, "--trainer", nowhere, "use-cases", expect=1)
        assert unreachable.stderr.startswith(f"looper: UNAVAILABLE: Trainer service at {nowhere} is unavailable")


def test_apply_keeps_its_flags_and_output(stack, tmp_path):
    server, _ = stack
    blueprint = tmp_path / "blueprint.yaml"
    blueprint.write_text(SIMPLE_BLUEPRINT.replace("exploration_rate: 0.2", "exploration_rate: 0.3"))
    applied = looper(stack, "apply", str(blueprint), "--trainer", server.addresses["trainer"],
                     "--token-file", str(server.token_file), env={"LOOPER_TRAINER_ADDR": None})
    assert applied.stdout == f"{USE_CASE}: unchanged; current version 2\n"
    doc = json.loads(looper(stack, "apply", str(blueprint), "--output", "json").stdout)
    assert doc["created"] is False and doc["blueprint"]["version"] == 2


EXPERIMENT_CASE = "cli_experiment"
EXPERIMENT = """
experiment:
  name: cli_split
  control: current
  arms: [{name: current, share: 0.5}, {name: strict, share: 0.5, policy: {threshold: 0.3}}]
"""


def test_report_shows_the_arms_and_writes_a_picture(stack, tmp_path):
    server, _ = stack
    spec = tmp_path / "experiment.yaml"
    spec.write_text(SIMPLE_BLUEPRINT.replace(f"name: {USE_CASE}", f"name: {EXPERIMENT_CASE}") + EXPERIMENT)
    looper(stack, "apply", str(spec))
    with server.client() as product:
        deadline = time.monotonic() + 30
        while True:  # the Trainer starts the experiment at its next tick
            try:
                product.experiment_report(EXPERIMENT_CASE)
                break
            except Exception:  # noqa: BLE001 - NOT_FOUND until it starts
                assert time.monotonic() < deadline, "the experiment did not start"
                time.sleep(0.2)
        arms = [product.decide(EXPERIMENT_CASE, f"exp-{i}", {"user_id": f"e{i}"}).arm for i in range(40)]
        product.log_feedback_batch([outcome_event(EXPERIMENT_CASE, f"exp-{i}", "clicked", 1.0, event_id=f"x{i}")
                                    for i in range(0, 40, 2)])
        while product.join_stats(EXPERIMENT_CASE).joined_decisions < 40:
            assert time.monotonic() < deadline + 30, "the decisions were not labeled"
            time.sleep(0.2)
    picture = tmp_path / "report.html"
    doc = as_json(stack, "report", EXPERIMENT_CASE, "--picture", str(picture))["report"]
    assert (doc["experiment_id"], doc["kind"], doc["control"]) == ("cli_split", "blueprint", "current")
    assert [a["name"] for a in doc["arms"]] == ["current", "strict"] and doc["verdict"] == "continue"
    assert [a["decisions"] for a in doc["arms"]] == [arms.count("current"), arms.count("strict")]
    assert sum(a["labeled_decisions"] for a in doc["arms"]) == 40 and doc["arms"][1]["policy"] == {"threshold": 0.3}
    assert "below the minimum sample" in doc["reason"]
    page = picture.read_text()
    assert "<svg" in page and "strict" in page and "cli_split" in page
    text = looper(stack, "report", EXPERIMENT_CASE, "--no-picture").stdout
    assert "anytime" in text and "strict" in text
    looper(stack, "report", EXPERIMENT_CASE, "--experiment", "never_run", expect=1)


DELETABLE = "cli_deletable"


def test_delete_a_subject_then_the_use_case(stack, tmp_path):
    """The deletion is hidden at once and followed with `deletion get`; the job finishes it in
    the background (tests/e2e/test_deletion.py waits for that: here the log segments stay open)."""
    server, _ = stack
    spec = tmp_path / "deletable.yaml"
    spec.write_text(SIMPLE_BLUEPRINT.replace(f"name: {USE_CASE}", f"name: {DELETABLE}"))
    looper(stack, "apply", str(spec))
    with server.client() as product:
        for subject in ("d1", "d2"):
            product.decide(DELETABLE, f"del-{subject}", {"user_id": subject})
    asked = as_json(stack, "delete", "subject", DELETABLE, "user_id=d1", "--request-id", "forget-d1")["deletion"]
    assert (asked["kind"], asked["use_case"], asked["subject"]) == ("subject", DELETABLE, {"user_id": "d1"})
    assert asked["state"] in ("pending", "running") and asked["deletion_id"].startswith("del-")
    again = as_json(stack, "delete", "subject", DELETABLE, "user_id=d1", "--request-id", "forget-d1")["deletion"]
    assert again["deletion_id"] == asked["deletion_id"]  # a retry is the same deletion
    looper(stack, "decision", "get", DELETABLE, "del-d1", expect=1)  # hidden at once
    assert as_json(stack, "decision", "get", DELETABLE, "del-d2")["subject"] == {"user_id": "d2"}
    got = as_json(stack, "deletion", "get", asked["deletion_id"])["deletion"]
    assert got["deletion_id"] == asked["deletion_id"] and set(got["removed"]) >= {"decision_records", "training_rows"}
    table = looper(stack, "deletion", "get", asked["deletion_id"]).stdout
    assert "subject user_id=d1" in table and f"looper deletion get {asked['deletion_id']} --wait" in table
    waited = looper(stack, "deletion", "get", asked["deletion_id"], "--wait", "--timeout", "1", expect=1)
    assert "is still" in waited.stderr and "Traceback" not in waited.stderr

    looper(stack, "delete", "use-case", DELETABLE, expect=2)  # not without --yes
    gone = as_json(stack, "delete", "use-case", DELETABLE, "--yes", "--reason", "test")["deletion"]
    assert (gone["kind"], gone["use_case"], gone["subject"]) == ("use_case", DELETABLE, {})
    assert DELETABLE not in {u["use_case"] for u in as_json(stack, "use-cases")["use_cases"]}
    looper(stack, "decision", "get", DELETABLE, "del-d2", expect=1)


@pytest.mark.parametrize("args", [
    ["delete", "subject", DELETABLE, "user_id"], ["delete", "subject", DELETABLE, "user_id=a", "user_id=b"],
    ["delete", "subject", DELETABLE], ["deletion", "get"],
])
def test_deletion_usage_errors_exit_2(stack, args):
    looper(stack, *args, expect=2)


def test_a_bad_deletion_id_is_refused_naming_the_field(stack):
    failed = looper(stack, "deletion", "get", "../etc", expect=1)
    assert failed.stderr.startswith("looper: INVALID_ARGUMENT: Trainer service at ") and "deletion_id" in failed.stderr
    assert "NOT_FOUND" in looper(stack, "deletion", "get", "del-0000000000000000", expect=1).stderr
