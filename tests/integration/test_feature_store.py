"""Looper's Feast repo with real Feast (SQLite online, DuckDB offline): personalization
views, online reads after pushes, and point-in-time retrieval that keeps every row."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
import yaml

from services.blueprints.spec import parse_blueprint
from services.features.personalization import publish as publish_subject_counts
from services.features.personalization import view_definitions
from services.features.store import FeastFeatureSource, LooperFeatureStore
from services.platform.data_dir import DataDir
from tests.conftest import SIMPLE_BLUEPRINT

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("feast")
    spec = yaml.safe_load(SIMPLE_BLUEPRINT)
    spec["personalization"] = {"view": "contract_test_clicks", "window": "7d"}
    spec["features"]["feast"] = ["contract_test_clicks:clicked_7d", "contract_test_clicks:decisions_7d"]
    blueprint = parse_blueprint(spec)
    store = LooperFeatureStore(DataDir(root).ensure().features)
    store.apply(view_definitions(blueprint, store))
    return store, blueprint



def counts(user: str, at: datetime, decisions: int, clicks: int) -> dict:
    return {"user_id": user, "event_timestamp": at, "decisions_7d": decisions, "clicked_7d": clicks}


def test_the_repo_is_a_feast_repo_on_disk(setup):
    store, _ = setup
    config = yaml.safe_load((store.repo / "feature_store.yaml").read_text())
    assert config["online_store"]["type"] == "sqlite" and config["offline_store"]["type"] == "duckdb"
    assert {v.name for v in store.store.list_feature_views()} == {"contract_test_clicks"}


def test_pushed_counts_are_read_online_and_unknown_subjects_are_missing(setup):
    store, blueprint = setup
    publish_subject_counts(store, blueprint, [counts("u1", T0, 3, 1)])
    source = FeastFeatureSource(store)
    assert source.fetch(blueprint, {"user_id": "u1"}) == {"contract_test_clicks__clicked_7d": 1,
                                                          "contract_test_clicks__decisions_7d": 3}
    assert source.fetch(blueprint, {"user_id": "nobody"}) == {"contract_test_clicks__clicked_7d": None,
                                                              "contract_test_clicks__decisions_7d": None}


def test_subjects_read_together_each_get_their_own_features(setup):
    store, blueprint = setup
    publish_subject_counts(store, blueprint, [counts("r1", T0, 5, 2), counts("r2", T0, 8, 0)])
    found = FeastFeatureSource(store).fetch_many([(blueprint, {"user_id": u}) for u in ("r2", "nobody", "r1")])
    assert [(f["contract_test_clicks__decisions_7d"], f["contract_test_clicks__clicked_7d"]) for f in found] == [
        (8, 0), (None, None), (5, 2)]


def test_historical_retrieval_is_point_in_time_and_keeps_every_row(setup):
    store, blueprint = setup
    publish_subject_counts(store, blueprint, [counts("u2", T0 + timedelta(hours=1), 1, 0)])
    publish_subject_counts(store, blueprint, [counts("u2", T0 + timedelta(hours=3), 5, 2)])
    publish_subject_counts(store, blueprint, [counts("u4", T0, 3, 1)])
    entities = pd.DataFrame({
        "user_id": ["u2", "u2", "u2", "never-seen", "u4"],
        "event_timestamp": [T0, T0 + timedelta(hours=2), T0 + timedelta(hours=4), T0, T0 + timedelta(days=1)],
    })
    joined = store.historical_features(entities, ["contract_test_clicks:decisions_7d"])
    assert len(joined) == len(entities)  # the file store would drop rows without values
    assert list(joined["user_id"]) == list(entities["user_id"])  # and in the caller's order
    values = joined["contract_test_clicks__decisions_7d"].tolist()
    assert pd.isna(values[0]) and values[1] == 1 and values[2] == 5 and pd.isna(values[3]) and values[4] == 3


def test_unknown_references_are_reported_with_their_index(setup):
    store, _ = setup
    problems = store.missing_references(("contract_test_clicks:clicked_7d", "contract_test_clicks:nope", "other_view:x"))
    assert set(problems) == {1, 2}
    assert "no feature 'nope'" in problems[1] and "no feature view 'other_view'" in problems[2]


def test_a_feature_added_later_is_backfilled_at_each_decisions_time(setup):
    from services.trainer.training_set import backfill_features

    store, blueprint = setup
    publish_subject_counts(store, blueprint, [counts("u3", T0 + timedelta(days=2), 2, 1)])
    publish_subject_counts(store, blueprint, [counts("u3", T0 + timedelta(days=4), 9, 4)])
    later = blueprint.model_copy(update={"features": blueprint.features.model_copy(
        update={"feast": ["contract_test_clicks:clicked_7d"]})})
    logged = pd.DataFrame({  # decisions logged before the feature was in the blueprint
        "decision_id": ["before", "between", "after"], "user_id": ["u3"] * 3,
        "event_timestamp": [T0 + timedelta(days=1), T0 + timedelta(days=3), T0 + timedelta(days=5)],
        "label": [0.0, 1.0, 0.0]})
    table = backfill_features(store, later, logged.copy())
    assert table["decision_id"].tolist() == ["before", "between", "after"]
    values = table["contract_test_clicks__clicked_7d"].tolist()
    assert pd.isna(values[0]) and values[1:] == [1, 4]  # the value as of each decision, never a later one
    assert backfill_features(store, later, table) is table  # nothing missing: unchanged


def test_a_blueprint_cannot_take_over_a_view_looper_does_not_keep_for_it(tmp_path):
    from feast import Entity, FeatureView, Field, FileSource
    from feast.types import Int64

    from services.blueprints.store import BlueprintStore
    from services.platform.errors import InvalidArgument
    from services.trainer.blueprint_applier import BlueprintApplier

    store = LooperFeatureStore(DataDir(tmp_path).ensure().features)  # a repo of its own
    pd.DataFrame({"user_id": ["u"], "n": [1], "event_timestamp": [T0]}).to_parquet(tmp_path / "p.parquet")
    user = Entity(name="user", join_keys=["user_id"])
    source = FileSource(name="products_source", path=str(tmp_path / "p.parquet"), timestamp_field="event_timestamp")
    store.apply([user, FeatureView(name="contract_test_products", entities=[user], source=source,
                                   schema=[Field(name="n", dtype=Int64)])])  # the product's own view
    spec = yaml.safe_load(SIMPLE_BLUEPRINT)
    spec["personalization"] = {"view": "contract_test_products"}
    with pytest.raises(InvalidArgument) as raised:
        BlueprintApplier(BlueprintStore(tmp_path / "blueprints"), store).apply(yaml.safe_dump(spec))
    assert raised.value.violations[0].field == "personalization.view"
    assert store.view_tags("contract_test_products") == {}  # untouched
