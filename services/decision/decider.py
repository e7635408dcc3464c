"""Makes a decision: validate against the blueprint, fetch features, score with the live
model, apply the policy, log durably, answer. Plain Python; the gRPC adapter is server.py."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Protocol

from opentelemetry.trace import StatusCode

from services.blueprints.spec import Blueprint, DecisionType
from services.blueprints.store import BlueprintStore
from services.decision.batcher import BatchTimeout, MicroBatcher
from services.decision.policies import choose, choose_value, greedy_order
from services.decisions.log import DecisionLog
from services.experiments.experiment import Arm, subject_key, with_overrides
from services.experiments.store import ExperimentStore
from services.decisions.record import DecisionRecord, DefaultReason, FeatureScalar
from services.models.encoding import ACTION_COLUMN, VALUE_COLUMN
from services.platform import telemetry
from services.features.store import FeaturesUnavailable
from services.platform.errors import DeadlineExceeded, NotFound
from services.platform.telemetry import Telemetry, current_traceparent
from services.platform.validation import MAX_KEY_VALUE, Violations

log = logging.getLogger("looper.decision")

MAX_CANDIDATES = 500


@dataclass(frozen=True)
class CandidateInput:
    action_id: str
    features: dict[str, FeatureScalar] = field(default_factory=dict)


@dataclass(frozen=True)
class DecideCommand:
    use_case: str
    decision_id: str
    subject: dict[str, str]
    context: dict[str, FeatureScalar] = field(default_factory=dict)
    candidates: tuple[CandidateInput, ...] = ()
    deadline: float | None = None  # time.monotonic() by which the caller needs the answer

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def budget(self) -> float | None:
        """How long a dependency may take: the time left, less a fifth of it (at least 5 ms)
        kept for deciding and logging, so a slow dependency still leaves a default decision
        that makes the deadline."""
        remaining = self.remaining()
        return None if remaining is None else remaining - max(0.005, 0.2 * remaining)


class FeatureSource(Protocol):
    def fetch(self, blueprint: Blueprint, subject: dict[str, str]) -> dict[str, FeatureScalar]:
        """The subject's Feast features, by column name (``view__feature``)."""


class ScoringModel(Protocol):
    version: str

    def score(self, rows: list[dict[str, FeatureScalar]]) -> list[float]:
        """One score per row: a probability for classifiers, a value for regression."""


class LiveModels(Protocol):
    def get(self, use_case: str) -> ScoringModel | None:
        """The model serving a use case, or None (none promoted yet, or none loadable)."""

    def load_failed(self, use_case: str) -> bool:
        """Whether the live version of the use case could not be loaded."""

    def version(self, use_case: str, version: str) -> ScoringModel | None:
        """A registered version by name (an experiment arm's), or None when it does not load."""

    def shadow(self, use_case: str) -> tuple[str, ScoringModel | None] | None:
        """The version in shadow and its model (None when it does not load), or None."""


@dataclass
class Plan:
    """How one decision is made: by which model (None: the default decision, for
    ``reason``), on which rows, under which experiment arm and policy (the blueprint with
    the arm's overrides), and which model in shadow also scores it."""

    model: ScoringModel | None
    rows: list[dict]
    actions: list[str]
    reason: DefaultReason
    policy: Blueprint
    arm: str = ""
    shadow_version: str = ""
    shadow: ScoringModel | None = None


class NoFeatures:
    """A FeatureSource for use cases without Feast features."""

    def fetch(self, blueprint: Blueprint, subject: dict[str, str]) -> dict[str, FeatureScalar]:
        return {}


class NoModels:
    """No models at all: every decision is the default (also the base of test doubles)."""

    def get(self, use_case: str) -> ScoringModel | None:
        return None

    def load_failed(self, use_case: str) -> bool:
        return False

    def version(self, use_case: str, version: str) -> ScoringModel | None:
        return None

    def shadow(self, use_case: str) -> tuple[str, ScoringModel | None] | None:
        return None


