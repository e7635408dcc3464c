import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FeedbackStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FEEDBACK_STATUS_UNSPECIFIED: _ClassVar[FeedbackStatus]
    FEEDBACK_STATUS_ACCEPTED: _ClassVar[FeedbackStatus]
    FEEDBACK_STATUS_DUPLICATE: _ClassVar[FeedbackStatus]

class LabelState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LABEL_STATE_UNSPECIFIED: _ClassVar[LabelState]
    LABEL_STATE_PENDING: _ClassVar[LabelState]
    LABEL_STATE_JOINED: _ClassVar[LabelState]
FEEDBACK_STATUS_UNSPECIFIED: FeedbackStatus
FEEDBACK_STATUS_ACCEPTED: FeedbackStatus
FEEDBACK_STATUS_DUPLICATE: FeedbackStatus
LABEL_STATE_UNSPECIFIED: LabelState
LABEL_STATE_PENDING: LabelState
LABEL_STATE_JOINED: LabelState

class OutcomeEvent(_message.Message):
    __slots__ = ("event_id", "use_case", "decision_id", "outcome", "value", "event_time", "action_id")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    USE_CASE_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    ACTION_ID_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    use_case: str
    decision_id: str
    outcome: str
    value: float
    event_time: _timestamp_pb2.Timestamp
    action_id: str
    def __init__(self, event_id: _Optional[str] = ..., use_case: _Optional[str] = ..., decision_id: _Optional[str] = ..., outcome: _Optional[str] = ..., value: _Optional[float] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., action_id: _Optional[str] = ...) -> None: ...

class LogFeedbackRequest(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: OutcomeEvent
    def __init__(self, event: _Optional[_Union[OutcomeEvent, _Mapping]] = ...) -> None: ...

class LogFeedbackResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: FeedbackStatus
    def __init__(self, status: _Optional[_Union[FeedbackStatus, str]] = ...) -> None: ...

class LogFeedbackBatchRequest(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[OutcomeEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[OutcomeEvent, _Mapping]]] = ...) -> None: ...

class LogFeedbackBatchResponse(_message.Message):
    __slots__ = ("statuses",)
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    statuses: _containers.RepeatedScalarFieldContainer[FeedbackStatus]
    def __init__(self, statuses: _Optional[_Iterable[_Union[FeedbackStatus, str]]] = ...) -> None: ...

class GetLabelRequest(_message.Message):
    __slots__ = ("use_case", "decision_id")
    USE_CASE_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    use_case: str
    decision_id: str
    def __init__(self, use_case: _Optional[str] = ..., decision_id: _Optional[str] = ...) -> None: ...

class GetLabelResponse(_message.Message):
    __slots__ = ("state", "value", "outcome_count", "window_end_time")
    STATE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_COUNT_FIELD_NUMBER: _ClassVar[int]
    WINDOW_END_TIME_FIELD_NUMBER: _ClassVar[int]
    state: LabelState
    value: float
    outcome_count: int
    window_end_time: _timestamp_pb2.Timestamp
    def __init__(self, state: _Optional[_Union[LabelState, str]] = ..., value: _Optional[float] = ..., outcome_count: _Optional[int] = ..., window_end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetJoinStatsRequest(_message.Message):
    __slots__ = ("use_case",)
    USE_CASE_FIELD_NUMBER: _ClassVar[int]
    use_case: str
    def __init__(self, use_case: _Optional[str] = ...) -> None: ...

class GetJoinStatsResponse(_message.Message):
    __slots__ = ("joined_decisions", "pending_decisions", "attributed_outcomes", "late_outcomes", "orphan_outcomes", "early_outcomes")
    JOINED_DECISIONS_FIELD_NUMBER: _ClassVar[int]
    PENDING_DECISIONS_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTED_OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    LATE_OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    ORPHAN_OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    EARLY_OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    joined_decisions: int
    pending_decisions: int
    attributed_outcomes: int
    late_outcomes: int
    orphan_outcomes: int
    early_outcomes: int
    def __init__(self, joined_decisions: _Optional[int] = ..., pending_decisions: _Optional[int] = ..., attributed_outcomes: _Optional[int] = ..., late_outcomes: _Optional[int] = ..., orphan_outcomes: _Optional[int] = ..., early_outcomes: _Optional[int] = ...) -> None: ...
