"""The uplift model kind and the uplift policy inside Looper, without servers: the blueprint
keys and their errors; the binary policy by objective; an X-learner trained by the Trainer's
pipeline from randomized decisions, registered with its parts and Qini, loaded by the
Decision service's live models and acted on by the uplift policy: persuadables get the
treatment, sure things and sleeping dogs do not."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
import yaml

from services.blueprints.spec import Objective, parse_blueprint
from services.blueprints.store import BlueprintStore
from services.decision.decider import DecideCommand, Decider
from services.decision.policies import choose, greedy_order
from services.decisions.log import DecisionLog
from services.labels.training_table import TrainingTable
from services.models.live import LiveModels
from services.models.registry import ModelRegistry
from services.models.runtime import UpliftModel
from services.platform.data_dir import DataDir
from services.platform.errors import FailedPrecondition, InvalidArgument
from services.trainer.pipeline import TrainingPipeline
from services.trainer.runs import RunState, TrainingRun, Trigger
from services.trainer.scheduler import RetrainingScheduler

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
SPEC = {
    "name": "winback", "decision_type": "binary", "entities": ["user_id"], "default_decision": False,
    "features": {"context": {"days_inactive": "double", "notifications_7d": "int64"}},
    "label": {"outcome": "returned", "window": "1h"},
    "model": {"params": {"iterations": 120, "depth": 3}, "uplift": {"learner": "x"}},
    "policy": {"exploration_rate": 0.0},
    "product_metric": {"outcome_value": 1.0, "treatment_cost": 0.1},
}
# Who they are (what the product sees of them) and the truth: P(return) without and with a notification.
KINDS = {
    "sure_thing": ((0, 4), (0, 3), 0.85, 0.87),  # days inactive, notifications last week, p0, p1
    "persuadable": ((10, 30), (0, 2), 0.25, 0.60),
    "sleeping_dog": ((5, 30), (5, 8), 0.50, 0.20),
    "lost_cause": ((40, 60), (0, 3), 0.03, 0.04),
}
PROBES = {"sure_thing": (2.0, 1), "persuadable": (20.0, 1), "sleeping_dog": (15.0, 7), "lost_cause": (50.0, 1)}


def spec(**changes) -> dict:
    result = {**SPEC}
    for key, value in changes.items():
        section, _, name = key.partition("__")
        result[section] = {**result.get(section, {}), name: value} if name else value
    return result


# --- blueprint ---------------------------------------------------------------------------

def test_the_objective_defaults_to_uplift_and_one_outcome_model():
    plain = parse_blueprint({k: v for k, v in SPEC.items() if k != "model"})
    assert plain.objective == Objective.UPLIFT and plain.policy.objective is None and plain.uplift_learner is None
    uplift = parse_blueprint(spec(policy__objective="response"))
    assert uplift.objective == Objective.RESPONSE and uplift.uplift_learner == "x"


@pytest.mark.parametrize("changes, field, message", [
    ({"policy__objective": "clicks"}, "policy.objective", "must be one of ['uplift', 'response']"),
    ({"model__uplift": {"learner": "s"}}, "model.uplift.learner", "must be one of ['t', 'x']"),
    ({"model__uplift": {}}, "model.uplift.learner", "is required"),
    ({"model__uplift": {"learner": "x", "honest": True}}, "model.uplift.honest", "unknown key"),
    ({"model__uplift": "x"}, "model.uplift", "must be a mapping"),
    ({"decision_type": "multi_action", "actions": ["a", "b"], "default_decision": "a"},
     "model.uplift", "is only for binary use cases"),
    ({"decision_type": "multi_action", "actions": ["a", "b"], "default_decision": "a", "model": {},
      "policy__objective": "response"}, "policy.objective", "is only for binary use cases"),
])
def test_uplift_keys_are_checked_and_errors_name_the_key(changes, field, message):
    with pytest.raises(InvalidArgument) as err:
        parse_blueprint(spec(**changes))
    assert [(v.field, message in v.reason) for v in err.value.violations] == [(field, True)], \
        err.value.violations


# --- the policy --------------------------------------------------------------------------

def predicted(kind: str) -> list[float]:
    """Perfect predictions of returning, acting first: [P(return | sent), P(return | not sent)]."""
    _, _, p0, p1 = KINDS[kind]
    return [p1, p0]


def test_the_uplift_policy_acts_on_persuadables_and_not_on_sure_things_or_sleeping_dogs():
    bp = parse_blueprint(spec())  # an open... a return is worth 1, a notification costs 0.1
    acts = {kind: choose(bp, f"d-{kind}", ["true", "false"], predicted(kind)).action == "true" for kind in KINDS}
    assert acts == {"sure_thing": False, "persuadable": True, "sleeping_dog": False, "lost_cause": False}


def test_the_response_policy_acts_on_everyone_likely_to_return_when_sent():
    bp = parse_blueprint(spec(policy__objective="response"))
    acts = {kind: choose(bp, f"d-{kind}", ["true", "false"], predicted(kind)).action == "true" for kind in KINDS}
    assert acts == {"sure_thing": True, "persuadable": True, "sleeping_dog": True, "lost_cause": False}


def test_the_default_objective_is_todays_binary_policy_and_the_threshold_applies_to_either():
    today = parse_blueprint({k: v for k, v in SPEC.items() if k != "model"})
    for scores in ([0.5, 0.1], [0.3, 0.25], [0.9, 0.85], [0.05, 0.0]):
        gain = scores[0] - 0.1 - scores[1]  # value of acting minus value of not acting
        assert greedy_order(today, ["true", "false"], scores) == ([0, 1] if gain > 0 else [1, 0])
    strict = parse_blueprint(spec(policy__threshold=0.5, policy__objective="response"))
    assert greedy_order(strict, ["true", "false"], [0.55, 0.0]) == [1, 0]  # 0.55 - 0.1 is not above 0.5
    assert greedy_order(strict, ["true", "false"], [0.65, 0.6]) == [0, 1]  # 0.65 - 0.1 is


def test_exploration_and_its_propensities_are_the_same_under_either_objective():
    for objective in ("uplift", "response"):
        bp = parse_blueprint(spec(policy__objective=objective, policy__exploration_rate=0.2))
        choices = [choose(bp, f"id-{i}", ["true", "false"], predicted("persuadable")) for i in range(2000)]
        assert all(c.propensity == pytest.approx(0.1) for c in choices if c.action == "false")
        assert all(c.propensity == pytest.approx(0.9) for c in choices if c.action == "true")
        assert sum(c.is_exploration for c in choices) / 2000 == pytest.approx(0.1, abs=0.03)


# --- trained, registered, served ---------------------------------------------------------

def randomized_decisions(n: int, seed: int, share: float = 0.5) -> pd.DataFrame:
    """Training-table rows of randomized decisions (P(send) = ``share``) and their outcome."""
    rng = np.random.default_rng(seed)
    kinds = rng.choice(list(KINDS), n)
    days = np.array([rng.uniform(*KINDS[k][0]) for k in kinds])
    notifications = np.array([rng.integers(KINDS[k][1][0], KINDS[k][1][1] + 1) for k in kinds])
    sent = rng.random(n) < share
    p = np.array([KINDS[k][3] if s else KINDS[k][2] for k, s in zip(kinds, sent)])
    returned = (rng.random(n) < p).astype(float)
    return pd.DataFrame({
        "row_id": [f"d{i:05d}" for i in range(n)], "decision_id": [f"d{i:05d}" for i in range(n)],
        "user_id": [f"u{i}" for i in range(n)], "event_timestamp": [T0 + timedelta(seconds=i) for i in range(n)],
        "action": np.where(sent, "true", "false"), "propensity": np.where(sent, share, 1 - share),
        "days_inactive": days, "notifications_7d": notifications, "label__returned": returned, "label": returned,
        "is_default": True, "is_exploration": True, "model_version": "", "blueprint_version": 1, "arm": "",
    })


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("uplift")
    data = DataDir(root).ensure()
    folder = data.labels.training / "winback"
    folder.mkdir(parents=True)
    randomized_decisions(3000, seed=1).to_parquet(folder / "part-1-1.parquet", index=False)
    blueprints = BlueprintStore(data.blueprints)
    blueprints.apply(yaml.safe_dump(spec()))
    bp = blueprints.latest("winback")
    registry = ModelRegistry(data.models)
    run = TrainingRun("run-000000000001", "winback", bp.version, RunState.RUNNING, Trigger.MANUAL, T0.isoformat())
    done = TrainingPipeline(TrainingTable(data.labels.training), registry)(run, bp, force_promote=False)
    return data, blueprints, registry, done


def test_the_trainer_fits_an_x_learner_and_registers_its_models_and_uplift_metrics(trained):
    _, _, registry, done = trained
    assert done.state == RunState.SUCCEEDED and done.promoted
    meta = registry.get("winback", done.model_version)
    assert meta.uplift["learner"] == "x" and meta.uplift["treated_share"] == pytest.approx(0.5)
    folder = registry.artifact("winback", meta.version).parent
    assert sorted(p.name for p in folder.iterdir()) == ["meta.json", "model.cbm", "mu1.cbm", "tau0.cbm", "tau1.cbm"]
    metrics = done.metrics
    assert metrics["qini"] > 0.1, metrics  # the effect's ordering is learned (0 would be random targeting)
    assert metrics["ate_ci_low"] < metrics["cate_mean"] < metrics["ate_ci_high"], metrics
    assert {"auc", "log_loss", "product_value", "qini_area"} <= set(metrics)


def test_the_decision_service_loads_the_uplift_version_and_the_uplift_policy_acts_on_its_effects(trained, tmp_path):
    data, blueprints, registry, done = trained
    models = LiveModels(registry)
    model = models.get("winback")
    assert isinstance(model, UpliftModel) and model.version == done.model_version
    effects = model.effects([{"days_inactive": d, "notifications_7d": n} for d, n in PROBES.values()])["returned"]
    estimated = dict(zip(PROBES, effects))
    assert estimated["persuadable"] > 0.2 and estimated["sleeping_dog"] < -0.15, estimated
    assert abs(estimated["sure_thing"]) < 0.1 and abs(estimated["lost_cause"]) < 0.1, estimated

    log = DecisionLog(DataDir(tmp_path).ensure().decisions)
    decider = Decider(blueprints, log, models=models)
    try:
        def sent(objective: str) -> dict[str, bool]:
            blueprints.apply(yaml.safe_dump(spec(policy__objective=objective)))
            answers = {}
            for kind, (days, notifications) in PROBES.items():
                record, _ = decider.decide(DecideCommand("winback", f"{objective}-{kind}", {"user_id": kind},
                                                         {"days_inactive": days, "notifications_7d": notifications}))
                assert record.model_version == done.model_version and not record.is_exploration
                scores = {c.action_id: c.score for c in record.ranking}  # each action's predicted P(return)
                assert scores["true"] - scores["false"] == pytest.approx(estimated[kind], abs=1e-9)
                answers[kind] = record.action == "true"
            return answers

        assert sent("uplift") == {"sure_thing": False, "persuadable": True, "sleeping_dog": False,
                                  "lost_cause": False}
        assert sent("response") == {"sure_thing": True, "persuadable": True, "sleeping_dog": True,
                                    "lost_cause": False}
    finally:
        decider.close()
        log.close()


def test_an_uplift_version_that_fails_to_load_never_replaces_the_serving_one(trained):
    data, _, registry, done = trained
    models = LiveModels(registry)
    assert models.get("winback").version == done.model_version
    meta = registry.get("winback", done.model_version)
    fields = {k: v for k, v in vars(meta).items() if k != "version"}
    folder = registry.artifact("winback", meta.version).parent
    broken = registry.register(fields, lambda path: path.write_bytes((folder / "model.cbm").read_bytes()),
                               extra_files={"mu1.cbm": folder / "mu1.cbm", "tau0.cbm": folder / "tau0.cbm"})
    registry.promote("winback", broken.version)  # its tau1.cbm is missing
    try:
        assert models.get("winback").version == done.model_version
        assert models.load_failures == 1
    finally:
        registry.rollback("winback")


def test_training_an_uplift_model_without_a_control_group_fails_with_the_reason(tmp_path):
    data = DataDir(tmp_path).ensure()
    folder = data.labels.training / "winback"
    folder.mkdir(parents=True)
    randomized_decisions(200, seed=2, share=1.0).to_parquet(folder / "part-1-1.parquet", index=False)
    bp = parse_blueprint(spec()).with_version(1)
    run = TrainingRun("run-000000000002", "winback", 1, RunState.RUNNING, Trigger.MANUAL, T0.isoformat())
    with pytest.raises(FailedPrecondition, match="needs at least 10 treated and 10 control rows; got 160 treated"):
        TrainingPipeline(TrainingTable(data.labels.training), ModelRegistry(data.models))(run, bp, False)


def test_the_scheduler_retrains_when_the_blueprint_asks_for_another_kind_of_model(trained):
    _, _, registry, done = trained
    scheduler = RetrainingScheduler(None, None, None, None, registry=registry)
    assert not scheduler._live_model_lacks_a_label("winback", parse_blueprint(spec()))
    assert scheduler._live_model_lacks_a_label("winback", parse_blueprint(spec(model={})))
    assert scheduler._live_model_lacks_a_label("winback", parse_blueprint(spec(model__uplift={"learner": "t"})))


def test_an_experiment_arm_may_run_the_other_objective():
    from services.experiments.experiment import from_blueprint, with_overrides

    experiment = {"name": "objectives", "control": "response",
                  "arms": [{"name": "response", "share": 0.5, "policy": {"objective": "response"}},
                           {"name": "uplift", "share": 0.5}]}
    bp = parse_blueprint(spec(experiment=experiment)).with_version(3)
    arms = {arm.name: arm for arm in from_blueprint(bp, bp.experiment, T0).arms}
    assert with_overrides(bp, arms["response"].policy).objective == Objective.RESPONSE
    assert with_overrides(bp, arms["uplift"].policy).objective == Objective.UPLIFT
    # as the experiment store keeps it: JSON, the objective as its text
    assert with_overrides(bp, {"objective": "response"}).objective == Objective.RESPONSE
    experiment["arms"][0]["policy"]["objective"] = "clicks"
    with pytest.raises(InvalidArgument, match="experiment.arms\\[0\\].policy.objective"):
        parse_blueprint(spec(experiment=experiment))
    experiment["arms"][0]["policy"]["objective"] = "response"
    with pytest.raises(InvalidArgument) as err:
        parse_blueprint(spec(experiment=experiment, decision_type="multi_action", actions=["a", "b"],
                             default_decision="a", model={}))
    assert [v.field for v in err.value.violations] == ["experiment.arms[0].policy.objective"]


def test_softmax_exploration_weighs_what_the_objective_weighs():
    from services.decision.policies import action_probabilities

    for objective, acts_more_likely in (("uplift", False), ("response", True)):
        bp = parse_blueprint(spec(policy__objective=objective, policy__exploration="softmax",
                                  policy__temperature=0.05, policy__exploration_rate=0.1))
        act, wait = action_probabilities(bp, ["true", "false"], predicted("sure_thing"))
        assert act + wait == pytest.approx(1.0)
        assert (act > 0.5) == acts_more_likely, (objective, act)
        assert (greedy_order(bp, ["true", "false"], predicted("sure_thing"))[0] == 0) == acts_more_likely
