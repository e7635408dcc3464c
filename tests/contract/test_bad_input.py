"""A table of bad requests: each gets the right status code and a field violation naming
the field, and leaves nothing behind."""

from __future__ import annotations

import grpc
import pytest
from looper import LooperError, decide_request, outcome_event
from looperpb.v1 import access_pb2, decision_pb2, feedback_pb2, trainer_pb2

OK_SUBJECT = {"user_id": "u1"}


def _decide(**overrides):
    fields = dict(use_case="contract_test", decision_id="bad-1", subject=OK_SUBJECT)
    fields.update(overrides)
    return ("decision", "Decide", decide_request(**fields))


def _feedback(**overrides):
    fields = dict(use_case="contract_test", decision_id="d-1", outcome="clicked", value=1.0, event_id="e-1")
    fields.update(overrides)
    return ("feedback", "LogFeedback", feedback_pb2.LogFeedbackRequest(event=outcome_event(**fields)))


def _call(service: str, method: str, request):
    return (service, method, request)


def _feedback_batch(*events):
    return _call("feedback", "LogFeedbackBatch", feedback_pb2.LogFeedbackBatchRequest(events=list(events)))


def _event_at(seconds: int):
    event = outcome_event("contract_test", "d-1", "clicked", 1.0, event_id="e-time")
    event.event_time.seconds = seconds
    return feedback_pb2.LogFeedbackRequest(event=event)


def _feedback_on_item(decision_id: str, action_id: str):
    event = outcome_event("rank_case", decision_id, "clicked", 1.0, event_id=f"e-{action_id}")
    event.action_id = action_id
    return ("feedback", "LogFeedback", feedback_pb2.LogFeedbackRequest(event=event))


RANKING = """
name: rank_case
decision_type: ranking
entities: [user_id]
default_decision: as_given
features: {candidate: {price: double}}
label: {outcome: clicked, window: 1h}
"""
NUMERIC = """
name: numeric_case
decision_type: numeric
entities: [user_id]
default_decision: 2
numeric: {min: 0, max: 10, step: 1}
label: {outcome: watched, aggregation: sum, kind: value, window: 1h}
"""


@pytest.fixture(scope="module", autouse=True)
def decision_spaces(looper):
    """A ranking and a numeric use case beside the binary one, and one shown ranking."""
    with looper.client() as c:
        c.apply_blueprint(RANKING)
        c.apply_blueprint(NUMERIC)
        c.decide("rank_case", "rank-1", OK_SUBJECT, candidates=[("a", {"price": 1.0}), ("b", {"price": 2.0})])


def _trainer(method: str, **fields):
    return _call("trainer", method, getattr(trainer_pb2, f"{method}Request")(**fields))


INVALID, NOT_FOUND, EXHAUSTED = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
                                 grpc.StatusCode.RESOURCE_EXHAUSTED)
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b]\n"
SIMPLE = "name: contract_test\ndecision_type: binary\nentities: [user_id]\ndefault_decision: false\n" \
         "label: {outcome: clicked, window: 2s}\n"

