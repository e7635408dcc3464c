"""Every decision type learns end to end: a multi-action, a ranking and a numeric use case,
each driven by its example's simulated product through the Python client against real
services and real CatBoost. Phase one runs the default policy until Looper has trained and
promoted a model by itself; phase two runs the learned policy. The simulator knows the best
policy's value, so each test asks for a lift the simulator says is reachable: at least a
third of the gap between the default and the best policy, with the 95% interval of the
difference above zero."""

from __future__ import annotations

import pytest

from examples.bitrate import demo as bitrate_demo
from examples.bitrate import simulator as bitrate
from examples.feed_ranking import demo as feed_demo
from examples.feed_ranking import simulator as feed
from examples.layouts import demo as layouts_demo
from examples.layouts import simulator as layouts
from examples.simulation import Comparison, learn_and_compare
from services.launcher import start_looper

pytestmark = pytest.mark.e2e

@pytest.fixture
def looper(tmp_path):
    server = start_looper(tmp_path / "data")
    yield server
    server.stop()


def learns(client, product, example: str, phase_two_decisions: int) -> Comparison:
    comparison = learn_and_compare(client, product, phase_one_decisions=12000,
                                   phase_two_decisions=phase_two_decisions, training_timeout=60)
    print(comparison.result_line(example))
    assert comparison.learned.model_decisions == comparison.learned.decisions
    reachable = (comparison.best_value - comparison.default.mean) / 3
    assert comparison.difference >= reachable, (
        f"the learned policy gained {comparison.difference:.4f} per decision over the default, "
        f"less than a third of the gap to the best policy ({reachable:.4f})")
    assert comparison.difference_ci95[0] > 0, f"the gain's 95% interval {comparison.difference_ci95} includes 0"
    return comparison


def test_a_multi_action_use_case_learns_the_best_layout_per_user(looper):
    with looper.client(timeout=10) as client:
        client.apply_blueprint(layouts_demo.BLUEPRINT.read_text())
        learns(client, layouts.LayoutProduct.build(client, seed=11), "layouts", phase_two_decisions=2000)


def test_a_ranking_use_case_learns_the_order_from_candidate_and_user_features(looper):
    with looper.client(timeout=10) as client:
        client.apply_blueprint(feed_demo.BLUEPRINT.read_text())
        comparison = learns(client, feed.FeedProduct.build(client, seed=12), "feed_ranking", phase_two_decisions=1500)

        # The live model scores each candidate by its own features and the user's: posts that
        # differ only in topic, quality or age get different scores.
        probes = {"on-topic": {"topic": "sports", "quality": 0.9, "age_hours": 1.0},
                  "off-topic": {"topic": "food", "quality": 0.9, "age_hours": 1.0},
                  "poor": {"topic": "sports", "quality": 0.1, "age_hours": 1.0},
                  "stale": {"topic": "sports", "quality": 0.9, "age_hours": 47.0}}
        client.decide("feed_ranking", "probe-feed", {"user_id": "probe-user"},
                      {"user_topic": "sports", "device": "phone"}, list(probes.items()))
        decision = client.get_decision("feed_ranking", "probe-feed").decision
        assert decision.model_version == comparison.model_version
        scores = {item.action_id: item.score for item in decision.ranking}
        assert set(scores) == set(probes)
        assert scores["on-topic"] > scores["off-topic"], scores
        assert scores["on-topic"] > scores["poor"], scores
        assert scores["on-topic"] > scores["stale"], scores


def test_a_numeric_use_case_with_two_outcomes_learns_the_value_per_subject(looper):
    with looper.client(timeout=10) as client:
        client.apply_blueprint(bitrate_demo.BLUEPRINT.read_text())
        learns(client, bitrate.PlayerProduct.build(client, seed=13), "bitrate", phase_two_decisions=2500)

        def chosen(bandwidth: float) -> float:
            """The learned policy's value for a TV session at ``bandwidth`` (the first of a few
            decision ids that does not explore: exploration is drawn from the id)."""
            for i in range(50):
                decision = client.decide("start_bitrate", f"probe-{bandwidth:g}-{i}", {"viewer_id": "probe"},
                                         {"bandwidth_kbps": bandwidth, "device": "tv", "network": "wifi"})
                if not decision.is_exploration:
                    assert decision.value in bitrate.BITRATES and decision.action == f"{decision.value:g}"
                    return decision.value
            raise AssertionError("every probe decision explored")

        assert chosen(600.0) < chosen(8000.0)
