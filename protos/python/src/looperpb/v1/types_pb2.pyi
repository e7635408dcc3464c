from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class DecisionType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECISION_TYPE_UNSPECIFIED: _ClassVar[DecisionType]
    DECISION_TYPE_BINARY: _ClassVar[DecisionType]
    DECISION_TYPE_MULTI_ACTION: _ClassVar[DecisionType]
    DECISION_TYPE_RANKING: _ClassVar[DecisionType]
    DECISION_TYPE_REGRESSION: _ClassVar[DecisionType]
    DECISION_TYPE_NUMERIC: _ClassVar[DecisionType]
DECISION_TYPE_UNSPECIFIED: DecisionType
DECISION_TYPE_BINARY: DecisionType
DECISION_TYPE_MULTI_ACTION: DecisionType
DECISION_TYPE_RANKING: DecisionType
DECISION_TYPE_REGRESSION: DecisionType
DECISION_TYPE_NUMERIC: DecisionType

class FeatureValue(_message.Message):
    __slots__ = ("double_value", "int64_value", "string_value", "bool_value")
    DOUBLE_VALUE_FIELD_NUMBER: _ClassVar[int]
    INT64_VALUE_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    double_value: float
    int64_value: int
    string_value: str
    bool_value: bool
    def __init__(self, double_value: _Optional[float] = ..., int64_value: _Optional[int] = ..., string_value: _Optional[str] = ..., bool_value: _Optional[bool] = ...) -> None: ...
