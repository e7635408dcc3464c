"""Contract tests through real channels to the real servers: every RPC answers, health and
reflection list the three services."""

from __future__ import annotations

import time
import uuid

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from looper import FailedPreconditionError, decide_request, outcome_event
from looperpb.v1 import decision_pb2, feedback_pb2, trainer_pb2, types_pb2

from tests.conftest import SIMPLE_BLUEPRINT

SERVICE_NAMES = {
    "decision": "looper.v1.DecisionService",
    "feedback": "looper.v1.FeedbackService",
    "trainer": "looper.v1.TrainerService",
}


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.mark.parametrize("service", sorted(SERVICE_NAMES))
def test_health_reports_each_service_serving(looper, service):
    with grpc.insecure_channel(looper.addresses[service]) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = stub.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAMES[service]), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("service", sorted(SERVICE_NAMES))
def test_reflection_lists_the_service(looper, service):
    with grpc.insecure_channel(looper.addresses[service]) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                            timeout=5)
        names = {s.name for reply in replies for s in reply.list_services_response.service}
    assert {SERVICE_NAMES[service], "grpc.health.v1.Health"} <= names


def test_decide_then_read_back_the_logged_decision(client):
    decision_id = new_id("d")
    decision = client.decide("contract_test", decision_id, {"user_id": "u1"}, {"hour_of_day": 9, "platform": "ios"})
    assert decision.decision_id == decision_id
    assert decision.action in ("true", "false")
    assert decision.is_default and decision.model_version == ""
    assert decision.blueprint_version == client.trainer.GetBlueprint(
        trainer_pb2.GetBlueprintRequest(use_case="contract_test")).blueprint.version
    assert 0 < decision.propensity <= 1
    logged = client.get_decision("contract_test", decision_id)
    assert logged.decision == decision
    assert logged.features["hour_of_day"].int64_value == 9
    assert logged.features["platform"].string_value == "ios"
    assert dict(logged.subject) == {"user_id": "u1"}


def test_decide_is_idempotent_by_decision_id(client):
    decision_id = new_id("d")
    first = client.decision.Decide(decide_request("contract_test", decision_id, {"user_id": "u2"}))
    again = client.decision.Decide(decide_request("contract_test", decision_id, {"user_id": "u2"}))
    assert not first.replayed and again.replayed
    assert again.decision == first.decision


def test_decide_batch_answers_each_item_in_order(client):
    good = decide_request("contract_test", new_id("b"), {"user_id": "u3"})
    bad = decide_request("contract_test", "", {"user_id": "u3"})
    results = client.decide_batch([good, bad])
    assert results[0].WhichOneof("result") == "response"
    assert results[0].response.decision.decision_id == good.decision_id
    assert results[1].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert results[1].error.field == "requests[1].decision_id"


def test_feedback_is_idempotent_and_joined_after_the_window(client):
    decision_id = new_id("d")
    client.decide("contract_test", decision_id, {"user_id": "u4"})
    event_id = new_id("e")
    assert client.log_feedback("contract_test", decision_id, "clicked", 1.0, event_id=event_id) is True
    assert client.log_feedback("contract_test", decision_id, "clicked", 1.0, event_id=event_id) is False
    label = client.get_label("contract_test", decision_id)
    assert label.outcome_count == 1 and label.value == 1.0
    deadline = time.monotonic() + 15
    while label.state != feedback_pb2.LABEL_STATE_JOINED and time.monotonic() < deadline:
        time.sleep(0.2)
        label = client.get_label("contract_test", decision_id)
    assert label.state == feedback_pb2.LABEL_STATE_JOINED
    assert label.value == 1.0


def test_feedback_batch_and_join_stats(client):
    # A use case of its own, so that the counts are this test's alone.
    client.apply_blueprint(SIMPLE_BLUEPRINT.replace("name: contract_test", "name: join_stats_test"))
    decision_id = new_id("d")
    client.decide("join_stats_test", decision_id, {"user_id": "u5"})
    events = [outcome_event("join_stats_test", decision_id, "clicked", 1.0, event_id=new_id("e")) for _ in range(3)]
    assert client.log_feedback_batch(events) == [True, True, True]
    assert client.log_feedback_batch(events[:1]) == [False]
    orphan = outcome_event("join_stats_test", new_id("unknown"), "clicked", 1.0)
    assert client.log_feedback_batch([orphan]) == [True]
    deadline = time.monotonic() + 10
    while True:
        stats = client.join_stats("join_stats_test")
        counts = (stats.orphan_outcomes, stats.attributed_outcomes, stats.late_outcomes,
                  stats.pending_decisions + stats.joined_decisions)
        if counts == (1, 3, 0, 1) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert counts == (1, 3, 0, 1)


