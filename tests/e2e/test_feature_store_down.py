"""A broken feature store through the real services: Decide answers the use case's default
decision, flagged FEATURES_UNAVAILABLE, never a model scoring on silently missing features;
the Decision service stays SERVING while `looper.dependencies` says NOT_SERVING; both recover
when the store does."""

from __future__ import annotations

import sqlite3
import time

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from looperpb.v1 import decision_pb2

from examples.notifications.population import make_population
from examples.notifications.prepare import prepare
from services.launcher import start_looper
from services.platform.data_dir import DataDir
from tests.conftest import EXAMPLE_BLUEPRINT

pytestmark = pytest.mark.e2e


def health(address: str, service: str) -> int:
    with grpc.insecure_channel(address) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                         timeout=5).status


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_a_broken_feature_store_gives_flagged_defaults_and_shows_on_dependency_health(tmp_path):
    data = tmp_path / "data"
    users = make_population(20, seed=1)
    prepare(data, users)
    looper = start_looper(data)
    spec = yaml.safe_load(EXAMPLE_BLUEPRINT.read_text())
    spec["retraining"] = {"min_labeled_rows": 1000000}
    address = looper.addresses["decision"]
    try:
        with looper.client() as client:
            client.apply_blueprint(yaml.safe_dump(spec))
            context = {"hour_of_day": 9, "platform": "ios"}
            fine = client.decide("notification_send", "before", {"user_id": users[0].user_id}, context)
            assert fine.default_reason == decision_pb2.DEFAULT_REASON_NO_MODEL
            with sqlite3.connect(DataDir(data).features.repo / "online_store.db") as db:
                db.execute("DROP TABLE looper_user_profile")  # the store loses a view's table
            broken = client.decide("notification_send", "during", {"user_id": users[1].user_id}, context)
            assert broken.is_default and broken.default_reason == decision_pb2.DEFAULT_REASON_FEATURES_UNAVAILABLE
            wait_for(lambda: health(address, "looper.dependencies") == health_pb2.HealthCheckResponse.NOT_SERVING,
                     10, "looper.dependencies to say NOT_SERVING")
            assert health(address, "looper.v1.DecisionService") == health_pb2.HealthCheckResponse.SERVING
            prepare(data, users)  # the product re-applies its views and republishes its profiles
            wait_for(lambda: client.decide("notification_send", f"after-{time.monotonic_ns()}",
                                           {"user_id": users[2].user_id}, context).default_reason
                     == decision_pb2.DEFAULT_REASON_NO_MODEL, 30, "decisions with features again")
            wait_for(lambda: health(address, "looper.dependencies") == health_pb2.HealthCheckResponse.SERVING,
                     10, "looper.dependencies to say SERVING again")
    finally:
        looper.stop()