CASES = {
    # Decide: the decision space
    "candidates for a binary use case": (_decide(candidates=["a", "b"]), INVALID, "candidates"),
    "a ranking without candidates": (_decide(use_case="rank_case"), INVALID, "candidates"),
    "a ranking candidate given twice": (_decide(use_case="rank_case", candidates=["a", "a"]), INVALID,
                                        "candidates[1].action_id"),
    "a ranking candidate feature of the wrong type": (_decide(use_case="rank_case", candidates=[
        ("a", {"price": "cheap"})]), INVALID, "candidates[0].features.price"),
    "a ranking candidate feature not declared": (_decide(use_case="rank_case", candidates=[
        ("a", {"colour": 1.0})]), INVALID, "candidates[0].features.colour"),
    "a ranking candidate id that is a path": (_decide(use_case="rank_case", candidates=["../a"]), INVALID,
                                              "candidates[0].action_id"),
    "too many ranking candidates": (_decide(use_case="rank_case", candidates=[f"c{i}" for i in range(501)]),
                                    INVALID, "candidates"),
    "candidates for a numeric use case": (_decide(use_case="numeric_case", candidates=["3"]), INVALID, "candidates"),
    "an outcome for an item the ranking did not show": (_feedback_on_item("rank-1", "zzz"), INVALID,
                                                        "event.action_id"),
    "an outcome item id that is a path": (_feedback_on_item("rank-1", "../x"), INVALID, "event.action_id"),
    # Decide
    "empty decision id": (_decide(decision_id=""), INVALID, "decision_id"),
    "decision id with spaces": (_decide(decision_id="a b"), INVALID, "decision_id"),
    "decision id with a newline": (_decide(decision_id="abc\n"), INVALID, "decision_id"),
    "decision id with a slash": (_decide(decision_id="../../etc"), INVALID, "decision_id"),
    "decision id too long": (_decide(decision_id="d" * 129), INVALID, "decision_id"),
    "empty use case": (_decide(use_case=""), INVALID, "use_case"),
    "use case that is a path": (_decide(use_case="../contract_test"), INVALID, "use_case"),
    "use case in capitals": (_decide(use_case="Contract_Test"), INVALID, "use_case"),
    "unknown use case": (_decide(use_case="no_such_case"), NOT_FOUND, None),
    "missing subject key": (_decide(subject={}), INVALID, "subject.user_id"),
    "unknown subject key": (_decide(subject={"user_id": "1", "org": "2"}), INVALID, "subject.org"),
    "subject key too long": (_decide(subject={"user_id": "u" * 300}), INVALID, "subject.user_id"),
    "wrong feature type": (_decide(context={"hour_of_day": "nine"}), INVALID, "context.hour_of_day"),
    "bool for an int feature": (_decide(context={"hour_of_day": True}), INVALID, "context.hour_of_day"),
    "undeclared feature": (_decide(context={"mood": 1.0}), INVALID, "context.mood"),
    "thousands of undeclared features": (_decide(context={f"k{i}": 1 for i in range(3000)}), INVALID, "context"),
    "string feature too long": (_decide(context={"platform": "x" * 5000}), INVALID, "context.platform"),
    "candidates on binary": (_decide(candidates=["a"]), INVALID, "candidates"),
    # DecideBatch
    "empty batch": (_call("decision", "DecideBatch", decision_pb2.DecideBatchRequest()), INVALID, "requests"),
    "batch too large": (_call("decision", "DecideBatch", decision_pb2.DecideBatchRequest(
        requests=[decide_request("contract_test", f"b{i}", OK_SUBJECT) for i in range(1001)])), INVALID, "requests"),
    # GetDecision
    "get decision without use case": (_call("decision", "GetDecision", decision_pb2.GetDecisionRequest(
        decision_id="d")), INVALID, "use_case"),
    "get decision with a bad id": (_call("decision", "GetDecision", decision_pb2.GetDecisionRequest(
        use_case="contract_test", decision_id="a/b")), INVALID, "decision_id"),
    "get unknown decision": (_call("decision", "GetDecision", decision_pb2.GetDecisionRequest(
        use_case="contract_test", decision_id="never-decided")), NOT_FOUND, None),
    "get decision of unknown use case": (_call("decision", "GetDecision", decision_pb2.GetDecisionRequest(
        use_case="no_such_case", decision_id="d")), NOT_FOUND, None),
    # LogFeedback
    "missing feedback event": (_call("feedback", "LogFeedback", feedback_pb2.LogFeedbackRequest()), INVALID, "event"),
    "empty event id": (_call("feedback", "LogFeedback", feedback_pb2.LogFeedbackRequest(
        event=feedback_pb2.OutcomeEvent(use_case="contract_test", decision_id="d", outcome="clicked"))),
        INVALID, "event.event_id"),
    "event id too long": (_feedback(event_id="e" * 200), INVALID, "event.event_id"),
    "empty feedback decision id": (_feedback(decision_id=""), INVALID, "event.decision_id"),
    "feedback decision id with a space": (_feedback(decision_id="d 1"), INVALID, "event.decision_id"),
    "bad outcome name": (_feedback(outcome="Clicked!"), INVALID, "event.outcome"),
    "empty outcome name": (_feedback(outcome=""), INVALID, "event.outcome"),
    "non-finite value": (_feedback(value=float("nan")), INVALID, "event.value"),
    "infinite value": (_feedback(value=float("inf")), INVALID, "event.value"),
    "event in the far future": (_call("feedback", "LogFeedback", _event_at(32503680000)), INVALID,
                                "event.event_time"),
    "event time out of range": (_call("feedback", "LogFeedback", _event_at(-10**12)), INVALID, "event.event_time"),
    "feedback for unknown use case": (_feedback(use_case="no_such_case"), NOT_FOUND, None),
    # LogFeedbackBatch
    "empty feedback batch": (_feedback_batch(), INVALID, "events"),
    "feedback batch too large": (_feedback_batch(*[outcome_event("contract_test", "d", "clicked", event_id=f"e{i}")
                                                   for i in range(5001)]), INVALID, "events"),
    "a bad event in a batch": (_feedback_batch(outcome_event("contract_test", "d", "clicked", event_id="ok"),
                                               outcome_event("contract_test", "d", "No!", event_id="bad")),
                               INVALID, "events[1].outcome"),
    "batch event of unknown use case": (_feedback_batch(outcome_event("no_such_case", "d", "clicked")),
                                        NOT_FOUND, None),
    # GetLabel
    "label of unknown decision": (_call("feedback", "GetLabel", feedback_pb2.GetLabelRequest(
        use_case="contract_test", decision_id="never-decided")), NOT_FOUND, None),
    "label without use case": (_call("feedback", "GetLabel", feedback_pb2.GetLabelRequest(decision_id="d")),
                               INVALID, "use_case"),
    "label with a bad decision id": (_call("feedback", "GetLabel", feedback_pb2.GetLabelRequest(
        use_case="contract_test", decision_id="a b")), INVALID, "decision_id"),
    "label of unknown use case": (_call("feedback", "GetLabel", feedback_pb2.GetLabelRequest(
        use_case="no_such_case", decision_id="d")), NOT_FOUND, None),
    # GetJoinStats
    "join stats without use case": (_call("feedback", "GetJoinStats", feedback_pb2.GetJoinStatsRequest()),
                                    INVALID, "use_case"),
    "join stats of a bad name": (_call("feedback", "GetJoinStats", feedback_pb2.GetJoinStatsRequest(
        use_case="a/b")), INVALID, "use_case"),
    "join stats of unknown use case": (_call("feedback", "GetJoinStats", feedback_pb2.GetJoinStatsRequest(
        use_case="no_such_case")), NOT_FOUND, None),
    # ApplyBlueprint
    "empty blueprint": (_trainer("ApplyBlueprint"), INVALID, "spec_yaml"),
    "blueprint with a bad key": (_trainer("ApplyBlueprint", spec_yaml=SIMPLE.replace("false", "maybe")),
                                 INVALID, "spec_yaml.default_decision"),
    "blueprint too large": (_trainer("ApplyBlueprint", spec_yaml=SIMPLE + "#" * 300_000), INVALID, "spec_yaml"),
    "blueprint with aliases": (_trainer("ApplyBlueprint", spec_yaml=ALIAS_BOMB), INVALID, "spec_yaml"),
    "blueprint that is not a mapping": (_trainer("ApplyBlueprint", spec_yaml="- a\n- b\n"), INVALID, "spec_yaml"),
    "blueprint with an unknown Feast view": (_trainer("ApplyBlueprint", spec_yaml=SIMPLE.replace(
        "label:", "features: {feast: ['nothing:here']}\nlabel:")), INVALID, "spec_yaml.features.feast[0]"),
    "blueprint taking a column of Looper's": (_trainer("ApplyBlueprint", spec_yaml=SIMPLE.replace(
        "label:", "features: {context: {propensity: double}}\nlabel:")), INVALID,
        "spec_yaml.features.context.propensity"),
    "blueprint with an endless window": (_trainer("ApplyBlueprint", spec_yaml=SIMPLE.replace("2s", "999999999d")),
                                         INVALID, "spec_yaml.label.window"),
    # GetBlueprint
    "blueprint without use case": (_trainer("GetBlueprint"), INVALID, "use_case"),
    "blueprint with a negative version": (_trainer("GetBlueprint", use_case="contract_test", version=-1), INVALID,
                                          "version"),
    "blueprint version that does not exist": (_trainer("GetBlueprint", use_case="contract_test", version=999),
                                              NOT_FOUND, None),
    "blueprint of unknown use case": (_trainer("GetBlueprint", use_case="no_such_case"), NOT_FOUND, None),
    # ListBlueprints
    "blueprints with a negative page size": (_trainer("ListBlueprints", page_size=-1), INVALID, "page_size"),
    "blueprints with a huge page size": (_trainer("ListBlueprints", page_size=100_000), INVALID, "page_size"),
    "blueprints with a forged page token": (_trainer("ListBlueprints", page_token="not-a-token"), INVALID,
                                            "page_token"),
    # ListUseCases
    "use cases with a huge page size": (_trainer("ListUseCases", page_size=1001), INVALID, "page_size"),
    "use cases with the blueprints' page token": (_trainer("ListUseCases", page_token="eyJsIjogImJsdWVwcmludHMiLCAi"
                                                                                     "YSI6ICJ4In0="),
                                                  INVALID, "page_token"),
    # StartTrainingRun
    "training without use case": (_trainer("StartTrainingRun"), INVALID, "use_case"),
    "training an unknown use case": (_trainer("StartTrainingRun", use_case="no_such_case"), NOT_FOUND, None),
    # GetTrainingRun
    "unknown training run": (_trainer("GetTrainingRun", run_id="run-none"), NOT_FOUND, None),
    "empty training run id": (_trainer("GetTrainingRun"), INVALID, "run_id"),
    "training run id that is a path": (_trainer("GetTrainingRun", run_id="../runs/x"), INVALID, "run_id"),
    # ListTrainingRuns
    "runs with a negative page size": (_trainer("ListTrainingRuns", use_case="contract_test", page_size=-1),
                                       INVALID, "page_size"),
    "runs with a huge page size": (_trainer("ListTrainingRuns", use_case="contract_test", page_size=5000),
                                   INVALID, "page_size"),
    "runs with another listing's token": (_trainer("ListTrainingRuns", use_case="contract_test",
                                                   page_token="eyJsIjogImJsdWVwcmludHMiLCAiYSI6ICJ4In0="),
                                          INVALID, "page_token"),
    "runs of unknown use case": (_trainer("ListTrainingRuns", use_case="no_such_case"), NOT_FOUND, None),
    # ListModels
    "models without use case": (_trainer("ListModels"), INVALID, "use_case"),
    "models of unknown use case": (_trainer("ListModels", use_case="no_such_case"), NOT_FOUND, None),
    "models with a forged page token": (_trainer("ListModels", use_case="contract_test", page_token="%%%"),
                                        INVALID, "page_token"),
    # PromoteModel
    "promote unknown model": (_trainer("PromoteModel", use_case="contract_test", model_version="m000999"),
                              NOT_FOUND, None),
    "model version that is a path": (_trainer("PromoteModel", use_case="contract_test",
                                              model_version="../../../tmp/m000001"), INVALID, "model_version"),
    "missing model version": (_trainer("PromoteModel", use_case="contract_test"), INVALID, "model_version"),
    "promote in unknown use case": (_trainer("PromoteModel", use_case="no_such_case", model_version="m000001"),
                                    NOT_FOUND, None),
    # RollbackModel
    "rollback without use case": (_trainer("RollbackModel"), INVALID, "use_case"),
    "rollback of unknown use case": (_trainer("RollbackModel", use_case="no_such_case"), NOT_FOUND, None),
    "rollback with no earlier model": (_trainer("RollbackModel", use_case="contract_test"), PRECONDITION, None),
    # PauseUseCase, ResumeUseCase
    "pause without use case": (_trainer("PauseUseCase"), INVALID, "use_case"),
    "pause of unknown use case": (_trainer("PauseUseCase", use_case="no_such_case"), NOT_FOUND, None),
    "pause with a reason too long": (_trainer("PauseUseCase", use_case="contract_test", reason="r" * 2000),
                                     INVALID, "reason"),
    "resume of unknown use case": (_trainer("ResumeUseCase", use_case="no_such_case"), NOT_FOUND, None),
    "resume with a bad name": (_trainer("ResumeUseCase", use_case="Bad Name"), INVALID, "use_case"),
    # GetExperimentReport
    "report without use case": (_trainer("GetExperimentReport"), INVALID, "use_case"),
    "report of unknown use case": (_trainer("GetExperimentReport", use_case="no_such_case"), NOT_FOUND, None),
    "report with a bad experiment id": (_trainer("GetExperimentReport", use_case="contract_test",
                                                 experiment_id="../x"), INVALID, "experiment_id"),
    "report of an experiment never run": (_trainer("GetExperimentReport", use_case="contract_test",
                                                   experiment_id="never_run"), NOT_FOUND, None),
    # DeleteSubjectData, GetDeletion, DeleteUseCase
    "delete a subject without one": (_trainer("DeleteSubjectData", use_case="contract_test"), INVALID, "subject"),
    "delete a subject of no use case": (_trainer("DeleteSubjectData", subject=OK_SUBJECT), INVALID, "use_case"),
    "delete a subject of a use case that is a path": (_trainer("DeleteSubjectData", use_case="../contract_test",
                                                               subject=OK_SUBJECT), INVALID, "use_case"),
    "delete a subject of an unknown use case": (_trainer("DeleteSubjectData", use_case="no_such_case",
                                                         subject=OK_SUBJECT), NOT_FOUND, None),
    "delete a subject by an unknown entity": (_trainer("DeleteSubjectData", use_case="contract_test",
                                                       subject={"user_id": "u1", "org": "o1"}), INVALID, "subject.org"),
    "delete a subject missing an entity": (_trainer("DeleteSubjectData", use_case="contract_test",
                                                    subject={"org": "o1"}), INVALID, "subject.user_id"),
    "delete a subject with an empty value": (_trainer("DeleteSubjectData", use_case="contract_test",
                                                      subject={"user_id": ""}), INVALID, "subject.user_id"),
    "delete a subject with a value too long": (_trainer("DeleteSubjectData", use_case="contract_test",
                                                        subject={"user_id": "u" * 300}), INVALID, "subject.user_id"),
    "delete a subject with a key that is a path": (_trainer("DeleteSubjectData", use_case="contract_test",
                                                            subject={"../user_id": "u1"}), INVALID, "subject.../user_id"),
    "delete a subject with too many keys": (_trainer("DeleteSubjectData", use_case="contract_test",
                                                     subject={f"k{i}": "v" for i in range(40)}), INVALID, "subject"),
    "delete a subject with a request id that is a path": (_trainer(
        "DeleteSubjectData", use_case="contract_test", subject=OK_SUBJECT, request_id="../../x"), INVALID,
        "request_id"),
    "deletion without an id": (_trainer("GetDeletion"), INVALID, "deletion_id"),
    "deletion id that is a path": (_trainer("GetDeletion", deletion_id="../state/x"), INVALID, "deletion_id"),
    "unknown deletion": (_trainer("GetDeletion", deletion_id="del-0000000000000000"), NOT_FOUND, None),
    "delete a use case without its name": (_trainer("DeleteUseCase"), INVALID, "use_case"),
    "delete a use case that is a path": (_trainer("DeleteUseCase", use_case="../contract_test"), INVALID, "use_case"),
    "delete an unknown use case": (_trainer("DeleteUseCase", use_case="no_such_case"), NOT_FOUND, None),
    "delete a use case with a request id with spaces": (_trainer("DeleteUseCase", use_case="contract_test",
                                                                 request_id="a b"), INVALID, "request_id"),
    "delete a use case with a reason too long": (_trainer("DeleteUseCase", use_case="contract_test",
                                                          reason="r" * 2000), INVALID, "reason"),
    # Access
    "credential with a bad name": (_call("access", "CreateCredential", access_pb2.CreateCredentialRequest(
        name="Bad Name!")), INVALID, "name"),
    "credential with a bad grant": (_call("access", "CreateCredential", access_pb2.CreateCredentialRequest(
        name="x", grants=[access_pb2.Grant(use_case="../x", roles=[access_pb2.ROLE_READ])])), INVALID,
        "grants[0].use_case"),
    "credential with an unknown role": (_call("access", "CreateCredential", access_pb2.CreateCredentialRequest(
        name="x", grants=[access_pb2.Grant(use_case="contract_test", roles=[9])])), INVALID, "grants[0].roles[0]"),
    "rotate an unknown credential": (_call("access", "RotateCredential", access_pb2.RotateCredentialRequest(
        credential_id="cred-000000000000")), NOT_FOUND, None),
    "revoke a credential id that is a path": (_call("access", "RevokeCredential", access_pb2.RevokeCredentialRequest(
        credential_id="../../x")), INVALID, "credential_id"),
    "credentials with a huge page size": (_call("access", "ListCredentials", access_pb2.ListCredentialsRequest(
        page_size=5000)), INVALID, "page_size"),
}