class Decider:
    """Decisions arriving together share one feature-store read and one model call (two
    ``MicroBatcher``s); each waits no longer than its caller's deadline, and a decision whose
    deadline has passed is not logged (its caller has given up on it)."""

    def __init__(self, blueprints: BlueprintStore, decision_log: DecisionLog,
                 features: FeatureSource | None = None, models: LiveModels | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 telemetry: Telemetry | None = None, experiments: ExperimentStore | None = None):
        self.blueprints = blueprints
        self.experiments = experiments
        self.decision_log = decision_log
        self.features = features or NoFeatures()
        self.models = models or NoModels()
        self.clock = clock
        self.telemetry = telemetry or Telemetry()
        self._fetching = MicroBatcher("feature-fetch", self._fetch_many)
        self._scoring = MicroBatcher("inference", _predict_many)
        self._arm_policies: dict[tuple[str, str, str, str], Blueprint] = {}  # (use case, digest, experiment, arm)

    def close(self) -> None:
        self._fetching.close()
        self._scoring.close()

    def decide(self, command: DecideCommand) -> tuple[DecisionRecord, bool]:
        """Returns the decision and whether it is a replay of an earlier one with this id."""
        started = time.perf_counter()
        with self.telemetry.tracer.start_as_current_span("looper.decide", attributes={
                telemetry.USE_CASE: command.use_case, telemetry.DECISION_ID: command.decision_id}) as span:
            blueprint = self.blueprints.latest(command.use_case)
            validate_command(blueprint, command)
            record, replayed = self.decision_log.record_once(command.use_case, command.decision_id,
                                                             lambda: self._decide(blueprint, command))
            if replayed:
                span.set_attribute("looper.replayed", True)
                return record, True
            span.set_attributes(decision_attributes(record))
        self._measure(record, started)
        return record, False

    def decide_many(self, commands: list[DecideCommand]) -> list[tuple[DecisionRecord, bool] | Exception]:
        """Many decisions in one call: each answered, or failed on its own; the new ones are
        logged in one durable write."""
        started = time.perf_counter()
        answers: list[tuple[DecisionRecord, bool] | Exception | None] = [None] * len(commands)
        requests, positions = [], []
        for i, command in enumerate(commands):
            try:
                blueprint = self.blueprints.latest(command.use_case)
                validate_command(blueprint, command)
            except Exception as err:  # noqa: BLE001 - this item's own error
                answers[i] = err
                continue
            requests.append((blueprint, command))
            positions.append(i)
        made = self._decide_together(requests)
        requests = [(c.use_case, c.decision_id, lambda r=r: _returned(r)) for (_, c), r in zip(requests, made)]
        with self.telemetry.tracer.start_as_current_span("looper.decide_batch", attributes={
                "looper.requests": len(commands)}):
            for i, answer in zip(positions, self.decision_log.record_many(requests)):
                answers[i] = answer
                if not isinstance(answer, Exception) and not answer[1]:
                    self._measure(answer[0], started)
        return answers

    def get(self, use_case: str, decision_id: str) -> DecisionRecord:
        self.blueprints.latest(use_case)  # NOT_FOUND for an unknown use case
        record = self.decision_log.find(use_case, decision_id)
        if record is None:
            raise NotFound(f"decision {decision_id!r} of use case {use_case!r} was not found")
        return record

    def _decide(self, blueprint: Blueprint, command: DecideCommand) -> DecisionRecord:
        """One decision, its feature read and model call batched with concurrent ones."""
        tracer = self.telemetry.tracer
        with tracer.start_as_current_span("looper.feature_fetch") as span:
            features, reason = self._fetched(lambda: self._fetching.submit((blueprint, command.subject),
                                                                           command.budget()), span)
        plan = self._plan(blueprint, command, features, reason)
        scores = shadow_scores = None
        if plan.model is not None:
            with tracer.start_as_current_span("looper.inference", attributes={
                    telemetry.MODEL_VERSION: plan.model.version, "looper.rows": len(plan.rows)}):
                scores, plan.reason = self._scored(lambda: self._scoring.submit((blueprint, plan.model, plan.rows),
                                                                                command.budget()), plan.model)
        if plan.shadow is not None:
            with tracer.start_as_current_span("looper.shadow_inference", attributes={
                    telemetry.MODEL_VERSION: plan.shadow.version}):
                shadow_scores = _attempt(lambda: self._scoring.submit((blueprint, plan.shadow, plan.rows),
                                                                      command.budget()))
        return self._record(blueprint, command, features, plan, scores, shadow_scores)

    def _decide_together(self, items: list[tuple[Blueprint, DecideCommand]]) -> list[DecisionRecord | Exception]:
        """Several decisions of one call (DecideBatch): one feature read and one model call."""
        with self.telemetry.tracer.start_as_current_span("looper.feature_fetch"):
            fetched = self._fetch_many([(b, c.subject) for b, c in items])
        plans = []
        for (blueprint, command), found in zip(items, fetched):
            features, reason = self._fetched(lambda f=found: _returned(f))
            plans.append((blueprint, command, features, self._plan(blueprint, command, features, reason)))
        with self.telemetry.tracer.start_as_current_span("looper.inference"):
            scored = iter(_predict_many([(b, m, p.rows) for b, _, _, p in plans
                                         for m in (p.model, p.shadow) if m is not None]))
        records = []
        for blueprint, command, features, plan in plans:
            scores = shadow_scores = None
            if plan.model is not None:
                scores, plan.reason = self._scored(lambda a=next(scored): _returned(a), plan.model)
            if plan.shadow is not None:
                shadow_scores = next(scored)
            try:
                records.append(self._record(blueprint, command, features, plan, scores, shadow_scores))
            except Exception as err:  # noqa: BLE001 - this item's own error
                records.append(err)
        return records

    def _fetch_many(self, requests: list[tuple[Blueprint, dict[str, str]]]) -> list:
        fetch_many = getattr(self.features, "fetch_many", None)
        if fetch_many is not None:
            return fetch_many(requests)
        return [_attempt(lambda b=b, s=s: self.features.fetch(b, s)) for b, s in requests]

    def _fetched(self, fetch: Callable[[], dict], span=None) -> tuple[dict, DefaultReason]:
        """The features, or none and the reason to fall back: the feature store failed or
        did not answer before the deadline."""
        try:
            features = dict(fetch())
        except (FeaturesUnavailable, BatchTimeout) as err:
            self.telemetry.feature_fetch_failures.add(1, {"looper.reason": type(err).__name__})
            if span is not None:
                span.set_status(StatusCode.ERROR, str(err))
            return {}, DefaultReason.FEATURES_UNAVAILABLE
        if span is not None:
            span.set_attribute("looper.feature_count", len(features))
        return features, DefaultReason.UNSPECIFIED

    def _plan(self, blueprint: Blueprint, command: DecideCommand, features: dict, reason: DefaultReason) -> Plan:
        """The model to ask (None: decide by default), its input rows, the subject's arm
        and the policy it runs, and the shadow model to ask as well."""
        features.update(command.context)
        actions, rows = model_rows(blueprint, command, features)
        arm = self._arm(blueprint, command)
        policy = self._arm_policy(blueprint, arm)
        model, reason = (None, reason) if reason != DefaultReason.UNSPECIFIED else self._model(blueprint, arm)
        plan = Plan(model, rows, actions, reason, policy, arm=arm[1].name if arm else "")
        shadow = self.models.shadow(blueprint.name) if model is not None else None
        if shadow is not None and blueprint.decision_type != DecisionType.REGRESSION:
            plan.shadow_version, plan.shadow = shadow
        return plan

    def _arm(self, blueprint: Blueprint, command: DecideCommand) -> tuple[str, Arm] | None:
        """(experiment id, the subject's arm) while the use case runs an experiment."""
        experiment = self.experiments.active(blueprint.name) if self.experiments else None
        if experiment is None:
            return None
        return experiment.experiment_id, experiment.assign(subject_key(blueprint, command.subject))

    def _arm_policy(self, blueprint: Blueprint, arm: tuple[str, Arm] | None) -> Blueprint:
        if arm is None or not arm[1].policy:
            return blueprint
        key = (blueprint.name, blueprint.digest(), arm[0], arm[1].name)
        policy = self._arm_policies.get(key)
        if policy is None:
            if len(self._arm_policies) > 1000:  # experiments come and go: forget old ones
                self._arm_policies.clear()
            policy = self._arm_policies[key] = with_overrides(blueprint, arm[1].policy)
        return policy

    def _scored(self, score: Callable[[], dict], model: ScoringModel):
        try:
            return score(), DefaultReason.UNSPECIFIED
        except Exception:  # a broken or slow model must not fail the product: fall back
            log.exception("model %s failed to score; using the default decision", model.version)
            return None, DefaultReason.MODEL_UNAVAILABLE

    def _record(self, blueprint: Blueprint, command: DecideCommand, features: dict, plan: Plan,
                scores, shadow_scores) -> DecisionRecord:
        remaining = command.remaining()
        if remaining is not None and remaining <= 0:
            raise DeadlineExceeded("the call's deadline passed before the decision was made; it was not logged")
        model = plan.model if scores else None
        common = dict(decision_id=command.decision_id, use_case=blueprint.name,
                      model_version=model.version if model else "", blueprint_version=blueprint.version,
                      default_reason=plan.reason, decide_time=self.clock(), subject=dict(command.subject),
                      features=features, context=dict(command.context), traceparent=current_traceparent(),
                      arm=plan.arm, shadow=shadow_of(plan, shadow_scores))
        if blueprint.decision_type == DecisionType.REGRESSION:
            value = scores[blueprint.primary_label.outcome][0] if scores else float(blueprint.default_decision)
            return DecisionRecord(action="", score=value, propensity=1.0, is_exploration=False, **common)
        with self.telemetry.tracer.start_as_current_span("looper.policy"):
            if blueprint.decision_type == DecisionType.NUMERIC:
                choice = choose_value(plan.policy, command.decision_id, scores)
            else:
                choice = choose(plan.policy, command.decision_id, plan.actions, scores,
                                [dict(c.features) for c in command.candidates] if command.candidates else None)
        return DecisionRecord(action=choice.action, score=choice.score, propensity=choice.propensity,
                              is_exploration=choice.is_exploration, ranking=choice.ranking,
                              predictions=choice.predictions, value=choice.value, **common)

    def _model(self, blueprint: Blueprint, arm: tuple[str, Arm] | None) -> tuple[ScoringModel | None, DefaultReason]:
        if self.blueprints.is_paused(blueprint.name):
            return None, DefaultReason.PAUSED
        wanted = arm[1].model if arm else "live"
        if wanted == "default":
            return None, DefaultReason.EXPERIMENT_ARM
        model = self.models.get(blueprint.name) if wanted == "live" else self.models.version(blueprint.name, wanted)
        if model is not None:
            return model, DefaultReason.UNSPECIFIED
        failed = self.models.load_failed(blueprint.name) if wanted == "live" else True
        return None, DefaultReason.MODEL_UNAVAILABLE if failed else DefaultReason.NO_MODEL

    def _measure(self, record: DecisionRecord, started: float) -> None:
        result = "exploration" if record.is_exploration else "default" if record.is_default else "model"
        attributes = {telemetry.USE_CASE: record.use_case, "looper.result": result}
        self.telemetry.decisions.add(1, attributes)
        self.telemetry.decision_latency.record((time.perf_counter() - started) * 1000, attributes)


