"""Stored feature values as a decision records them: the plain kinds read directly, the rest
through Feast's own conversion, with the same result either way."""

from __future__ import annotations

import pytest
from feast.protos.feast.types.Value_pb2 import FloatList, Value
from feast.type_map import feast_value_type_to_python_type

from services.features.store import _python_value, _scalar


@pytest.mark.parametrize("value, expected", [
    (Value(int64_val=7), 7),
    (Value(int32_val=-3), -3),
    (Value(double_val=2.5), 2.5),
    (Value(float_val=0.5), 0.5),
    (Value(string_val="de"), "de"),
    (Value(bool_val=True), True),
    (Value(), None),
])
def test_plain_kinds_are_read_as_feast_reads_them(value, expected):
    assert _python_value(value) == expected
    assert type(_python_value(value)) is type(_scalar(feast_value_type_to_python_type(value)))


@pytest.mark.parametrize("value", [Value(unix_timestamp_val=1_700_000_000), Value(float_list_val=FloatList(val=[1.0]))])
def test_other_kinds_go_through_feasts_conversion(value):
    assert _python_value(value) == _scalar(feast_value_type_to_python_type(value))
