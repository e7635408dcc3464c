"""The product's own Feast definitions for the notification example: a user entity and
the user's profile, which the product's data pipeline writes (see ``population.py``).
Applied with ``looper features apply examples/notifications/features.py``."""

import os
from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureView, Field, FileSource, PushSource, ValueType
from feast.data_format import ParquetFormat
from feast.types import Float64, Int64, String

# The profile table is parquet part files among the product's tables in the data directory
# (`looper features apply --data-dir DIR` says where, in LOOPER_PRODUCT_TABLES).
PROFILE_FOLDER = Path(os.environ.get("LOOPER_PRODUCT_TABLES", "data/looper/offline")).resolve() / "user_profile"
PROFILE_PARTS = PROFILE_FOLDER / "*.parquet"

user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.STRING,
              description="A user of the product; user_id is the subject key of decisions.")

user_profile_source = FileSource(name="user_profile_source", path=str(PROFILE_PARTS),
                                 file_format=ParquetFormat(), timestamp_field="event_timestamp")

user_profile_push = PushSource(name="user_profile_push", batch_source=user_profile_source)

user_profile = FeatureView(
    name="user_profile",
    entities=[user],
    ttl=timedelta(0),
    source=user_profile_push,
    online=True,
    schema=[
        Field(name="tenure_days", dtype=Int64),
        Field(name="sessions_7d", dtype=Int64),
        Field(name="notif_opens_30d", dtype=Int64),
        Field(name="avg_session_minutes", dtype=Float64),
        Field(name="country", dtype=String),
    ],
)
