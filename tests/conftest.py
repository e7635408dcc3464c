"""Shared fixtures: real Looper services on free ports with a fresh data directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.launcher import start_looper

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_BLUEPRINT = ROOT / "examples" / "notifications" / "blueprint.yaml"

SIMPLE_BLUEPRINT = """
name: contract_test
decision_type: binary
entities: [user_id]
default_decision: false
features:
  context:
    hour_of_day: int64
    platform: string
label: {outcome: clicked, aggregation: max, window: 2s, missing_value: 0}
policy: {exploration_rate: 0.2}
retraining: {min_labeled_rows: 100000}
"""


@pytest.fixture(scope="module")
def looper(tmp_path_factory):
    """All three services in one process, with the simple blueprint applied."""
    server = start_looper(tmp_path_factory.mktemp("looper") / "data")
    with server.client() as client:
        client.apply_blueprint(SIMPLE_BLUEPRINT)
    yield server
    server.stop()


@pytest.fixture()
def client(looper):
    with looper.client() as c:
        yield c
