import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from looperpb.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DefaultReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEFAULT_REASON_UNSPECIFIED: _ClassVar[DefaultReason]
    DEFAULT_REASON_NO_MODEL: _ClassVar[DefaultReason]
    DEFAULT_REASON_MODEL_UNAVAILABLE: _ClassVar[DefaultReason]
    DEFAULT_REASON_PAUSED: _ClassVar[DefaultReason]
    DEFAULT_REASON_FEATURES_UNAVAILABLE: _ClassVar[DefaultReason]
    DEFAULT_REASON_EXPERIMENT_ARM: _ClassVar[DefaultReason]
DEFAULT_REASON_UNSPECIFIED: DefaultReason
DEFAULT_REASON_NO_MODEL: DefaultReason
DEFAULT_REASON_MODEL_UNAVAILABLE: DefaultReason
DEFAULT_REASON_PAUSED: DefaultReason
DEFAULT_REASON_FEATURES_UNAVAILABLE: DefaultReason
DEFAULT_REASON_EXPERIMENT_ARM: DefaultReason

class Candidate(_message.Message):
    __slots__ = ("action_id", "features")
    class FeaturesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _types_pb2.FeatureValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_types_pb2.FeatureValue, _Mapping]] = ...) -> None: ...
    ACTION_ID_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    action_id: str
    features: _containers.MessageMap[str, _types_pb2.FeatureValue]
    def __init__(self, action_id: _Optional[str] = ..., features: _Optional[_Mapping[str, _types_pb2.FeatureValue]] = ...) -> None: ...

class DecideRequest(_message.Message):
    __slots__ = ("use_case", "decision_id", "subject", "context", "candidates")
    class SubjectEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class ContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _types_pb2.FeatureValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_types_pb2.FeatureValue, _Mapping]] = ...) -> None: ...
    USE_CASE_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    use_case: str
    decision_id: str
    subject: _containers.ScalarMap[str, str]
    context: _containers.MessageMap[str, _types_pb2.FeatureValue]
    candidates: _containers.RepeatedCompositeFieldContainer[Candidate]
    def __init__(self, use_case: _Optional[str] = ..., decision_id: _Optional[str] = ..., subject: _Optional[_Mapping[str, str]] = ..., context: _Optional[_Mapping[str, _types_pb2.FeatureValue]] = ..., candidates: _Optional[_Iterable[_Union[Candidate, _Mapping]]] = ...) -> None: ...

class ScoredAction(_message.Message):
    __slots__ = ("action_id", "score", "propensity")
    ACTION_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    PROPENSITY_FIELD_NUMBER: _ClassVar[int]
    action_id: str
    score: float
    propensity: float
    def __init__(self, action_id: _Optional[str] = ..., score: _Optional[float] = ..., propensity: _Optional[float] = ...) -> None: ...

class Decision(_message.Message):
    __slots__ = ("decision_id", "use_case", "action", "score", "ranking", "model_version", "blueprint_version", "propensity", "is_default", "is_exploration", "decide_time", "default_reason", "value", "arm")
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    USE_CASE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    RANKING_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    BLUEPRINT_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROPENSITY_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    IS_EXPLORATION_FIELD_NUMBER: _ClassVar[int]
    DECIDE_TIME_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_REASON_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    ARM_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    use_case: str
    action: str
    score: float
    ranking: _containers.RepeatedCompositeFieldContainer[ScoredAction]
    model_version: str
    blueprint_version: int
    propensity: float
    is_default: bool
    is_exploration: bool
    decide_time: _timestamp_pb2.Timestamp
    default_reason: DefaultReason
    value: float
    arm: str
    def __init__(self, decision_id: _Optional[str] = ..., use_case: _Optional[str] = ..., action: _Optional[str] = ..., score: _Optional[float] = ..., ranking: _Optional[_Iterable[_Union[ScoredAction, _Mapping]]] = ..., model_version: _Optional[str] = ..., blueprint_version: _Optional[int] = ..., propensity: _Optional[float] = ..., is_default: _Optional[bool] = ..., is_exploration: _Optional[bool] = ..., decide_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., default_reason: _Optional[_Union[DefaultReason, str]] = ..., value: _Optional[float] = ..., arm: _Optional[str] = ...) -> None: ...

class DecideResponse(_message.Message):
    __slots__ = ("decision", "replayed")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    replayed: bool
    def __init__(self, decision: _Optional[_Union[Decision, _Mapping]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class DecideBatchRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[DecideRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[DecideRequest, _Mapping]]] = ...) -> None: ...

class DecideBatchResult(_message.Message):
    __slots__ = ("response", "error")
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    response: DecideResponse
    error: BatchItemError
    def __init__(self, response: _Optional[_Union[DecideResponse, _Mapping]] = ..., error: _Optional[_Union[BatchItemError, _Mapping]] = ...) -> None: ...

class BatchItemError(_message.Message):
    __slots__ = ("code", "message", "field")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    field: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ..., field: _Optional[str] = ...) -> None: ...

class DecideBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[DecideBatchResult]
    def __init__(self, results: _Optional[_Iterable[_Union[DecideBatchResult, _Mapping]]] = ...) -> None: ...

class GetDecisionRequest(_message.Message):
    __slots__ = ("use_case", "decision_id")
    USE_CASE_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    use_case: str
    decision_id: str
    def __init__(self, use_case: _Optional[str] = ..., decision_id: _Optional[str] = ...) -> None: ...

class GetDecisionResponse(_message.Message):
    __slots__ = ("decision", "features", "subject", "traceparent")
    class FeaturesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _types_pb2.FeatureValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_types_pb2.FeatureValue, _Mapping]] = ...) -> None: ...
    class SubjectEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DECISION_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    features: _containers.MessageMap[str, _types_pb2.FeatureValue]
    subject: _containers.ScalarMap[str, str]
    traceparent: str
    def __init__(self, decision: _Optional[_Union[Decision, _Mapping]] = ..., features: _Optional[_Mapping[str, _types_pb2.FeatureValue]] = ..., subject: _Optional[_Mapping[str, str]] = ..., traceparent: _Optional[str] = ...) -> None: ...
