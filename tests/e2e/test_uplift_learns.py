"""An uplift use case end to end through real services and CatBoost: randomized decisions of
the re-engagement example (examples/reengagement) are joined with their outcomes, the Trainer
trains the blueprint's X-learner by itself and promotes it, and the Decision service acts by
it: the same users decided by the response objective and then by the uplift objective, each
decision valued by the simulator's truth."""

from __future__ import annotations

import pytest

from examples.reengagement.hte import blueprint_yaml, measure_hte
from examples.reengagement.simulator import USE_CASE, User
from services.launcher import start_looper

pytestmark = pytest.mark.e2e


@pytest.fixture
def looper(tmp_path):
    server = start_looper(tmp_path / "data")
    yield server
    server.stop()


def test_an_uplift_model_trains_through_the_trainer_and_the_decision_service_acts_by_it(looper):
    with looper.client(timeout=10) as client:
        result = measure_hte(client, seed=21, randomized_decisions=3000, evaluation_decisions=800,
                             training_timeout=60)
        print(result.line())

        live = [m for m in client.list_models(USE_CASE) if m.version == result.model_version]
        assert live and {"qini", "qini_area", "ate"} <= set(live[0].metrics)  # an uplift version's metrics
        for policy in (result.response, result.uplift):
            assert len(policy.values) == 800
        # The served effects follow the true ones (the demo's 6,000 randomized decisions give about 0.87).
        assert result.cate_corr > 0.6
        # The objectives choose differently, and the uplift policy earns more by the truth.
        assert result.disagreement > 0.3
        assert result.uplift.sent < result.response.sent
        assert result.difference_ci95()[0] > 0, (result.uplift_value, result.response_value)

        # The live uplift model, by the uplift objective: it notifies a persuadable, but
        # neither a sure thing nor a sleeping dog.
        client.apply_blueprint(blueprint_yaml(objective="uplift", exploration_rate=0.0))
        probes = {"persuadable": User("probe-p", 16, 8, 1, "android"),
                  "sure_thing": User("probe-s", 1, 20, 1, "ios"),
                  "sleeping_dog": User("probe-d", 2, 12, 5, "android")}
        notified = {}
        for kind, user in probes.items():
            decision = client.decide(USE_CASE, f"probe-{kind}", {"user_id": user.user_id}, user.context())
            assert decision.model_version == result.model_version and not decision.is_exploration
            notified[kind] = decision.action == "true"
        assert notified == {"persuadable": True, "sure_thing": False, "sleeping_dog": False}
