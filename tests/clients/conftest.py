"""The real services every client test runs against: one traced, restartable stack for the
package, with the blueprints of tests/clients applied. Tests share it but not their data:
each makes its own decisions, under ids no other test uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clients.harness import OtlpSink, Stack, require_clients_setup

BLUEPRINTS = {name: Path(__file__).with_name(f"{file}.yaml") for name, file in (
    ("client_contract", "blueprint"),  # 2s window: each suite waits for its own label to join
    ("client_contract_mixed", "blueprint_mixed"),  # 60s window: outlasts the runs between decision and feedback
    ("notification_send", "blueprint_quickstart"),  # what the SDK READMEs' quick starts decide on
)}


@pytest.fixture(scope="package")
def stack(tmp_path_factory):
    require_clients_setup()
    sink = OtlpSink()
    services = None
    try:
        services = Stack(tmp_path_factory.mktemp("looper-clients") / "data", sink)
        with services.client() as client:
            for name, path in BLUEPRINTS.items():
                blueprint, _ = client.apply_blueprint(path.read_text())
                assert blueprint.use_case == name
        yield services
    finally:
        if services is not None:
            services.stop()
        sink.close()
