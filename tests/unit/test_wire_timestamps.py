from datetime import datetime, timedelta, timezone

import pytest
from google.protobuf import timestamp_pb2

from services.platform.wire import from_timestamp, to_timestamp


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