def shadow_of(plan: Plan, scores) -> dict:
    """What the model in shadow would have done: its greedy choice (no exploration: the
    policy it would run once live explores on top), or why it could not say."""
    if not plan.shadow_version:
        return {}
    if plan.shadow is None:
        return {"model_version": plan.shadow_version, "error": "the model did not load"}
    if scores is None or isinstance(scores, BaseException):
        return {"model_version": plan.shadow_version, "error": "the model failed to score"}
    best = greedy_order(plan.policy, plan.actions, scores)[0]
    primary = scores[plan.policy.primary_label.outcome]
    return {"model_version": plan.shadow_version, "action": plan.actions[best], "score": float(primary[best])}


def _returned(value):
    """A precomputed result, or its error raised."""
    if isinstance(value, BaseException):
        raise value
    return value


def _attempt(call: Callable):
    try:
        return call()
    except Exception as err:  # noqa: BLE001 - returned, to be raised for its own item
        return err


def _predict_many(items: list[tuple[Blueprint, ScoringModel, list[dict]]]) -> list:
    """One model call per model for the rows of every decision that uses it; each decision
    gets its own predictions (or its own error)."""
    results: list = [None] * len(items)
    by_model: dict[int, list[int]] = {}
    for i, (_, model, _) in enumerate(items):
        by_model.setdefault(id(model), []).append(i)
    for positions in by_model.values():
        blueprint, model, _ = items[positions[0]]
        rows = [row for i in positions for row in items[i][2]]
        try:
            predicted = _model_predictions(model, rows, blueprint)
        except Exception as err:  # noqa: BLE001 - every decision of this model is told
            for i in positions:
                results[i] = err
            continue
        start = 0
        for i in positions:
            count = len(items[i][2])
            part = {outcome: values[start:start + count] for outcome, values in predicted.items()}
            results[i] = _attempt(lambda b=items[i][0], p=part: _weighed(b, p, model))
            start += count
    return results


