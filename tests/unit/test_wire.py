from datetime import datetime, timedelta, timezone

import pytest
from google.protobuf import timestamp_pb2
from looperpb.v1 import decision_pb2, types_pb2
from looperpb.values import feature_value, scalar

from services.platform.wire import feature_map, from_timestamp, to_timestamp


@pytest.mark.parametrize("moment", [
    datetime(2026, 11, 25, 23, 5, 1, 123456, tzinfo=timezone.utc),
    datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=timezone.utc),  # before the epoch: nanos stay positive
    datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    datetime(2026, 3, 3, 1, 2, 3, 999999),  # naive: local time, as datetime.astimezone reads it
])
def test_a_datetime_becomes_the_timestamp_protobuf_computes_and_comes_back_equal(moment):
    expected = timestamp_pb2.Timestamp()
    expected.FromDatetime(moment.astimezone(timezone.utc))
    stamp = to_timestamp(moment)
    assert (stamp.seconds, stamp.nanos) == (expected.seconds, expected.nanos)
    assert from_timestamp(stamp) == moment.astimezone(timezone.utc)


def test_a_feature_map_becomes_python_values_of_each_kind_and_none_when_unset():
    request = decision_pb2.DecideRequest()
    for name, value in {"flag": True, "count": -3, "ratio": 0.25, "tier": "gold", "zero": 0}.items():
        request.context[name].CopyFrom(feature_value(value))
    request.context["unset"].CopyFrom(types_pb2.FeatureValue())
    converted = feature_map(request.context)
    assert converted == {"flag": True, "count": -3, "ratio": 0.25, "tier": "gold", "zero": 0, "unset": None}
    assert [type(converted[k]) for k in ("flag", "count", "ratio", "tier")] == [bool, int, float, str]
    assert converted == {name: scalar(value) for name, value in request.context.items()}
