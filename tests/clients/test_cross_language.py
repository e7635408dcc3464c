"""The cross-language client contract: the same scripted scenario in Go, Java and TypeScript
against real services, and decisions made in one language that get their feedback from
another.

One `looper serve all` on free ports with a temporary data directory serves the whole module;
the contract blueprint (tests/clients/blueprint.yaml) is applied through the Python client.
Each language's suite then runs with LOOPER_DECISION_ADDR, LOOPER_FEEDBACK_ADDR,
LOOPER_TRAINER_ADDR, LOOPER_USE_CASE and LOOPER_RUN_ID (a per-run id prefix), and
LOOPER_MIXED_DECIDE / LOOPER_MIXED_FEEDBACK naming the decisions it makes for, or gives
feedback to, another language. The scenario of every suite (clients/go/contract,
clients/java/src/test/.../ContractTest.java, clients/typescript/test/contract.test.mjs):

1. decide (binary, subject user_id, context hour_of_day) and check the decision;
2. decide again with the same decision_id: the logged decision is replayed;
3. log a click, then the same event again: accepted, then a duplicate;
4. GetDecision: the decision was logged with its subject and typed features;
5. GetLabel: one outcome counted, the window ends 2s after the decision;
6. DecideBatch: one good item, one with an empty decision_id failing on its own;
7. Decide with an empty decision_id: the typed invalid-argument error names `decision_id`;
8. GetDecision of an unknown id: the typed not-found error;
9. after the window closes, GetLabel is JOINED with the click.

Mixed runs use a second use case whose window (60s) outlasts the suites that run between a
decision and its feedback, in this order: Python decides (feedback from Go), Go decides (feedback from
Java), Java decides (feedback from TypeScript), TypeScript decides (feedback from Go); the
tests below run in file order and build on each other. Each mixed decision is checked
through GetLabel by the language that gave feedback, and JOINED at the end from Python.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

import pytest

from looperpb.v1 import feedback_pb2
from services.launcher import start_looper
from tests.clients.harness import (CLIENTS, go_results, node_counts, require_clients_setup, run, 
                                   surefire_results)

BLUEPRINT = Path(__file__).with_name("blueprint.yaml")
MIXED_BLUEPRINT = Path(__file__).with_name("blueprint_mixed.yaml")
USE_CASE = "client_contract"  # 2s window: each suite waits for its own label to join
MIXED_USE_CASE = "client_contract_mixed"  # 60s window: outlasts the suites between decision and feedback
RUN_ID = f"r{uuid.uuid4().hex[:10]}"
MIXED = {lang: f"{RUN_ID}-mixed-{lang}" for lang in ("py", "go", "java", "ts")}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    require_clients_setup()
    services = start_looper(tmp_path_factory.mktemp("looper-clients") / "data")
    try:
        client = services.client()
        for path, name in ((BLUEPRINT, USE_CASE), (MIXED_BLUEPRINT, MIXED_USE_CASE)):
            blueprint, _ = client.apply_blueprint(path.read_text())
            assert blueprint.use_case == name
        env = dict(os.environ, LOOPER_DECISION_ADDR=services.addresses["decision"],
                   LOOPER_FEEDBACK_ADDR=services.addresses["feedback"],
                   LOOPER_TRAINER_ADDR=services.addresses["trainer"], LOOPER_USE_CASE=USE_CASE, LOOPER_MIXED_USE_CASE=MIXED_USE_CASE, LOOPER_RUN_ID=RUN_ID,
                   LOOPER_MIXED_DECIDE="", LOOPER_MIXED_FEEDBACK="")
        yield client, env
        client.close()
    finally:
        services.stop()


def test_python_decides_for_go(stack):
    client, _ = stack
    decision = client.decide(MIXED_USE_CASE, MIXED["py"], {"user_id": "mixed"}, {"hour_of_day": 12})
    assert decision.decision_id == MIXED["py"]


def test_go_suite(stack):
    _, env = stack
    env = dict(env, LOOPER_MIXED_DECIDE=MIXED["go"], LOOPER_MIXED_FEEDBACK=MIXED["py"])
    results = go_results(run(["go", "test", "-count=1", "-v", "./..."], CLIENTS / "go", env))
    assert {name for name, outcome in results.items() if outcome != "PASS"} == set(), results
    assert {"TestContract", "TestMixedDecide", "TestMixedFeedback", "TestRetriesUnavailableWithTheSameEventID",
            "TestInvalidArgumentCarriesFieldViolations", "TestPropagatesTheCallersTraceAsTraceparent",
            "TestDefaultDeadline"} <= set(results), results


def test_java_suite(stack):
    _, env = stack
    env = dict(env, LOOPER_MIXED_DECIDE=MIXED["java"], LOOPER_MIXED_FEEDBACK=MIXED["go"])
    reports = CLIENTS / "java" / "target" / "surefire-reports"
    shutil.rmtree(reports, ignore_errors=True)
    run(["mvn", "-B", "-q", "-o", "test"], CLIENTS / "java", env)
    results = surefire_results(reports)
    assert {name for name, outcome in results.items() if outcome != "passed"} == set(), results
    assert {"ContractTest.contract", "ContractTest.mixedDecide", "ContractTest.mixedFeedback",
            "ClientTest.retriesUnavailableWithTheSameEventId", "ClientTest.invalidArgumentCarriesFieldViolations",
            "ClientTest.propagatesTheCurrentTraceAsTraceparent", "ClientTest.everyCallHasTheDefaultDeadline"
            } <= set(results), results


def test_typescript_suite(stack):
    _, env = stack
    env = dict(env, LOOPER_MIXED_DECIDE=MIXED["ts"], LOOPER_MIXED_FEEDBACK=MIXED["java"])
    ts = CLIENTS / "typescript"
    run([str(ts / "node_modules" / ".bin" / "tsc"), "-p", "tsconfig.json"], ts, env)
    counts = node_counts(run(["node", "--test", "test/"], ts, env))
    assert counts.get("fail") == 0 and counts.get("skipped") == 0 and counts.get("cancelled") == 0, counts
    assert counts.get("pass", 0) >= 9, counts


def test_go_gives_feedback_to_typescript(stack):
    _, env = stack
    env = dict(env, LOOPER_MIXED_FEEDBACK=MIXED["ts"])
    results = go_results(run(["go", "test", "-count=1", "-v", "-run", "^TestMixedFeedback$", "./contract/"],
                             CLIENTS / "go", env))
    assert results == {"TestMixedFeedback": "PASS"}, results


def test_mixed_decisions_are_logged_and_joined(stack):
    """Every mixed decision counts the other language's click, and joins when its window closes."""
    client, _ = stack
    for lang, decision_id in MIXED.items():
        logged = client.get_decision(MIXED_USE_CASE, decision_id)
        assert logged.subject["user_id"] == "mixed" and logged.features["hour_of_day"].int64_value == 12, lang
        label = client.get_label(MIXED_USE_CASE, decision_id)
        assert label.outcome_count == 1 and label.value == 1.0, (lang, label)
    pending = dict(MIXED)
    deadline = time.monotonic() + 90
    while pending:
        for lang, decision_id in list(pending.items()):
            label = client.get_label(MIXED_USE_CASE, decision_id)
            if label.state == feedback_pb2.LABEL_STATE_JOINED:
                assert label.outcome_count == 1 and label.value == 1.0, (lang, label)
                del pending[lang]
        assert time.monotonic() < deadline, f"labels still pending after 90s: {pending}"
        time.sleep(0.5)
