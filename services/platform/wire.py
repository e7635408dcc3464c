"""Conversions between looper.v1 messages and plain Python values shared by the three
servers: timestamps and feature maps."""

from __future__ import annotations

from datetime import datetime, timezone

from google.protobuf import timestamp_pb2
from looperpb.values import Scalar, scalar


def feature_map(values) -> dict[str, Scalar]:
    """A ``map<string, FeatureValue>`` as a dict of Python values."""
    return {name: scalar(v) for name, v in values.items()}


def to_timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment.astimezone(timezone.utc))
    return stamp


def from_timestamp(stamp: timestamp_pb2.Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=timezone.utc)


def iso_timestamp(iso_time: str) -> timestamp_pb2.Timestamp | None:
    """An ISO-8601 time as a Timestamp; None for an empty one."""
    return to_timestamp(datetime.fromisoformat(iso_time)) if iso_time else None