def _model_predictions(model: ScoringModel, rows: list[dict], blueprint: Blueprint) -> dict[str, list[float]]:
    predict = getattr(model, "predict", None)
    return predict(rows) if predict else {blueprint.primary_label.outcome: model.score(rows)}


def _weighed(blueprint: Blueprint, predicted: dict[str, list[float]], model: ScoringModel) -> dict[str, list[float]]:
    """The predictions of every outcome the blueprint weighs (see ``predictions``)."""
    if len(predicted) == 1 and blueprint.primary_label.outcome not in predicted:
        predicted = {blueprint.primary_label.outcome: next(iter(predicted.values()))}
    missing = set(blueprint.weights) - set(predicted)
    if missing:
        raise LookupError(f"model {model.version} predicts no {sorted(missing)}; it predates the blueprint")
    return {outcome: predicted[outcome] for outcome in blueprint.weights}


def predictions(blueprint: Blueprint, model: ScoringModel, rows: list[dict]) -> dict[str, list[float]]:
    """Per outcome the blueprint weighs, the model's predictions for the rows. A model that
    predicts only one label (or predates naming it) predicts the primary one; a model that
    lacks an outcome the blueprint now weighs cannot serve it (the blueprint gained a label
    since it was trained): that raises, and the decision falls back to the default."""
    return _weighed(blueprint, _model_predictions(model, rows, blueprint), model)


