"""The cross-language client contract: the same scripted scenario in Go, Java and TypeScript
against the real services, the SDKs' retries, deadlines and trace propagation against them,
and decisions made in one language that get their feedback from another.

The services are the package's stack (tests/clients/conftest.py): one `looper serve all` on
free loopback ports, traced into a local OTLP sink, with the blueprints of tests/clients
applied. Each test makes its own decisions under a fresh run id, so the tests pass in any
order and alone. Each language's suite runs with LOOPER_DECISION_ADDR, LOOPER_FEEDBACK_ADDR,
LOOPER_TRAINER_ADDR, LOOPER_TOKEN (the stack's cluster administrator's bearer token, which
each SDK takes from the environment when given none), LOOPER_USE_CASE, LOOPER_MIXED_USE_CASE
and LOOPER_RUN_ID (an id prefix), and:

- LOOPER_RESTART_DIR, the directory of the restart handshake (see harness.py): the suite's
  real-server test issues a Decide and a LogFeedback while the services are down, the
  harness starts them again on the same ports, and the calls succeed, each written once;
- LOOPER_TRACE_ID: the suite decides under this trace and reads it back from GetDecision's
  traceparent; the harness then sees the Decision service export a span of that trace.

The contract scenario of every suite (clients/go/contract, clients/java/src/test/.../
ContractTest.java, clients/typescript/test/contract.test.mjs):

1. decide (binary, subject user_id, context hour_of_day) and check the decision;
2. decide again with the same decision_id: the logged decision is replayed;
3. log a click, then the same event again: accepted, then a duplicate;
4. GetDecision: the decision was logged with its subject and typed features;
5. GetLabel: one outcome counted, the window ends 2s after the decision;
6. DecideBatch: one good item, one with an empty decision_id failing on its own;
7. Decide with an empty decision_id: the typed invalid-argument error names `decision_id`;
8. GetDecision of an unknown id: the typed not-found error;
9. after the window closes, GetLabel is JOINED with the click.

The mixed-language run is one test: Python decides (feedback from Go), Go decides (feedback
from Java), Java decides (feedback from TypeScript), TypeScript decides (feedback from Go),
each language's mixed tests run with LOOPER_MIXED_DECIDE / LOOPER_MIXED_FEEDBACK naming the
decisions it makes or gives a click to; the mixed use case's window (60s) outlasts the runs
between a decision and its feedback, and every mixed label joins at the end.
"""

from __future__ import annotations

import secrets
import shutil
import time
import uuid

import pytest
from looperpb.v1 import feedback_pb2

from tests.clients.harness import CLIENTS, go_results, node_results, run, surefire_results

USE_CASE = "client_contract"
MIXED_USE_CASE = "client_contract_mixed"


def suite_env(stack, **extra: str) -> dict[str, str]:
    """A language suite's environment; each test's decisions go under a run id of its own."""
    return stack.env(**{"LOOPER_USE_CASE": USE_CASE, "LOOPER_MIXED_USE_CASE": MIXED_USE_CASE,
                        "LOOPER_RUN_ID": f"r{uuid.uuid4().hex[:10]}", "LOOPER_MIXED_DECIDE": "",
                        "LOOPER_MIXED_FEEDBACK": "", **extra})


@pytest.fixture()
def real_server_env(stack, tmp_path):
    """A suite's environment with the restart handshake and a trace of its own."""
    handshake = tmp_path / "restart"
    handshake.mkdir()
    trace_id = secrets.token_hex(16)
    return suite_env(stack, LOOPER_RESTART_DIR=str(handshake), LOOPER_TRACE_ID=trace_id), handshake, trace_id


def build_typescript(env: dict[str, str]) -> None:
    ts = CLIENTS / "typescript"
    run([str(ts / "node_modules" / ".bin" / "tsc"), "-p", "tsconfig.json"], ts, env)


def test_go_suite(stack, real_server_env):
    env, handshake, trace_id = real_server_env
    results = go_results(run(["go", "test", "-count=1", "-v", "./..."], CLIENTS / "go", env,
                             during=stack.restart_when_asked(handshake)))
    mixed = {"TestMixedDecide", "TestMixedFeedback"}  # run by test_decisions_and_feedback_across_languages
    assert {name for name, outcome in results.items() if outcome != "PASS" and name not in mixed} == set(), results
    assert {name for name, outcome in results.items() if outcome == "PASS"} >= {
        "TestContract", "TestRetriesUnavailableWithTheSameEventID", "TestMaxAttemptsMayExceedGRPCsDefaultCapOfFive",
        "TestInvalidArgumentCarriesFieldViolations", "TestPropagatesTheCallersTraceAsTraceparent",
        "TestDefaultDeadline", "TestUnavailableNamesTheServiceAndItsAddress",
        "TestRetriesUnavailableAcrossARestart", "TestTheDeadlineFailsACallTheServerCannotAnswerInTime",
        "TestTheCallersTraceReachesTheDecisionLog", "TestEveryAttemptCarriesTheBearerToken",
        "TestRefusesToSendATokenInTheClearToAnotherHost", "TestCallsWithoutTheRightCredentialFailWithTypedErrors"}, results
    stack.sink.wait_for_trace("looper-decision", trace_id)


