"""Conversions between looper.v1 protobuf messages and the domain records."""

from __future__ import annotations

from datetime import datetime, timezone

from google.protobuf import timestamp_pb2
from looper.v1 import decision_pb2, types_pb2

from services.core.records import DecisionRecord, FeatureScalar


def from_feature_value(value: types_pb2.FeatureValue) -> FeatureScalar:
    kind = value.WhichOneof("kind")
    return getattr(value, kind) if kind else None


def feature_map(values) -> dict[str, FeatureScalar]:
    return {name: from_feature_value(v) for name, v in values.items()}


def to_timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment.astimezone(timezone.utc))
    return stamp


def from_timestamp(stamp: timestamp_pb2.Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=timezone.utc)


def decision_to_proto(record: DecisionRecord) -> decision_pb2.Decision:
    return decision_pb2.Decision(
        decision_id=record.decision_id, use_case=record.use_case, action=record.action,
        score=record.score, model_version=record.model_version,
        blueprint_version=record.blueprint_version, propensity=record.propensity,
        is_default=record.is_default, is_exploration=record.is_exploration,
        decide_time=to_timestamp(record.decide_time),
        ranking=[decision_pb2.ScoredAction(action_id=r.action_id, score=r.score, propensity=r.propensity)
                 for r in record.ranking],
    )
