"""A multi-action decision may offer a subset of the actions (``candidates``); the policy then
picks the best of those. The off-policy product value that gates promotion should estimate
that policy, the one that serves. Here one action is best for everyone but offered to only
a fifth of the visitors: the served policy earns about 0.58 per decision, a policy that
always picked the best action would earn 0.9."""

from __future__ import annotations

import random

import pytest

from examples.simulation import live_model, wait_for
from services.launcher import start_looper

pytestmark = pytest.mark.e2e

USE_CASE = "offer_choice"
BLUEPRINT = f"""
name: {USE_CASE}
decision_type: multi_action
entities: [user_id]
actions: [premium, standard, basic]
default_decision: standard
features:
  context:
    country: string
label: {{outcome: converted, aggregation: max, window: 1s, missing_value: 0}}
model:
  params: {{iterations: 60, depth: 3}}
policy: {{exploration_rate: 0.5}}
retraining: {{min_labeled_rows: 2000}}
product_metric: {{outcome_value: 1.0, treatment_cost: 0.0}}
"""
CONVERSION = {"premium": 0.9, "standard": 0.5, "basic": 0.1}  # the truth, the same for everyone
ELIGIBLE = 0.2  # the share of visitors offered premium
SERVED_VALUE = ELIGIBLE * CONVERSION["premium"] + (1 - ELIGIBLE) * CONVERSION["standard"]  # 0.58


def test_the_off_policy_value_of_a_multi_action_model_respects_the_offered_candidates(tmp_path):
    looper = start_looper(tmp_path / "data")
    try:
        with looper.client(timeout=10) as client:
            client.apply_blueprint(BLUEPRINT)
            rng = random.Random(5)
            index = 0
            while not live_model(client, USE_CASE):
                assert index < 12000, "no model was trained"
                for _ in range(200):
                    index += 1
                    offered = ["premium", "standard"] if rng.random() < ELIGIBLE else ["standard", "basic"]
                    decision = client.decide(USE_CASE, f"offer-{index}", {"user_id": f"u{index % 300}"},
                                             {"country": rng.choice(["us", "de"])}, offered)
                    if rng.random() < CONVERSION[decision.action]:  # converts at once, well within the window
                        client.log_feedback(USE_CASE, f"offer-{index}", "converted", 1.0,
                                            event_id=f"converted-{index}")
            model = wait_for(lambda: live_model(client, USE_CASE), 60, "the model")
            # The model learned the order premium > standard > basic: the policy that serves
            # picks premium when offered, else standard.
            for offered, best in ((["premium", "standard"], "premium"), (["standard", "basic"], "standard")):
                picks = [client.decide(USE_CASE, f"check-{best}-{i}", {"user_id": "u1"}, {"country": "us"}, offered)
                         for i in range(20)]
                assert {d.action for d in picks if not d.is_exploration} == {best}
            assert model.metrics["product_value"] == pytest.approx(SERVED_VALUE, abs=0.12), (
                f"product_value {model.metrics['product_value']:.3f} estimates always choosing premium "
                f"({CONVERSION['premium']}), which is offered to {ELIGIBLE:.0%} of the visitors only; "
                f"the policy that serves earns {SERVED_VALUE:.2f}")
    finally:
        looper.stop()
