"""Experiments without a server: a subject's arm is a deterministic, salted function of its
key that follows the shares; arms change the model and the policy of the decisions they
make; the arm is logged on every decision; a model in shadow is asked but never obeyed; and
the experiment store keeps one running experiment per use case with the history of ended
ones."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone

import pytest
from scipy import stats

from services.blueprints.spec import load_blueprint_yaml
from services.blueprints.store import BlueprintStore
from services.decision.decider import DecideCommand, Decider, NoModels
from services.decisions.log import DecisionLog
from services.decisions.record import DefaultReason
from services.experiments.experiment import Arm, Experiment, ExperimentKind, Verdict, with_overrides
from services.experiments.store import ExperimentStore
from services.platform.data_dir import DataDir
from services.platform.errors import FailedPrecondition, NotFound
from tests.conftest import SIMPLE_BLUEPRINT

NOW = datetime(2026, 11, 25, 12, tzinfo=timezone.utc)


def experiment(experiment_id="exp", arms=(Arm("control", 0.5), Arm("treatment", 0.5)), **changes) -> Experiment:
    fields = dict(use_case="contract_test", experiment_id=experiment_id, kind=ExperimentKind.BLUEPRINT,
                  control="control", arms=tuple(arms), blueprint_version=1, start_time=NOW)
    return Experiment(**{**fields, **changes})


def test_a_subject_always_gets_the_same_arm_and_arms_follow_their_shares():
    split = experiment(arms=(Arm("control", 0.7), Arm("a", 0.2), Arm("b", 0.1)))
    subjects = [f"user-{i}" for i in range(20_000)]
    first = [split.assign(s).name for s in subjects]
    assert first == [split.assign(s).name for s in subjects]
    counts = Counter(first)
    expected = [0.7 * len(subjects), 0.2 * len(subjects), 0.1 * len(subjects)]
    assert stats.chisquare([counts["control"], counts["a"], counts["b"]], expected).pvalue > 0.001


def test_two_experiments_split_subjects_independently():
    one, two = experiment("one"), experiment("two")
    pairs = Counter((one.assign(f"u{i}").name, two.assign(f"u{i}").name) for i in range(20_000))
    table = [[pairs[("control", "control")], pairs[("control", "treatment")]],
             [pairs[("treatment", "control")], pairs[("treatment", "treatment")]]]
    assert stats.chi2_contingency(table).pvalue > 0.001


def test_overrides_change_the_policy_and_the_weights_and_keep_the_version():
    blueprint = load_blueprint_yaml(SIMPLE_BLUEPRINT).with_version(3)
    changed = with_overrides(blueprint, {"threshold": 0.4, "exploration_rate": 0.05, "weights": {"clicked": 2.0}})
    assert (changed.policy.threshold, changed.policy.exploration_rate) == (0.4, 0.05)
    assert changed.weights == {"clicked": 2.0} and changed.version == 3
    assert blueprint.policy.threshold == 0.0 and blueprint.weights == {"clicked": 1.0}
    assert with_overrides(blueprint, {}) is blueprint


def test_the_store_runs_one_experiment_at_a_time_and_keeps_the_ended_ones(tmp_path):
    store = ExperimentStore(tmp_path)
    assert store.active("contract_test") is None
    store.start(experiment("first"))
    assert store.active("contract_test").experiment_id == "first"
    with pytest.raises(FailedPrecondition):
        store.start(experiment("second"))
    ended = store.finish("contract_test", "first", Verdict.PROMOTE, "treatment is better")
    assert ended.end_time is not None and store.active("contract_test") is None
    assert ExperimentStore(tmp_path).history("contract_test") == [ended]  # another process sees the same
    store.start(experiment("second"))
    assert store.find("contract_test").experiment_id == "second"
    assert store.find("contract_test", "first").verdict == Verdict.PROMOTE
    assert store.was_run("contract_test", "first") and not store.was_run("contract_test", "second")
    with pytest.raises(NotFound):
        store.find("contract_test", "third")
    with pytest.raises(NotFound):
        store.finish("contract_test", "first", Verdict.STOPPED, "")


class Scored:
    """A model whose probability of a click is ``p_act`` when acting and ``p_wait`` otherwise."""

    def __init__(self, version, p_act=0.9, p_wait=0.1, broken=False):
        self.version, self.p_act, self.p_wait, self.broken = version, p_act, p_wait, broken

    def score(self, rows):
        if self.broken:
            raise RuntimeError("corrupt")
        return [self.p_act if row["action"] == "true" else self.p_wait for row in rows]


class Registry(NoModels):
    def __init__(self, live, versions=(), shadow=None):
        self.live, self.versions, self.in_shadow = live, {m.version: m for m in versions}, shadow

    def get(self, use_case):
        return self.live

    def version(self, use_case, version):
        return self.versions.get(version)

    def shadow(self, use_case):
        return self.in_shadow


@pytest.fixture()
def parts(tmp_path):
    blueprints = BlueprintStore(tmp_path / "blueprints")
    blueprints.apply(SIMPLE_BLUEPRINT.replace("exploration_rate: 0.2", "exploration_rate: 0.0"))
    log = DecisionLog(DataDir(tmp_path).ensure().decisions)
    yield blueprints, log, ExperimentStore(tmp_path / "experiments")
    log.close()


def decide_all(decider, count=400):
    return [decider.decide(DecideCommand("contract_test", f"d-{i}", {"user_id": f"u{i}"}))[0] for i in range(count)]


def test_arms_decide_with_their_own_model_and_policy_and_are_logged(parts):
    blueprints, log, store = parts
    store.start(experiment(arms=(Arm("control", 0.4), Arm("no_model", 0.3, "default"),
                                 Arm("strict", 0.3, "m000009", {"threshold": 0.95}))))
    live, other = Scored("m000001"), Scored("m000009", p_act=0.8, p_wait=0.1)
    records = decide_all(Decider(blueprints, log, models=Registry(live, [other]), experiments=store))
    by_arm = {arm: [r for r in records if r.arm == arm] for arm in ("control", "no_model", "strict")}
    assert all(by_arm.values()), "every arm got subjects"
    assert {(r.model_version, r.action) for r in by_arm["control"]} == {("m000001", "true")}
    assert {(r.default_reason, r.action) for r in by_arm["no_model"]} == {(DefaultReason.EXPERIMENT_ARM, "false")}
    # 0.8 - 0.1 does not clear the arm's threshold of 0.95: it waits, with its own model.
    assert {(r.model_version, r.action) for r in by_arm["strict"]} == {("m000009", "false")}
    assert all(log.find("contract_test", r.decision_id).arm == r.arm for r in records)


def test_an_arm_whose_model_does_not_load_gets_the_default_flagged(parts):
    blueprints, log, store = parts
    store.start(experiment(arms=(Arm("control", 0.5), Arm("treatment", 0.5, "m000009"))))
    records = decide_all(Decider(blueprints, log, models=Registry(Scored("m000001")), experiments=store), 100)
    treated = [r for r in records if r.arm == "treatment"]
    assert treated and {r.default_reason for r in treated} == {DefaultReason.MODEL_UNAVAILABLE}


def test_a_model_in_shadow_is_asked_and_logged_but_never_obeyed(parts):
    blueprints, log, _ = parts
    live, shadow = Scored("m000001", p_act=0.9), Scored("m000002", p_act=0.05, p_wait=0.1)
    records = decide_all(Decider(blueprints, log, models=Registry(live, shadow=("m000002", shadow))), 20)
    assert {r.action for r in records} == {"true"}, "the live model decides"
    assert {(r.shadow["model_version"], r.shadow["action"]) for r in records} == {("m000002", "false")}
    assert records[0].shadow["score"] == pytest.approx(0.1)
    assert log.find("contract_test", "d-3").shadow == records[3].shadow


@pytest.mark.parametrize("shadow, error", [(None, "the model did not load"),
                                           (Scored("m000002", broken=True), "the model failed to score")])
def test_a_shadow_that_cannot_answer_is_logged_as_such_and_the_decision_stands(parts, shadow, error):
    blueprints, log, _ = parts
    records = decide_all(Decider(blueprints, log, models=Registry(Scored("m000001"), shadow=("m000002", shadow))), 5)
    assert {r.action for r in records} == {"true"} and not any(r.is_default for r in records)
    assert {r.shadow["error"] for r in records} == {error}