def test_java_suite(stack, real_server_env):
    env, handshake, trace_id = real_server_env
    reports = CLIENTS / "java" / "target" / "surefire-reports"
    shutil.rmtree(reports, ignore_errors=True)
    run(["mvn", "-B", "-q", "-o", "test"], CLIENTS / "java", env, during=stack.restart_when_asked(handshake))
    results = surefire_results(reports)
    mixed = {"ContractTest.mixedDecide", "ContractTest.mixedFeedback"}
    assert {name for name, outcome in results.items() if outcome != "passed" and name not in mixed} == set(), results
    assert {name for name, outcome in results.items() if outcome == "passed"} >= {
        "ContractTest.contract", "ClientTest.retriesUnavailableWithTheSameEventId",
        "ClientTest.maxAttemptsMayExceedGrpcsDefaultCapOfFive", "ClientTest.invalidArgumentCarriesFieldViolations",
        "ClientTest.propagatesTheCurrentTraceAsTraceparent", "ClientTest.everyCallHasTheDefaultDeadline",
        "ClientTest.unavailableNamesTheServiceAndItsTarget", "RealServerTest.retriesUnavailableAcrossARestart",
        "RealServerTest.theDeadlineFailsACallTheServerCannotAnswerInTime",
        "RealServerTest.theCallersTraceReachesTheDecisionLog", "ClientTest.everyAttemptCarriesTheBearerToken",
        "ClientTest.refusesToSendATokenInTheClearToAnotherHost",
        "RealServerTest.callsWithoutTheRightCredentialFailWithTypedExceptions"}, results
    stack.sink.wait_for_trace("looper-decision", trace_id)


def test_typescript_suite(stack, real_server_env):
    env, handshake, trace_id = real_server_env
    build_typescript(env)
    # One test file at a time: the restart must not meet another file's calls.
    results = node_results(run(["node", "--test", "--test-concurrency=1", "test/"], CLIENTS / "typescript", env,
                               during=stack.restart_when_asked(handshake)))
    mixed = {"mixed: decide for other languages' feedback", "mixed: feedback on other languages' decisions"}
    assert {name for name, outcome in results.items() if outcome != "pass" and name not in mixed} == set(), results
    assert {name for name, outcome in results.items() if outcome == "pass"} >= {
        "contract", "retries UNAVAILABLE with the same event id", "maxAttempts may exceed grpc-js's default cap of 5",
        "UNAVAILABLE names the service and the address it tried", "INVALID_ARGUMENT carries the field violations",
        "propagates the active trace as traceparent", "every call has the default deadline",
        "retries UNAVAILABLE across a restart", "the deadline fails a call the server cannot answer in time",
        "the caller's trace reaches the decision log", "every attempt carries the bearer token",
        "refuses to send a token in the clear to another host",
        "calls without the right credential fail with typed errors"}, results
    stack.sink.wait_for_trace("looper-decision", trace_id)


def test_decisions_and_feedback_across_languages(stack):
    """Every mixed decision counts the other language's click, and joins when its window closes."""
    run_id = f"r{uuid.uuid4().hex[:10]}"
    mixed = {lang: f"{run_id}-mixed-{lang}" for lang in ("py", "go", "java", "ts")}
    env = suite_env(stack, LOOPER_RUN_ID=run_id)
    client = stack.client()
    try:
        decision = client.decide(MIXED_USE_CASE, mixed["py"], {"user_id": "mixed"}, {"hour_of_day": 12})
        assert decision.decision_id == mixed["py"]

        go_mixed = ["go", "test", "-count=1", "-v", "-run", "^TestMixed", "./contract/"]
        results = go_results(run(go_mixed, CLIENTS / "go",
                                 dict(env, LOOPER_MIXED_DECIDE=mixed["go"], LOOPER_MIXED_FEEDBACK=mixed["py"])))
        assert results == {"TestMixedDecide": "PASS", "TestMixedFeedback": "PASS"}, results

        reports = CLIENTS / "java" / "target" / "surefire-reports"
        shutil.rmtree(reports, ignore_errors=True)
        run(["mvn", "-B", "-q", "-o", "test", "-Dtest=ContractTest#mixed*"], CLIENTS / "java",
            dict(env, LOOPER_MIXED_DECIDE=mixed["java"], LOOPER_MIXED_FEEDBACK=mixed["go"]))
        results = surefire_results(reports)
        assert results == {"ContractTest.mixedDecide": "passed", "ContractTest.mixedFeedback": "passed"}, results

        build_typescript(env)
        results = node_results(run(["node", "--test", "--test-name-pattern=^mixed", "test/contract.test.mjs"],
                                   CLIENTS / "typescript",
                                   dict(env, LOOPER_MIXED_DECIDE=mixed["ts"], LOOPER_MIXED_FEEDBACK=mixed["java"])))
        assert {name: outcome for name, outcome in results.items() if name.startswith("mixed")} == {
            "mixed: decide for other languages' feedback": "pass",
            "mixed: feedback on other languages' decisions": "pass"}, results

        results = go_results(run(["go", "test", "-count=1", "-v", "-run", "^TestMixedFeedback$", "./contract/"],
                                 CLIENTS / "go", dict(env, LOOPER_MIXED_FEEDBACK=mixed["ts"])))
        assert results == {"TestMixedFeedback": "PASS"}, results

        for lang, decision_id in mixed.items():
            logged = client.get_decision(MIXED_USE_CASE, decision_id)
            assert logged.subject["user_id"] == "mixed" and logged.features["hour_of_day"].int64_value == 12, lang
            label = client.get_label(MIXED_USE_CASE, decision_id)
            assert label.outcome_count == 1 and label.value == 1.0, (lang, label)
        pending = dict(mixed)
        deadline = time.monotonic() + 120
        while pending:
            for lang, decision_id in list(pending.items()):
                label = client.get_label(MIXED_USE_CASE, decision_id)
                if label.state == feedback_pb2.LABEL_STATE_JOINED:
                    assert label.outcome_count == 1 and label.value == 1.0, (lang, label)
                    del pending[lang]
            assert time.monotonic() < deadline, f"labels still pending after 120s: {pending}"
            time.sleep(0.5)
    finally:
        client.close()