def test_trainer_blueprint_rpcs(client):
    current = client.trainer.GetBlueprint(trainer_pb2.GetBlueprintRequest(use_case="contract_test")).blueprint
    assert current.use_case == "contract_test" and current.version == 1
    again, created = client.apply_blueprint(current.spec_yaml)
    assert not created and again.version == current.version
    listed = client.trainer.ListBlueprints(trainer_pb2.ListBlueprintsRequest()).blueprints
    assert "contract_test" in {b.use_case for b in listed}


def test_training_run_fails_cleanly_without_data_and_is_listed(client):
    run = client.start_training_run("contract_test")
    assert run.run_id and run.state == trainer_pb2.TRAINING_RUN_STATE_QUEUED
    deadline = time.monotonic() + 30
    while run.state in (trainer_pb2.TRAINING_RUN_STATE_QUEUED, trainer_pb2.TRAINING_RUN_STATE_RUNNING):
        assert time.monotonic() < deadline
        time.sleep(0.1)
        run = client.get_training_run(run.run_id)
    assert run.state == trainer_pb2.TRAINING_RUN_STATE_FAILED
    assert "labeled rows" in run.error
    runs = client.trainer.ListTrainingRuns(trainer_pb2.ListTrainingRunsRequest(use_case="contract_test")).runs
    assert run.run_id in {r.run_id for r in runs}


def test_model_rpcs_answer_with_no_models(client):
    assert client.list_models("contract_test") == []
    with pytest.raises(FailedPreconditionError):
        client.rollback_model("contract_test")


def test_async_client_decides_and_logs_feedback(looper):
    import asyncio

    from looper import AsyncLooperClient, InvalidArgumentError

    async def scenario():
        async with AsyncLooperClient(looper.addresses["decision"], looper.addresses["feedback"],
                                     token_file=looper.token_file) as client:
            decision_id = new_id("async")
            decision = await client.decide("contract_test", decision_id, {"user_id": "a1"}, {"hour_of_day": 1})
            assert decision.decision_id == decision_id
            assert await client.log_feedback("contract_test", decision_id, "clicked", event_id=new_id("e"))
            with pytest.raises(InvalidArgumentError) as raised:
                await client.decide("contract_test", "", {"user_id": "a1"})
            assert "decision_id" in [v.field for v in raised.value.violations]

    asyncio.run(scenario())


def test_a_paused_use_case_answers_its_default_until_resumed(client):
    client.apply_blueprint(SIMPLE_BLUEPRINT.replace("name: contract_test", "name: pause_test"))
    assert client.trainer.PauseUseCase(trainer_pb2.PauseUseCaseRequest(use_case="pause_test", reason="incident")).paused
    paused = client.decide("pause_test", new_id("p"), {"user_id": "u"})
    assert paused.is_default and paused.default_reason == decision_pb2.DEFAULT_REASON_PAUSED
    assert not client.trainer.ResumeUseCase(trainer_pb2.ResumeUseCaseRequest(use_case="pause_test")).paused
    resumed = client.decide("pause_test", new_id("p"), {"user_id": "u"})
    assert resumed.default_reason == decision_pb2.DEFAULT_REASON_NO_MODEL


def test_use_cases_are_listed_with_their_blueprint_pause_and_live_model(client):
    client.apply_blueprint(SIMPLE_BLUEPRINT.replace("name: contract_test", "name: listed_paused"))
    client.trainer.PauseUseCase(trainer_pb2.PauseUseCaseRequest(use_case="listed_paused", reason="incident 42"))
    listed, token = [], ""
    while True:  # pages of one, to walk the listing
        page = client.trainer.ListUseCases(trainer_pb2.ListUseCasesRequest(page_size=1, page_token=token))
        listed += page.use_cases
        token = page.next_page_token
        if not token:
            break
    by_name = {u.use_case: u for u in listed}
    assert [u.use_case for u in listed] == sorted(by_name) and {"contract_test", "listed_paused"} <= set(by_name)
    paused, running = by_name["listed_paused"], by_name["contract_test"]
    assert (paused.paused, paused.pause_reason, paused.blueprint_version) == (True, "incident 42", 1)
    assert (running.paused, running.pause_reason, running.live_model_version) == (False, "", "")
    assert running.decision_type == types_pb2.DECISION_TYPE_BINARY
