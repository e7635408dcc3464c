"""The whole loop at small scale through real servers, real Feast and real CatBoost:
decide -> log -> feedback -> join -> train -> promote -> decide with the model."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import yaml
from looper.v1 import trainer_pb2

from examples.notifications.population import make_population, publish_profiles
from examples.notifications.simulator import NotificationSimulator, PhaseResult
from services.launcher import start_looper
from tests.conftest import EXAMPLE_BLUEPRINT, ROOT

pytestmark = pytest.mark.e2e


def small_blueprint(extra_feature: str | None = None) -> str:
    spec = yaml.safe_load(EXAMPLE_BLUEPRINT.read_text())
    spec["features"]["feast"] = [f for f in spec["features"]["feast"] if f != "user_profile:tenure_days"]
    if extra_feature:
        spec["features"]["feast"].append(extra_feature)
    spec["label"]["window"] = "1s"
    spec["policy"]["exploration_rate"] = 0.2
    spec["retraining"] = {"min_labeled_rows": 300}
    spec["model"]["params"] = {"iterations": 60, "depth": 4}
    return yaml.safe_dump(spec)


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    data = tmp_path_factory.mktemp("loop") / "data"
    data.mkdir()
    subprocess.run([sys.executable, "-m", "services.cli", "features", "apply",
                    str(ROOT / "examples/notifications/features.py"), "--data-dir", str(data)], check=True, cwd=ROOT)
    users = make_population(300, seed=3)
    publish_profiles(data / "feature_repo", data / "offline" / "user_profile", users)
    looper = start_looper(data)
    client = looper.client(timeout=10)
    client.apply_blueprint(small_blueprint())
    yield looper, client, NotificationSimulator(client, users, seed=3)
    client.close()
    looper.stop()


def live_model(client):
    return next((m for m in client.list_models("notification_send") if m.stage == trainer_pb2.MODEL_STAGE_LIVE), None)


def test_default_decisions_log_feast_features(loop):
    looper, client, simulator = loop
    result = simulator.run(PhaseResult("default"), 40, concurrency=4)
    assert result.model_decisions == 0
    logged = client.get_decision("notification_send", "notif-3-0000000")
    assert logged.decision.is_default
    assert logged.features["user_profile__sessions_7d"].WhichOneof("kind") == "int64_value"
    assert logged.features["user_profile__country"].WhichOneof("kind") == "string_value"
    assert logged.features["hour_of_day"].WhichOneof("kind") == "int64_value"


def test_feedback_updates_the_subjects_online_features(loop):
    looper, client, simulator = loop
    client.decide("notification_send", "personal-1", {"user_id": "user-00001"}, {"hour_of_day": 20, "platform": "ios"})
    client.log_feedback("notification_send", "personal-1", "opened", 1.0, event_id="personal-1-open")
    deadline = time.monotonic() + 20
    opened = 0
    while time.monotonic() < deadline and opened < 1:
        decision_id = f"personal-probe-{time.monotonic_ns()}"
        client.decide("notification_send", decision_id, {"user_id": "user-00001"}, {"hour_of_day": 20, "platform": "ios"})
        features = client.get_decision("notification_send", decision_id).features
        opened = features["user_outcomes__opened_7d"].int64_value
        time.sleep(0.3)
    assert opened >= 1
    assert features["user_outcomes__decisions_7d"].int64_value >= 1


def test_the_loop_trains_promotes_and_serves_a_model(loop):
    looper, client, simulator = loop
    simulator.run(PhaseResult("default"), 500, concurrency=6)
    model = wait_for(lambda: live_model(client), 120, "the first model to go live")
    assert {"auc", "log_loss", "normalized_entropy", "product_value"} <= set(model.metrics)
    assert model.blueprint_version == 1 and model.row_count >= 300
    runs = client.trainer.ListTrainingRuns(trainer_pb2.ListTrainingRunsRequest(use_case="notification_send")).runs
    first = [r for r in runs if r.model_version == model.version][0]
    assert first.trigger == trainer_pb2.TRAINING_TRIGGER_MIN_ROWS and first.promoted
    decision = client.decide("notification_send", "after-model-1", {"user_id": "user-00002"},
                             {"hour_of_day": 19, "platform": "android"})
    assert not decision.is_default and decision.model_version == model.version
    assert 0 < decision.score < 1


def test_a_feature_added_later_is_backfilled_point_in_time(loop):
    looper, client, simulator = loop
    blueprint, created = client.apply_blueprint(small_blueprint(extra_feature="user_profile:tenure_days"))
    assert created and blueprint.version == 2
    run = client.start_training_run("notification_send")
    run = wait_for(lambda: (r := client.get_training_run(run.run_id)).state in (
        trainer_pb2.TRAINING_RUN_STATE_SUCCEEDED, trainer_pb2.TRAINING_RUN_STATE_FAILED) and r, 120, "training")
    assert run.state == trainer_pb2.TRAINING_RUN_STATE_SUCCEEDED, run.error
    meta = json.loads((looper.data_dir / "models" / "notification_send" / run.model_version / "meta.json").read_text())
    assert "user_profile__tenure_days" in meta["feature_columns"]
    assert meta["blueprint_version"] == 2


def test_promote_and_rollback_switch_the_decision_service_without_restart(loop):
    looper, client, simulator = loop
    models = client.list_models("notification_send")
    assert len(models) >= 2
    newest, older = models[0], models[1]
    client.promote_model("notification_send", older.version)
    client.promote_model("notification_send", newest.version)
    ctx = {"hour_of_day": 12, "platform": "web"}
    assert client.decide("notification_send", "switch-1", {"user_id": "user-00003"}, ctx).model_version == newest.version
    assert client.rollback_model("notification_send").version == older.version
    assert client.decide("notification_send", "switch-2", {"user_id": "user-00003"}, ctx).model_version == older.version


def test_model_switches_fail_no_request(loop):
    """Decisions keep flowing while the live model changes back and forth."""
    import threading

    looper, client, simulator = loop
    versions = [m.version for m in client.list_models("notification_send")][:2]
    errors: list[Exception] = []
    served: set[str] = set()
    stop = threading.Event()

    def decide_continuously():
        i = 0
        while not stop.is_set():
            i += 1
            try:
                served.add(client.decide("notification_send", f"switching-{threading.get_ident()}-{i}",
                                         {"user_id": "user-00004"}, {"hour_of_day": 8, "platform": "ios"}).model_version)
            except Exception as err:  # noqa: BLE001 - collected and asserted below
                errors.append(err)

    threads = [threading.Thread(target=decide_continuously) for _ in range(3)]
    for t in threads:
        t.start()
    for version in versions * 3:
        client.promote_model("notification_send", version)
        time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join()
    assert errors == []
    assert set(versions) <= served
