"""Personalization: feedback updates per-subject features in the online store, so the next
decision for a subject already knows what just happened.

A blueprint's ``personalization`` section names a Feast view that Looper maintains: for each
subject, the decisions made and the label's outcomes seen over a recent window. This module
is all of it: the view's Feast definitions (created when the blueprint is applied), and the
counters, recomputed for the subjects the label joiner reports active and pushed online
(the next decision reads them) and appended offline (point-in-time retrieval reads them).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Callable, Protocol

import pandas as pd
import pyarrow as pa

from services.blueprints.spec import Blueprint
from services.blueprints.store import BlueprintStore
from services.features.store import LooperFeatureStore
from services.platform.parquet_parts import any_of, drop_rows, subject_rows

log = logging.getLogger("looper.personalization")


class SubjectActivity(Protocol):
    def subject_activity(self, use_case: str, subject_keys: list[str], outcome: str,
                         since: datetime) -> dict[str, tuple[int, int]]:
        """Per subject: (decisions made, outcomes seen) since ``since``."""


def view_definitions(blueprint: Blueprint, store: LooperFeatureStore) -> list:
    """The Feast objects of the view Looper maintains for a blueprint's personalization."""
    from feast import Entity, FeatureView, Field, FileSource, PushSource, ValueType
    from feast.data_format import ParquetFormat
    from feast.types import Int64

    spec = blueprint.personalization
    entity_name = blueprint.entities[0]
    entity = next((e for e in store.store.list_entities() if e.join_key == entity_name), None)
    entity = entity or Entity(name=entity_name, join_keys=[entity_name], value_type=ValueType.STRING)
    source = FileSource(name=f"{spec.view}_source", path=str(store.parts_folder(spec.view) / "*.parquet"),
                        file_format=ParquetFormat(), timestamp_field="event_timestamp")
    push = PushSource(name=f"{spec.view}_push", batch_source=source)
    names = blueprint.personalization_features()
    view = FeatureView(name=spec.view, entities=[entity], ttl=timedelta(0), source=push, online=True,
                       schema=[Field(name=name, dtype=Int64) for name in names],
                       tags={"owner": "looper", "use_case": blueprint.name})
    if not any(store.parts_folder(spec.view).glob("part-*.parquet")):
        # DuckDB cannot read an empty glob: start the source with a typed, empty part.
        schema = pa.schema([(entity_name, pa.string()), ("event_timestamp", pa.timestamp("us", tz="UTC")),
                            *[(name, pa.int64()) for name in names]])
        store.append_offline(spec.view, schema.empty_table())
    return [entity, source, push, view]


def own_references(blueprint: Blueprint) -> set[str]:
    """The ``view:feature`` references of the blueprint's own personalization view (they
    exist once the blueprint is applied, not before)."""
    spec = blueprint.personalization
    return {f"{spec.view}:{name}" for name in blueprint.personalization_features()} if spec else set()


def counter_rows(blueprint: Blueprint, activity: dict[str, tuple[int, int]], now: datetime) -> list[dict]:
    """The view's rows for the given subjects' activity, stamped ``now``."""
    decisions_name, outcomes_name = blueprint.personalization_features()
    return [{blueprint.entities[0]: key, "event_timestamp": now, decisions_name: decisions, outcomes_name: outcomes}
            for key, (decisions, outcomes) in sorted(activity.items())]


class SubjectCounters:
    """Refreshes the counters of active subjects (called by the label joiner after a pass)."""

    def __init__(self, blueprints: BlueprintStore, store: LooperFeatureStore, activity: SubjectActivity,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self.blueprints, self.store, self.activity, self.clock = blueprints, store, activity, clock

    def refresh(self, use_case: str, subject_keys: list[str]) -> None:
        blueprint = self.blueprints.latest(use_case)
        spec = blueprint.personalization
        if spec is None or not subject_keys:
            return
        now = self.clock()
        counts = self.activity.subject_activity(use_case, subject_keys, blueprint.primary_label.outcome,
                                                now - spec.window)
        try:
            publish(self.store, blueprint, counter_rows(blueprint, counts, now))
        except Exception:  # noqa: BLE001 - recomputed on the subject's next activity
            log.exception("publishing the personalization counters of %s failed", use_case)


def publish(store: LooperFeatureStore, blueprint: Blueprint, rows: list[dict]) -> None:
    """Counter rows online (the next decision sees them) and offline (historical retrieval
    sees them)."""
    if not rows:
        return
    frame = pd.DataFrame(rows)
    view = blueprint.personalization.view
    store.push_online(f"{view}_push", frame)
    store.append_offline(view, frame)


# --- deletion (services.deletions) -----------------------------------------------------------
def erase_subjects(store: LooperFeatureStore, view: str, subjects: list[tuple[dict[str, str], datetime]]
                   ) -> tuple[int, int]:
    """Deletes subjects from a personalization view: their online row, and their offline rows
    stamped at or before each one's given time (later rows count only later activity).
    Returns (online rows, offline rows) deleted. The caller holds the label joiner's lock, so
    no pass publishes counters meanwhile."""
    online = store.delete_online(view, [subject for subject, _ in subjects])
    offline = drop_rows(store.offline_parts(view), any_of([subject_rows(s, until) for s, until in subjects]))
    return online, offline
