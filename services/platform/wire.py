"""Conversions between looper.v1 messages and plain Python values shared by the three
servers: timestamps and feature maps."""

from __future__ import annotations

from datetime import datetime, timezone

from google.protobuf import timestamp_pb2
from looperpb.values import Scalar


def feature_map(values) -> dict[str, Scalar]:
    """A ``map<string, FeatureValue>`` as a dict of Python values (what ``scalar`` gives).

    Written out for the ranking path, which converts 100 candidates' maps a call: a upb
    map's ``items()`` is the generic Mapping view, a Python generator, and with the call per
    value the conversion took 226 us for 100 candidates of 3 features; this loop, 160."""
    converted = {}
    for name in values:
        value = values[name]
        kind = value.WhichOneof("kind")
        converted[name] = getattr(value, kind) if kind else None
    return converted


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def to_timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    """A datetime (naive: local time) as a Timestamp, exact to the microsecond. Computed
    from the difference to the epoch (C code): ``Timestamp.FromDatetime`` costs several
    times more, and every Decide answers with one."""
    if moment.tzinfo is None:
        moment = moment.astimezone(timezone.utc)
    since = moment - _EPOCH
    return timestamp_pb2.Timestamp(seconds=since.days * 86400 + since.seconds, nanos=since.microseconds * 1000)


def from_timestamp(stamp: timestamp_pb2.Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=timezone.utc)


def iso_timestamp(iso_time: str) -> timestamp_pb2.Timestamp | None:
    """An ISO-8601 time as a Timestamp; None for an empty one."""
    return to_timestamp(datetime.fromisoformat(iso_time)) if iso_time else None
