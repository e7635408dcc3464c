"""gRPC adapter of the Feedback service."""

from __future__ import annotations

from datetime import datetime, timezone

from looperpb.v1 import feedback_pb2, feedback_pb2_grpc

from services.labels.joiner import LabelJoiner
from services.labels.outcomes import OutcomeEvent, OutcomeRecorder
from services.platform.auth import Role, needs
from services.platform.errors import InvalidArgument
from services.platform.grpc_runtime import ServiceBinding, rpc_method
from services.platform.validation import Violations
from services.platform.wire import from_timestamp, to_timestamp

MAX_BATCH = 5000
_STATUS = {True: feedback_pb2.FEEDBACK_STATUS_ACCEPTED, False: feedback_pb2.FEEDBACK_STATUS_DUPLICATE}


_TIMESTAMP_RANGE = (0, 253402300799)  # 1970-01-01T00:00:00Z .. 9999-12-31T23:59:59Z


def check_times(messages, field_prefix: str) -> None:
    """Event times a datetime can hold (protobuf allows seconds far outside them)."""
    v = Violations()
    for i, message in enumerate(messages):
        stamp = message.event_time
        if message.HasField("event_time") and not (_TIMESTAMP_RANGE[0] <= stamp.seconds <= _TIMESTAMP_RANGE[1]
                                                   and 0 <= stamp.nanos < 1_000_000_000):
            at = field_prefix if field_prefix == "event" else f"{field_prefix}[{i}]"
            v.add(f"{at}.event_time", "must be between 1970-01-01 and 9999-12-31")
    v.raise_if_any()


def to_event(message: feedback_pb2.OutcomeEvent, received: datetime) -> OutcomeEvent:
    return OutcomeEvent(
        event_id=message.event_id, use_case=message.use_case, decision_id=message.decision_id,
        outcome=message.outcome, value=message.value, action_id=message.action_id,
        event_time=from_timestamp(message.event_time) if message.HasField("event_time") else received,
        receive_time=received,
    )


class FeedbackServicer(feedback_pb2_grpc.FeedbackServiceServicer):
    def __init__(self, recorder: OutcomeRecorder, joiner: LabelJoiner):
        self.recorder = recorder
        self.joiner = joiner

    @rpc_method
    def LogFeedback(self, request, context):
        if not request.HasField("event"):
            raise InvalidArgument.single("event", "is required")
        check_times([request.event], "event")
        (accepted,) = self.recorder.record([to_event(request.event, datetime.now(timezone.utc))], "event")
        return feedback_pb2.LogFeedbackResponse(status=_STATUS[accepted])

    @rpc_method
    def LogFeedbackBatch(self, request, context):
        if not request.events:
            raise InvalidArgument.single("events", "must hold at least one event")
        if len(request.events) > MAX_BATCH:
            raise InvalidArgument.single("events", f"must hold at most {MAX_BATCH} events")
        check_times(request.events, "events")
        received = datetime.now(timezone.utc)
        accepted = self.recorder.record([to_event(e, received) for e in request.events], "events")
        return feedback_pb2.LogFeedbackBatchResponse(statuses=[_STATUS[a] for a in accepted])

    @rpc_method
    def GetLabel(self, request, context):
        v = Violations()
        v.require_name("use_case", request.use_case)
        v.require_id("decision_id", request.decision_id)
        v.raise_if_any()
        self.recorder.blueprints.latest_version(request.use_case)
        label = self.joiner.label(request.use_case, request.decision_id)
        return feedback_pb2.GetLabelResponse(
            state=feedback_pb2.LABEL_STATE_JOINED if label.joined else feedback_pb2.LABEL_STATE_PENDING,
            value=label.value, outcome_count=label.outcome_count,
            window_end_time=to_timestamp(label.window_end))

    @rpc_method
    def GetJoinStats(self, request, context):
        v = Violations()
        v.require_name("use_case", request.use_case)
        v.raise_if_any()
        self.recorder.blueprints.latest_version(request.use_case)
        stats = self.joiner.stats(request.use_case)
        return feedback_pb2.GetJoinStatsResponse(**stats.__dict__)


AUTH_RULES = {
    "LogFeedback": needs(Role.DECIDE, lambda r: [r.event.use_case]),
    "LogFeedbackBatch": needs(Role.DECIDE, lambda r: [e.use_case for e in r.events]),
    "GetLabel": needs(Role.READ, lambda r: [r.use_case]),
    "GetJoinStats": needs(Role.READ, lambda r: [r.use_case]),
}


def binding(recorder: OutcomeRecorder, joiner: LabelJoiner, on_shutdown=lambda: None,
            interceptors: tuple = ()) -> ServiceBinding:
    return ServiceBinding(
        name=feedback_pb2.DESCRIPTOR.services_by_name["FeedbackService"].full_name,
        servicer=FeedbackServicer(recorder, joiner),
        register=feedback_pb2_grpc.add_FeedbackServiceServicer_to_server,
        on_shutdown=on_shutdown,
        interceptors=interceptors,
        auth_rules=AUTH_RULES,
    )
