"""A table of bad requests: each gets the right status code and a field violation naming
the field, and leaves nothing behind."""

from __future__ import annotations

import grpc
import pytest
from looper import LooperError, decide_request, outcome_event
from looperpb.v1 import decision_pb2, feedback_pb2, trainer_pb2

OK_SUBJECT = {"user_id": "u1"}


def _decide(**overrides):
    fields = dict(use_case="contract_test", decision_id="bad-1", subject=OK_SUBJECT)
    fields.update(overrides)
    return ("decision", "Decide", decide_request(**fields))


def _feedback(**overrides):
    fields = dict(use_case="contract_test", decision_id="d-1", outcome="clicked", value=1.0, event_id="e-1")
    fields.update(overrides)
    return ("feedback", "LogFeedback", feedback_pb2.LogFeedbackRequest(event=outcome_event(**fields)))


CASES = {
    "empty decision id": (_decide(decision_id=""), grpc.StatusCode.INVALID_ARGUMENT, "decision_id"),
    "decision id with spaces": (_decide(decision_id="a b"), grpc.StatusCode.INVALID_ARGUMENT, "decision_id"),
    "empty use case": (_decide(use_case=""), grpc.StatusCode.INVALID_ARGUMENT, "use_case"),
    "unknown use case": (_decide(use_case="no_such_case"), grpc.StatusCode.NOT_FOUND, None),
    "missing subject key": (_decide(subject={}), grpc.StatusCode.INVALID_ARGUMENT, "subject.user_id"),
    "unknown subject key": (_decide(subject={"user_id": "1", "org": "2"}), grpc.StatusCode.INVALID_ARGUMENT,
                            "subject.org"),
    "wrong feature type": (_decide(context={"hour_of_day": "nine"}), grpc.StatusCode.INVALID_ARGUMENT,
                           "context.hour_of_day"),
    "undeclared feature": (_decide(context={"mood": 1.0}), grpc.StatusCode.INVALID_ARGUMENT, "context.mood"),
    "candidates on binary": (_decide(candidates=["a"]), grpc.StatusCode.INVALID_ARGUMENT, "candidates"),
    "empty batch": (("decision", "DecideBatch", decision_pb2.DecideBatchRequest()),
                    grpc.StatusCode.INVALID_ARGUMENT, "requests"),
    "missing feedback event": (("feedback", "LogFeedback", feedback_pb2.LogFeedbackRequest()),
                               grpc.StatusCode.INVALID_ARGUMENT, "event"),
    "empty event id": (_feedback(event_id="x")[:2] + (feedback_pb2.LogFeedbackRequest(
        event=feedback_pb2.OutcomeEvent(use_case="contract_test", decision_id="d", outcome="clicked")),),
        grpc.StatusCode.INVALID_ARGUMENT, "event.event_id"),
    "empty feedback decision id": (_feedback(decision_id=""), grpc.StatusCode.INVALID_ARGUMENT,
                                   "event.decision_id"),
    "bad outcome name": (_feedback(outcome="Clicked!"), grpc.StatusCode.INVALID_ARGUMENT, "event.outcome"),
    "non-finite value": (_feedback(value=float("nan")), grpc.StatusCode.INVALID_ARGUMENT, "event.value"),
    "feedback for unknown use case": (_feedback(use_case="no_such_case"), grpc.StatusCode.NOT_FOUND, None),
    "label of unknown decision": (("feedback", "GetLabel", feedback_pb2.GetLabelRequest(
        use_case="contract_test", decision_id="never-decided")), grpc.StatusCode.NOT_FOUND, None),
    "empty blueprint": (("trainer", "ApplyBlueprint", trainer_pb2.ApplyBlueprintRequest()),
                        grpc.StatusCode.INVALID_ARGUMENT, "spec_yaml"),
    "blueprint with a bad key": (("trainer", "ApplyBlueprint", trainer_pb2.ApplyBlueprintRequest(
        spec_yaml="name: x\ndecision_type: binary\nentities: [u]\ndefault_decision: maybe\n"
                  "label: {outcome: o, window: 1h}\n")),
        grpc.StatusCode.INVALID_ARGUMENT, "spec_yaml.default_decision"),
    "unknown training run": (("trainer", "GetTrainingRun", trainer_pb2.GetTrainingRunRequest(run_id="run-none")),
                             grpc.StatusCode.NOT_FOUND, None),
    "promote unknown model": (("trainer", "PromoteModel", trainer_pb2.PromoteModelRequest(
        use_case="contract_test", model_version="m000999")), grpc.StatusCode.NOT_FOUND, None),
    "model version that is a path": (("trainer", "PromoteModel", trainer_pb2.PromoteModelRequest(
        use_case="contract_test", model_version="../../../tmp/m000001")), grpc.StatusCode.INVALID_ARGUMENT,
        "model_version"),
    "missing model version": (("trainer", "PromoteModel", trainer_pb2.PromoteModelRequest(
        use_case="contract_test")), grpc.StatusCode.INVALID_ARGUMENT, "model_version"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_gets_code_and_field_violation(client, case):
    (service, method, request), code, field = CASES[case]
    stub = {"decision": client.decision, "feedback": client.feedback, "trainer": client.trainer}[service]
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
