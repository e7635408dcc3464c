"""Deleting from the views Looper maintains, with real Feast (SQLite online, DuckDB offline):
one subject's online row and offline rows up to its deletion go, the others' stay; a dropped
view leaves the registry, the online store and its parts."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import yaml

from services.blueprints.spec import parse_blueprint
from services.features.personalization import erase_subjects, publish, view_definitions
from services.features.store import FeastFeatureSource, LooperFeatureStore
from services.platform.data_dir import DataDir
from services.platform.parquet_parts import row_count
from tests.conftest import SIMPLE_BLUEPRINT

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture()
def setup(tmp_path):
    spec = yaml.safe_load(SIMPLE_BLUEPRINT)
    spec["personalization"] = {"view": "contract_test_clicks", "window": "7d"}
    spec["features"]["feast"] = ["contract_test_clicks:clicked_7d", "contract_test_clicks:decisions_7d"]
    blueprint = parse_blueprint(spec)
    store = LooperFeatureStore(DataDir(tmp_path).ensure().features)
    store.apply(view_definitions(blueprint, store))
    for user in ("u1", "u2"):
        publish(store, blueprint, [{"user_id": user, "event_timestamp": T0, "decisions_7d": 3, "clicked_7d": 1}])
    publish(store, blueprint, [{"user_id": "u1", "event_timestamp": T0 + timedelta(hours=2), "decisions_7d": 1,
                                "clicked_7d": 0}])
    return store, blueprint


def test_a_subjects_rows_go_and_the_others_stay(setup):
    store, blueprint = setup
    source = FeastFeatureSource(store)
    assert source.fetch(blueprint, {"user_id": "u1"})["contract_test_clicks__decisions_7d"] == 1
    online, offline = erase_subjects(store, "contract_test_clicks", [({"user_id": "u1"}, T0 + timedelta(hours=1))])
    assert (online, offline) == (1, 1)  # the row stamped after the deletion counts later activity only
    assert source.fetch(blueprint, {"user_id": "u1"}) == {"contract_test_clicks__clicked_7d": None,
                                                          "contract_test_clicks__decisions_7d": None}
    assert source.fetch(blueprint, {"user_id": "u2"})["contract_test_clicks__decisions_7d"] == 3
    assert erase_subjects(store, "contract_test_clicks", [({"user_id": "u1"}, T0 + timedelta(hours=1))]) == (0, 0)
    assert erase_subjects(store, "no_such_view", [({"user_id": "u1"}, T0)]) == (0, 0)


def test_a_dropped_view_is_gone(setup):
    store, blueprint = setup
    assert row_count(store.offline_parts("contract_test_clicks")) == 3
    assert store.drop_view("contract_test_clicks")
    assert store.view_tags("contract_test_clicks") is None and not store.parts_folder("contract_test_clicks").exists()
    assert "contract_test_clicks" not in {s.name.removesuffix("_push") for s in store.store.list_data_sources()}
    assert not store.drop_view("contract_test_clicks")
    store.apply(view_definitions(blueprint, store))  # the name can be used again, from nothing
    assert FeastFeatureSource(store).fetch(blueprint, {"user_id": "u2"})["contract_test_clicks__decisions_7d"] is None
