"""Python values <-> ``looper.v1.FeatureValue``: the one mapping the client and the services
share, so a value means the same on both sides of the wire."""

from __future__ import annotations

from looperpb.v1 import types_pb2

Scalar = float | int | str | bool | None


def feature_value(value: Scalar) -> types_pb2.FeatureValue:
    """A Python value as a typed FeatureValue (bool, int, float, str; None is missing)."""
    if value is None:
        return types_pb2.FeatureValue()
    if isinstance(value, bool):
        return types_pb2.FeatureValue(bool_value=value)
    if isinstance(value, int):
        return types_pb2.FeatureValue(int64_value=value)
    if isinstance(value, float):
        return types_pb2.FeatureValue(double_value=value)
    if isinstance(value, str):
        return types_pb2.FeatureValue(string_value=value)
    raise TypeError(f"feature values must be bool, int, float, str or None, not {type(value).__name__}")


def scalar(value: types_pb2.FeatureValue) -> Scalar:
    """A FeatureValue as a Python value; an unset value is None."""
    kind = value.WhichOneof("kind")
    return getattr(value, kind) if kind else None
