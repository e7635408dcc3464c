"""The whole loop at small scale through real servers, real Feast and real CatBoost:
decide -> log -> feedback -> join -> train -> promote -> decide with the model."""

from __future__ import annotations

import time

import pytest
import yaml
from looperpb.v1 import trainer_pb2

from examples.notifications.population import make_population
from examples.notifications.prepare import prepare
from examples.notifications.simulator import NotificationSimulator, PhaseResult
from services.launcher import start_looper
from tests.conftest import EXAMPLE_BLUEPRINT

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
    users = make_population(300, seed=3)
    prepare(data, users)
    looper = start_looper(data)
    client = looper.client(timeout=10)
    client.apply_blueprint(small_blueprint())
    yield looper, client, NotificationSimulator(client, users, seed=3), users
    client.close()
    looper.stop()


@pytest.fixture(scope="module")
def trained(loop):
    """The loop run until a model is live (the first one, trained by itself at the minimum
    rows on blueprint v1), then blueprint v2 adds a Feast feature and a training run is
    forced: two models and the v2 run, whatever order the tests below run in."""
    looper, client, simulator, _ = loop
    simulator.run(PhaseResult("default"), 500, concurrency=6)
    first = wait_for(lambda: live_model(client), 120, "the first model to go live")
    blueprint, created = client.apply_blueprint(small_blueprint(extra_feature="user_profile:tenure_days"))
    assert created and blueprint.version == 2
    run = client.start_training_run("notification_send")
    run = wait_for(lambda: (r := client.get_training_run(run.run_id)).state in (
        trainer_pb2.TRAINING_RUN_STATE_SUCCEEDED, trainer_pb2.TRAINING_RUN_STATE_FAILED) and r, 120, "training")
    assert run.state == trainer_pb2.TRAINING_RUN_STATE_SUCCEEDED, run.error
    return first, run


def live_model(client):
    return next((m for m in client.list_models("notification_send") if m.stage == trainer_pb2.MODEL_STAGE_LIVE), None)


def test_decisions_log_the_feast_features_they_used(loop):
    looper, client, simulator, users = loop
    user = users[17]
    client.decide("notification_send", "logged-features-1", {"user_id": user.user_id},
                  {"hour_of_day": 21, "platform": user.platform})
    logged = client.get_decision("notification_send", "logged-features-1").features
    assert logged["user_profile__sessions_7d"].int64_value == user.sessions_7d
    assert logged["user_profile__avg_session_minutes"].double_value == user.avg_session_minutes
    assert logged["user_profile__country"].string_value == user.country
    assert logged["hour_of_day"].int64_value == 21 and logged["platform"].string_value == user.platform


def test_feedback_updates_the_subjects_online_features(loop):
    looper, client, simulator, _ = loop
    subject = {"user_id": "personalized-subject"}  # no other test decides for this subject
    context = {"hour_of_day": 20, "platform": "ios"}
    client.decide("notification_send", "personal-1", subject, context)
    before = client.get_decision("notification_send", "personal-1").features
    assert before["notification_send_outcomes__opened_7d"].WhichOneof("kind") is None  # nothing known yet
    client.log_feedback("notification_send", "personal-1", "opened", 1.0, event_id="personal-1-open")
    probes = 0

    def counters():
        nonlocal probes
        probes += 1
        decision_id = f"personal-probe-{probes}"
        client.decide("notification_send", decision_id, subject, context)
        features = client.get_decision("notification_send", decision_id).features
        return features if features["notification_send_outcomes__opened_7d"].int64_value == 1 else None

    features = wait_for(counters, 20, "the open to reach the subject's online features")
    # decisions counted so far: personal-1 and the probes before this one (pushed as the joiner sees them)
    assert 1 <= features["notification_send_outcomes__decisions_7d"].int64_value <= probes


def test_the_loop_trains_promotes_and_serves_a_model(loop, trained):
    looper, client, simulator, _ = loop
    first, _ = trained
    assert {"auc", "log_loss", "normalized_entropy", "product_value"} <= set(first.metrics)
    assert first.blueprint_version == 1 and first.row_count >= 300
    runs = client.trainer.ListTrainingRuns(trainer_pb2.ListTrainingRunsRequest(use_case="notification_send")).runs
    (first_run,) = [r for r in runs if r.model_version == first.version]
    assert first_run.trigger == trainer_pb2.TRAINING_TRIGGER_MIN_ROWS and first_run.promoted
    live = live_model(client)
    decision = client.decide("notification_send", "after-model-1", {"user_id": "user-00002"},
                             {"hour_of_day": 19, "platform": "android"})
    assert not decision.is_default and decision.model_version == live.version
    assert 0 < decision.score < 1


def test_a_feature_added_later_becomes_a_model_input(loop, trained):
    """The values come from a point-in-time join (see the integration test of backfilling);
    here: the model trained on blueprint v2 takes the new feature as an input."""
    looper, client, simulator, _ = loop
    _, run = trained
    from services.models.registry import ModelRegistry
    from services.platform.data_dir import DataDir

    meta = ModelRegistry(DataDir(looper.data_dir).models).get("notification_send", run.model_version)
    assert "user_profile__tenure_days" in meta.feature_columns
    assert meta.blueprint_version == 2


def test_promote_and_rollback_switch_the_decision_service_without_restart(loop, trained):
    looper, client, simulator, _ = loop
    first, run = trained
    ctx = {"hour_of_day": 12, "platform": "web"}
    client.promote_model("notification_send", first.version)
    client.promote_model("notification_send", run.model_version)
    assert client.decide("notification_send", "switch-1", {"user_id": "user-00003"}, ctx).model_version == \
        run.model_version
    assert client.rollback_model("notification_send").version == first.version
    assert client.decide("notification_send", "switch-2", {"user_id": "user-00003"}, ctx).model_version == first.version


def test_model_switches_fail_no_request(loop, trained):
    """Decisions keep flowing while the live model changes back and forth."""
    import threading

    looper, client, simulator, _ = loop
    first, run = trained
    versions = [first.version, run.model_version]
    errors: list[Exception] = []
    served: set[str] = set()
    calls = 0
    stop = threading.Event()

    def decide_continuously():
        nonlocal calls
        i = 0
        while not stop.is_set():
            i += 1
            try:
                served.add(client.decide("notification_send", f"switching-{threading.get_ident()}-{i}",
                                         {"user_id": "user-00004"}, {"hour_of_day": 8, "platform": "ios"}).model_version)
                calls += 1
            except Exception as err:  # noqa: BLE001 - collected and asserted below
                errors.append(err)

    threads = [threading.Thread(target=decide_continuously) for _ in range(3)]
    for t in threads:
        t.start()
    for version in versions * 3:
        client.promote_model("notification_send", version)
        wait_for(lambda: version in served and served.discard(version) is None, 20, f"{version} to serve")
    stop.set()
    for t in threads:
        t.join()
    assert errors == [] and calls > 0
