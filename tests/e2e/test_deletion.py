"""Deleting through the real services: decisions and feedback for several subjects of two use
cases, then one subject deleted (hidden at once, then gone from every place Looper keeps it:
the decision and outcome logs' segments, the label joiner, the training table, the id index,
the personalization view online and offline) while the other subjects and the other use case
keep serving; then a whole use case deleted the same way, and created again under its name.
Segments close after a second (LOOPER_SEGMENT_SECONDS=1), so nothing waits long."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import grpc
import pytest
import yaml
from looper import LooperError
from looperpb.v1 import trainer_pb2

from services.blueprints.spec import parse_blueprint
from services.features.store import LooperFeatureStore
from services.labels.training_table import TrainingTable
from services.launcher import start_looper
from services.platform.data_dir import DataDir
from services.platform.durable_log import iter_records

pytestmark = pytest.mark.e2e

BLUEPRINT = """
name: {name}
decision_type: binary
entities: [user_id]
default_decision: true
features:
  context:
    hour_of_day: int64
label: {{outcome: clicked, aggregation: max, window: 1s, missing_value: 0}}
retraining: {{min_labeled_rows: 100000}}
personalization: {{view: {name}_clicks, window: 1d}}
"""
USERS = [f"u{i}" for i in range(1, 6)]
ENV = {"LOOPER_SEGMENT_SECONDS": "1", "LOOPER_DELETION_INTERVAL": "0.5", "LOOPER_JOIN_GRACE": "0.5"}


def wait_for(condition, timeout: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def decide_and_report(client, use_case: str, rounds: int, tag: str) -> dict[str, list[str]]:
    """``rounds`` decisions per user, each with a click; returns decision ids by user."""
    made: dict[str, list[str]] = {user: [] for user in USERS}
    for n in range(rounds):
        for user in USERS:
            decision_id = f"{use_case}-{tag}-{user}-{n}"
            client.decide(use_case, decision_id, {"user_id": user}, {"hour_of_day": 9})
            client.log_feedback(use_case, decision_id, "clicked", 1.0, event_id=f"e-{decision_id}")
            made[user].append(decision_id)
    return made


def logged(folder: Path) -> list[dict]:
    """Every record in every segment of a log, open or closed."""
    return [record for segment in sorted(folder.glob("*.log")) for record, _ in iter_records(segment)]


def code_of(call) -> grpc.StatusCode:
    try:
        call()
    except LooperError as err:
        return err.code
    return grpc.StatusCode.OK


def finished(client, deletion_id: str, timeout: float = 30) -> trainer_pb2.Deletion:
    found = {}

    def done():
        found["deletion"] = client.get_deletion(deletion_id)
        return found["deletion"].state in (trainer_pb2.DELETION_STATE_DONE, trainer_pb2.DELETION_STATE_FAILED)

    wait_for(done, timeout, f"deletion {deletion_id}")
    assert found["deletion"].state == trainer_pb2.DELETION_STATE_DONE, found["deletion"]
    return found["deletion"]


class KeepDeciding:
    """Decisions for the subjects that stay, all through a deletion: none may fail."""

    def __init__(self, client, use_cases: list[str]):
        self.client, self.use_cases, self.errors, self.count = client, use_cases, [], 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self):
        n = 0
        while not self._stop.is_set():
            for use_case in self.use_cases:
                try:
                    self.client.decide(use_case, f"keep-{use_case}-{n}", {"user_id": "u2"}, {"hour_of_day": 3})
                    self.count += 1
                except LooperError as err:
                    self.errors.append(f"{use_case}: {err.code.name} {err.message}")
            n += 1
            time.sleep(0.05)


def online_counts(features: LooperFeatureStore, use_case: str, user: str) -> dict:
    blueprint = parse_blueprint(yaml.safe_load(BLUEPRINT.format(name=use_case)))
    view = blueprint.personalization.view
    refs = [f"{view}:{name}" for name in blueprint.personalization_features()]
    return features.online_features(refs, {"user_id": user})


def test_deleting_a_subject_then_a_use_case_everywhere_while_the_rest_keeps_serving(tmp_path):
    server = start_looper(tmp_path / "data", env=ENV)
    data = DataDir(server.data_dir)
    table = TrainingTable(data.labels.training)
    try:
        with server.client() as client:
            for name in ("shop", "news"):
                client.apply_blueprint(BLUEPRINT.format(name=name))
            shop = decide_and_report(client, "shop", 3, "a")
            news = decide_and_report(client, "news", 2, "a")
            wait_for(lambda: len(table.read("shop")) == 15 and len(table.read("news")) == 10, what="labels")
            features = LooperFeatureStore(data.features)
            wait_for(lambda: online_counts(features, "shop", "u1")["shop_clicks__decisions_1d"] == 3,
                     what="personalization counters")

            # --- one subject -------------------------------------------------------------------
            with KeepDeciding(client, ["shop", "news"]) as others:
                deletion = client.delete_subject_data("shop", {"user_id": "u1"}, request_id="forget-u1")
                assert deletion.state in (trainer_pb2.DELETION_STATE_PENDING, trainer_pb2.DELETION_STATE_RUNNING)
                for decision_id in shop["u1"]:  # hidden at once
                    assert code_of(lambda: client.get_decision("shop", decision_id)) == grpc.StatusCode.NOT_FOUND
                    assert code_of(lambda: client.get_label("shop", decision_id)) == grpc.StatusCode.NOT_FOUND
                assert client.get_decision("shop", shop["u2"][0]).subject["user_id"] == "u2"
                assert client.get_decision("news", news["u1"][0]).subject["user_id"] == "u1"
                done = finished(client, deletion.deletion_id)
                assert client.delete_subject_data("shop", {"user_id": "u1"}, "forget-u1").deletion_id == \
                    deletion.deletion_id  # a retry: the same deletion
            assert others.errors == [] and others.count > 0
            removed = done.removed
            assert (removed.decision_records, removed.outcome_records, removed.joined_decisions) == (3, 3, 3)
            assert removed.training_rows == 3 and removed.online_feature_rows == 1 and removed.index_entries == 6
            assert removed.offline_feature_rows >= 1 and dict(done.subject) == {} and done.subject_sha256
            print(f"RESULT deletion=subject removed={{{str(removed).strip().replace(chr(10), ', ')}}}")

            u1 = set(shop["u1"])
            decisions, outcomes = logged(data.decisions.log), logged(data.labels.outcome_log)
            assert not [r for r in decisions if r["use_case"] == "shop" and r["subject"]["user_id"] == "u1"]
            assert not [r for r in outcomes if r["use_case"] == "shop" and r["decision_id"] in u1]
            assert {r["decision_id"] for r in decisions} >= set(shop["u2"]) | set(news["u1"])
            rows = table.read("shop")
            assert "u1" not in set(rows["user_id"]) and len(rows[~rows["decision_id"].str.startswith("keep-")]) == 12
            assert "u1" in set(table.read("news")["user_id"])
            assert online_counts(features, "shop", "u1") == {"shop_clicks__decisions_1d": None,
                                                             "shop_clicks__clicked_1d": None}
            assert online_counts(features, "shop", "u3")["shop_clicks__decisions_1d"] == 3
            assert online_counts(features, "news", "u1")["news_clicks__decisions_1d"] == 2
            for decision_id in shop["u1"]:
                assert code_of(lambda: client.get_decision("shop", decision_id)) == grpc.StatusCode.NOT_FOUND
            assert client.get_label("shop", shop["u3"][0]).outcome_count == 1
            assert client.join_stats("shop").joined_decisions >= 12
            # the subject may come back: a new decision is new data
            client.decide("shop", "shop-b-u1-0", {"user_id": "u1"}, {"hour_of_day": 9})
            assert client.get_decision("shop", "shop-b-u1-0").subject["user_id"] == "u1"

            # --- a whole use case -------------------------------------------------------------
            run = client.start_training_run("news")
            wait_for(lambda: client.get_training_run(run.run_id).state not in (
                trainer_pb2.TRAINING_RUN_STATE_QUEUED, trainer_pb2.TRAINING_RUN_STATE_RUNNING), what="training run")
            with KeepDeciding(client, ["shop"]) as others:
                deletion = client.delete_use_case("news", request_id="drop-news", reason="product retired")
                assert code_of(lambda: client.decide("news", "news-late", {"user_id": "u2"})) == \
                    grpc.StatusCode.NOT_FOUND  # at once
                assert code_of(lambda: client.get_decision("news", news["u2"][0])) == grpc.StatusCode.NOT_FOUND
                assert code_of(lambda: client.apply_blueprint(BLUEPRINT.format(name="news"))) == \
                    grpc.StatusCode.FAILED_PRECONDITION  # not while it is being deleted
                done = finished(client, deletion.deletion_id)
            assert others.errors == [] and others.count > 0
            removed = done.removed
            assert removed.decision_records >= 10 and removed.outcome_records == 10 and removed.training_rows >= 10
            assert removed.blueprint_versions == 1 and removed.training_runs == 1 and removed.index_entries >= 20
            print(f"RESULT deletion=use_case removed={{{str(removed).strip().replace(chr(10), ', ')}}}")
            assert not [r for r in logged(data.decisions.log) if r["use_case"] == "news"]
            assert not [r for r in logged(data.labels.outcome_log) if r["use_case"] == "news"]
            for folder in (data.blueprints / "news", data.models / "news", data.runs / "news",
                           data.experiments / "news", data.labels.training / "news", data.features.views / "news_clicks"):
                assert not folder.exists(), folder
            assert not any(p.name.startswith(".deleted-") for p in data.blueprints.iterdir())
            assert features.view_tags("news_clicks") is None
            assert len(table.read("shop")) >= 12 and client.get_decision("shop", shop["u2"][0])
            joiner = json.loads((data.decisions.consumers / "label-joiner.json").read_text())
            assert set(joiner) <= {p.name for p in data.decisions.log.glob("*.log")}

            # --- the name again -----------------------------------------------------------------
            blueprint, created = client.apply_blueprint(BLUEPRINT.format(name="news"))
            assert created and blueprint.version == 1
            again = client.decide("news", news["u2"][0], {"user_id": "u2"}, {"hour_of_day": 9})
            assert again.is_default and again.model_version == ""  # a new decision under an old id, no old model
            assert client.list_models("news") == []
            assert client.get_decision("news", news["u2"][0]).decision.decide_time.seconds >= int(
                time.time()) - 60
    finally:
        server.stop()