def test_every_rpc_has_bad_input_cases():
    from looperpb.v1 import access_pb2 as a, decision_pb2 as d, feedback_pb2 as f, trainer_pb2 as t

    rpcs = {m.name for p in (a, d, f, t) for s in p.DESCRIPTOR.services_by_name.values() for m in s.methods}
    assert rpcs == {method for (_, method, _), _, _ in CASES.values()} and len(CASES) >= 60


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_gets_code_and_field_violation(client, case):
    (service, method, request), code, field = CASES[case]
    stub = {"decision": client.decision, "feedback": client.feedback, "trainer": client.trainer,
            "access": client.access}[service]
    with pytest.raises(LooperError) as raised:
        client._call(getattr(stub, method), request, 5)
    assert raised.value.code == code
    if field:
        assert field in [v.field for v in raised.value.violations]
        assert all(v.description for v in raised.value.violations)
    assert "Traceback" not in raised.value.message


def test_oversized_payload_is_resource_exhausted(client):
    huge = decide_request("contract_test", "huge-1", OK_SUBJECT, {"platform": "x" * (5 * 1024 * 1024)})
    with pytest.raises(LooperError) as raised:
        client._call(client.decision.Decide, huge, 10)
    assert raised.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_a_rejected_batch_writes_nothing(client):
    good = outcome_event("contract_test", "d-partial", "clicked", 1.0, event_id="partial-good")
    bad = outcome_event("contract_test", "", "clicked", 1.0, event_id="partial-bad")
    with pytest.raises(LooperError) as raised:
        client.log_feedback_batch([good, bad])
    assert "events[1].decision_id" in [v.field for v in raised.value.violations]
    assert client.log_feedback_batch([good]) == [True]  # the good event was not stored before


def test_a_rejected_decision_is_not_logged(client):
    with pytest.raises(LooperError):
        client.decide("contract_test", "rejected-1", OK_SUBJECT, {"hour_of_day": "nine"})
    with pytest.raises(LooperError) as raised:
        client.get_decision("contract_test", "rejected-1")
    assert raised.value.code == grpc.StatusCode.NOT_FOUND
