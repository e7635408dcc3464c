"""gRPC adapter of the Decision service: protobuf in, Decider call, protobuf out."""

from __future__ import annotations

import time

from looperpb.v1 import decision_pb2, decision_pb2_grpc
from looperpb.values import feature_value

from services.decision.decider import CandidateInput, DecideCommand, Decider
from services.decisions.record import DecisionRecord
from services.platform.auth import Role, needs
from services.platform.errors import InvalidArgument
from services.platform.grpc_runtime import ServiceBinding, rpc_method, status_for
from services.platform.validation import Violations
from services.platform.wire import feature_map, to_timestamp

MAX_BATCH = 1000


def to_command(request: decision_pb2.DecideRequest, deadline: float | None = None) -> DecideCommand:
    return DecideCommand(
        use_case=request.use_case,
        decision_id=request.decision_id,
        subject=dict(request.subject),
        context=feature_map(request.context),
        candidates=tuple(CandidateInput(c.action_id, feature_map(c.features)) for c in request.candidates),
        deadline=deadline,
    )


def deadline_of(context) -> float | None:
    """The call's deadline on this process's monotonic clock (None: the caller set none)."""
    remaining = context.time_remaining() if context is not None else None
    if remaining is None or remaining > 86400:  # no deadline is sent as a practically infinite one
        return None
    return time.monotonic() + remaining


def decision_to_proto(record: DecisionRecord) -> decision_pb2.Decision:
    return decision_pb2.Decision(
        decision_id=record.decision_id, use_case=record.use_case, action=record.action,
        score=record.score, model_version=record.model_version,
        blueprint_version=record.blueprint_version, propensity=record.propensity,
        is_default=record.is_default, default_reason=int(record.default_reason),
        is_exploration=record.is_exploration, decide_time=to_timestamp(record.decide_time),
        value=record.value or 0.0, arm=record.arm,
        ranking=[decision_pb2.ScoredAction(action_id=r.action_id, score=r.score, propensity=r.propensity)
                 for r in record.ranking],
    )


def require_use_case(use_case: str, field: str = "use_case") -> None:
    if not use_case:
        raise InvalidArgument.single(field, "is required")


class DecisionServicer(decision_pb2_grpc.DecisionServiceServicer):
    def __init__(self, decider: Decider):
        self.decider = decider

    def _decide(self, request: decision_pb2.DecideRequest, context=None) -> decision_pb2.DecideResponse:
        require_use_case(request.use_case)
        record, replayed = self.decider.decide(to_command(request, deadline_of(context)))
        return decision_pb2.DecideResponse(decision=decision_to_proto(record), replayed=replayed)

    @rpc_method
    def Decide(self, request, context):
        return self._decide(request, context)

    @rpc_method
    def DecideBatch(self, request, context):
        if not request.requests:
            raise InvalidArgument.single("requests", "must hold at least one request")
        if len(request.requests) > MAX_BATCH:
            raise InvalidArgument.single("requests", f"must hold at most {MAX_BATCH} requests")
        deadline = deadline_of(context)
        commands = [to_command(r, deadline) for r in request.requests]
        answers = self.decider.decide_many(commands)
        return decision_pb2.DecideBatchResponse(results=[_batch_result(i, answer) for i, answer in enumerate(answers)])

    @rpc_method
    def GetDecision(self, request, context):
        v = Violations()
        v.require_name("use_case", request.use_case)
        v.require_id("decision_id", request.decision_id)
        v.raise_if_any()
        record = self.decider.get(request.use_case, request.decision_id)
        return decision_pb2.GetDecisionResponse(
            decision=decision_to_proto(record),
            features={k: feature_value(v) for k, v in record.features.items()},
            subject=record.subject,
            traceparent=record.traceparent,
        )


def _batch_result(index: int, answer) -> decision_pb2.DecideBatchResult:
    if not isinstance(answer, Exception):
        record, replayed = answer
        return decision_pb2.DecideBatchResult(
            response=decision_pb2.DecideResponse(decision=decision_to_proto(record), replayed=replayed))
    status = status_for(answer)
    field = f"requests[{index}]"
    if isinstance(answer, InvalidArgument):
        field = f"{field}.{answer.violations[0].field}"
    return decision_pb2.DecideBatchResult(error=decision_pb2.BatchItemError(
        code=status.code, message=status.message, field=field))


AUTH_RULES = {
    "Decide": needs(Role.DECIDE, lambda r: [r.use_case]),
    "DecideBatch": needs(Role.DECIDE, lambda r: [item.use_case for item in r.requests]),
    "GetDecision": needs(Role.READ, lambda r: [r.use_case]),
}


def binding(decider: Decider, on_shutdown=lambda: None, interceptors: tuple = ()) -> ServiceBinding:
    return ServiceBinding(
        name=decision_pb2.DESCRIPTOR.services_by_name["DecisionService"].full_name,
        servicer=DecisionServicer(decider),
        register=decision_pb2_grpc.add_DecisionServiceServicer_to_server,
        on_shutdown=on_shutdown,
        interceptors=interceptors,
        auth_rules=AUTH_RULES,
    )
