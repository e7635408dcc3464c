"""What a newly trained version's offline result earns it (``TrainingPipeline._deploy``),
as a table: live at once when forced, when it is the first model, or when the use case has
no deployment stages and it wins; the shadow stage (or the canary stage when shadow is
skipped) when it wins and the use case rolls models out; nothing while another version
rolls out or when it loses. Every outcome is recorded in the version's stage history with
the figure the offline gate compared."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import yaml

from services.blueprints.spec import parse_blueprint
from services.models.registry import ModelRegistry, ModelStage
from services.trainer.pipeline import TrainingPipeline
from tests.conftest import SIMPLE_BLUEPRINT
from tests.unit.test_rollouts import DEPLOYED, USE_CASE, register

PLAIN = parse_blueprint(yaml.safe_load(SIMPLE_BLUEPRINT))
ROLLED_OUT = parse_blueprint(yaml.safe_load(DEPLOYED))
NO_SHADOW = parse_blueprint(yaml.safe_load(DEPLOYED.replace("shadow_decisions: 50", "shadow_decisions: 0")))
BETTER, WORSE = {"product_value": 0.3}, {"product_value": 0.1}
LIVE_METRICS = {"product_value": 0.2}


@pytest.fixture()
def registry(tmp_path):
    return ModelRegistry(tmp_path / "models")


def deploy(registry, blueprint, metrics, live_metrics, live, force=False):
    new = register(registry, 9)
    meta = registry.get(USE_CASE, new)
    went_live = TrainingPipeline(None, registry)._deploy(blueprint, meta, metrics, live_metrics, live, force)
    return new, went_live, [(c.stage, c.reason) for c in registry.stage_history(USE_CASE, new)]


def live_model(registry) -> SimpleNamespace:
    version = register(registry, 1)
    registry.promote(USE_CASE, version, "the first model")
    return SimpleNamespace(version=version)


@pytest.mark.parametrize("blueprint", [PLAIN, ROLLED_OUT])
def test_the_first_model_goes_live_at_once(registry, blueprint):
    new, went_live, history = deploy(registry, blueprint, BETTER, {}, None)
    assert went_live and registry.live_version(USE_CASE) == new and registry.rollout(USE_CASE) is None
    assert history == [(ModelStage.LIVE, "the first model: product_value 0.3000")]


def test_a_winner_of_a_use_case_without_deployment_stages_goes_live(registry):
    live = live_model(registry)
    new, went_live, history = deploy(registry, PLAIN, BETTER, LIVE_METRICS, live)
    assert went_live and registry.live_version(USE_CASE) == new
    assert history == [(ModelStage.LIVE, "won offline: product_value 0.3000 vs 0.2000")]


@pytest.mark.parametrize("blueprint", [PLAIN, ROLLED_OUT])
def test_a_loser_is_kept_as_a_candidate_with_the_comparison(registry, blueprint):
    live = live_model(registry)
    new, went_live, history = deploy(registry, blueprint, WORSE, LIVE_METRICS, live)
    assert not went_live and registry.live_version(USE_CASE) == live.version and registry.rollout(USE_CASE) is None
    assert history == [(ModelStage.CANDIDATE, f"lost offline to {live.version}: product_value 0.1000 vs 0.2000")]
    assert registry.stage(USE_CASE, new) == ModelStage.CANDIDATE


def test_a_forced_loser_goes_live_and_says_it_was_forced(registry):
    live = live_model(registry)
    new, went_live, history = deploy(registry, ROLLED_OUT, WORSE, LIVE_METRICS, live, force=True)
    assert went_live and registry.live_version(USE_CASE) == new and registry.rollout(USE_CASE) is None
    assert history == [(ModelStage.LIVE, "forced: product_value 0.1000 vs 0.2000")]


@pytest.mark.parametrize("blueprint, stage", [(ROLLED_OUT, ModelStage.SHADOW), (NO_SHADOW, ModelStage.CANARY)])
def test_a_winner_of_a_use_case_that_rolls_models_out_starts_its_rollout(registry, blueprint, stage):
    live = live_model(registry)
    new, went_live, history = deploy(registry, blueprint, BETTER, LIVE_METRICS, live)
    assert not went_live and registry.live_version(USE_CASE) == live.version
    rollout = registry.rollout(USE_CASE)
    assert (rollout.version, rollout.stage) == (new, stage) and rollout.since
    assert history == [(stage, f"won offline against {live.version}: product_value 0.3000 vs 0.2000")]


def test_a_winner_waits_while_another_version_rolls_out(registry):
    live = live_model(registry)
    rolling = register(registry, 2)
    registry.set_rollout(USE_CASE, rolling, ModelStage.SHADOW, "won offline", since="2026-11-25T12:00:00+00:00")
    new, went_live, history = deploy(registry, ROLLED_OUT, BETTER, LIVE_METRICS, live)
    assert not went_live and registry.rollout(USE_CASE).version == rolling
    assert history == [(ModelStage.CANDIDATE,
                        f"won offline, but {rolling} is still rolling out: product_value 0.3000 vs 0.2000")]


@pytest.mark.parametrize("new, live, comparison", [
    ({"product_value": 0.3, "auc": 0.6}, {"product_value": 0.2, "auc": 0.9}, "product_value 0.3000 vs 0.2000"),
    ({"product_value": float("nan"), "auc": 0.8}, {"auc": 0.7}, "auc 0.8000 vs 0.7000"),
    ({"rmse": 1.5}, {"rmse": 2.0}, "rmse 1.5000 vs 2.0000"),
    ({"auc": 0.8}, {}, "auc 0.8000"),
    ({}, {}, "no comparable metric"),
])
def test_the_comparison_names_the_figure_the_gate_used(new, live, comparison):
    from services.trainer.pipeline import offline_comparison

    assert offline_comparison(new, live) == comparison