def decision_attributes(record: DecisionRecord) -> dict:
    """What an on-call engineer needs on the decision's span; never feature values."""
    return {telemetry.MODEL_VERSION: record.model_version, telemetry.BLUEPRINT_VERSION: record.blueprint_version,
            "looper.is_default": record.is_default, "looper.default_reason": record.default_reason.name.lower(),
            "looper.is_exploration": record.is_exploration, "looper.action": record.action,
            "looper.feature_count": len(record.features)}


def model_rows(blueprint: Blueprint, command: DecideCommand,
               features: dict[str, FeatureScalar]) -> tuple[list[str], list[dict]]:
    """The actions to score and one model input row per action: the subject's features plus
    the action (and, for candidates, the candidate's own features)."""
    if blueprint.decision_type == DecisionType.REGRESSION:
        return [], [dict(features)]
    if blueprint.decision_type == DecisionType.NUMERIC:
        grid = blueprint.numeric.grid
        return [str(v) for v in grid], [{**features, VALUE_COLUMN: v} for v in grid]
    if command.candidates:
        return ([c.action_id for c in command.candidates],
                [{**features, **c.features, ACTION_COLUMN: c.action_id} for c in command.candidates])
    actions = list(blueprint.choices)
    return actions, [{**features, ACTION_COLUMN: a} for a in actions]


_PYTHON_TYPES = {"double": (float, int), "int64": (int,), "string": (str,), "bool": (bool,)}
MAX_CONTEXT_KEYS = 256


def _check_typed(violations: Violations, prefix: str, values: dict, declared: dict) -> None:
    if not violations.require_at_most(prefix, len(values), MAX_CONTEXT_KEYS, "keys"):
        return
    for name, value in values.items():
        if name not in declared:
            violations.add(f"{prefix}.{name}"[:200], f"is not declared by the blueprint; declared: {sorted(declared)}")
            continue
        expected = declared[name].value
        if value is not None and (not isinstance(value, _PYTHON_TYPES[expected])
                                  or (expected != "bool" and isinstance(value, bool))):
            violations.add(f"{prefix}.{name}", f"must be of type {expected}, got {type(value).__name__}")
        else:
            violations.check_value(f"{prefix}.{name}", value)


def validate_command(blueprint: Blueprint, command: DecideCommand) -> None:
    """Checks the request against the blueprint; raises InvalidArgument naming each field."""
    v = Violations()
    v.require_id("decision_id", command.decision_id)
    missing = [e for e in blueprint.entities if not command.subject.get(e)]
    for entity in missing:
        v.add(f"subject.{entity}", "is required by the blueprint")
    for key, value in command.subject.items():
        if key not in blueprint.entities:
            v.add(f"subject.{key}"[:200], f"is not an entity of the use case; expected {list(blueprint.entities)}")
        else:
            v.check_value(f"subject.{key}", value, MAX_KEY_VALUE)
    _check_typed(v, "context", command.context, blueprint.context_features)
    _check_candidates(v, blueprint, command.candidates)
    v.raise_if_any()


def _check_candidates(v: Violations, blueprint: Blueprint, candidates: tuple[CandidateInput, ...]) -> None:
    kind = blueprint.decision_type
    if kind in (DecisionType.BINARY, DecisionType.REGRESSION, DecisionType.NUMERIC) and candidates:
        v.add("candidates", f"are not allowed for a {kind.spelling} use case")
        return
    if kind == DecisionType.RANKING and not candidates:
        v.add("candidates", "are required for a ranking use case")
    if not v.require_at_most("candidates", len(candidates), MAX_CANDIDATES, "items"):
        return
    seen: set[str] = set()
    for i, candidate in enumerate(candidates):
        v.require_id(f"candidates[{i}].action_id", candidate.action_id)
        if candidate.action_id in seen:
            v.add(f"candidates[{i}].action_id", "repeats an earlier candidate")
        seen.add(candidate.action_id)
        if kind == DecisionType.MULTI_ACTION and candidate.action_id not in blueprint.actions:
            v.add(f"candidates[{i}].action_id", f"is not an action of the use case {list(blueprint.actions)}")
        _check_typed(v, f"candidates[{i}].features", candidate.features, blueprint.candidate_features)
