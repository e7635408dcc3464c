"""Makes a decision: validate against the blueprint, fetch features, score with the live
model, apply the policy, log durably, answer. Plain Python; the gRPC adapter is server.py."""

from __future__ import annotations

import functools
import logging
import math
import time
from collections import Counter
from time import time_ns
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Protocol

from opentelemetry import trace
from opentelemetry.trace import StatusCode

from services.blueprints.spec import Blueprint, DecisionType
from services.blueprints.store import BlueprintStore
from services.decision.batcher import AsyncBatcher, BatchTimeout, MicroBatcher
from services.decision.policies import choose, choose_value, greedy_order
from services.decisions.log import DecisionLog
from services.experiments.experiment import Arm, subject_key, with_overrides
from services.experiments.store import ExperimentStore
from services.decisions.record import DecisionRecord, DefaultReason, FeatureScalar
from services.models.encoding import ACTION_COLUMN, VALUE_COLUMN
from services.platform import telemetry
from services.features.store import FeaturesUnavailable
from services.platform.errors import DeadlineExceeded, NotFound
from services.platform.telemetry import Telemetry, traceparent_of
from services.platform.validation import (MAX_KEY_VALUE, MAX_STRING, Violations, are_valid_ids, is_plain_value,
                                         is_valid_id)

log = logging.getLogger("looper.decision")

MAX_CANDIDATES = 500


# Not frozen, nor ScoredCandidate: a ranking makes a hundred of each a call, and a frozen
# dataclass's __init__ (an object.__setattr__ a field) took 0.59 us against 0.20 unfrozen.
@dataclass(slots=True)
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


@dataclass
class Call:
    """One decision on its way through a batch: its command, the span it is traced under
    (its own ``looper.decide``, or its DecideBatch call's ``looper.decide_batch``), and what
    the batch has found for it so far."""

    command: DecideCommand
    span: trace.Span = trace.INVALID_SPAN
    started: float = 0.0  # time.perf_counter() when the call reached the Decider
    blueprint: Blueprint | None = None
    features: dict = field(default_factory=dict)
    reason: DefaultReason = DefaultReason.UNSPECIFIED  # why the features are missing, if they are
    failure: Exception | None = None  # the feature read's unexpected error: the decision fails with it
    plan: Plan | None = None
    scores: dict | None = None
    shadow_scores: object = None


@dataclass
class Lookups:
    """What serves each use case as one batch sees it, each looked up once per batch rather
    than once per decision: its running experiment, whether it is paused, its live model
    and the model in shadow."""

    experiment: Callable[[str], object]
    paused: Callable[[str], bool]
    live: Callable[[str], ScoringModel | None]
    shadow: Callable[[str], tuple[str, ScoringModel | None] | None]


# How long a batch of decisions smaller than the one before waits for as many (see
# MicroBatcher): under a steady load it keeps concurrent calls in one batch, which shares
# one id claim, one feature read, one model call and one log write.
DECIDE_LINGER_SECONDS = 0.0005
# The same on the asyncio server, where an answered caller's next call comes back through the
# event loop behind the other calls' answers, so the wait must cover a batch's answers. A/B on
# two processes, interleaved, three rounds each, closed loop (each caller waits for its answer):
# 4 ms made 2,297-2,662 Decide calls/s at concurrency 16 against 1,988-2,133 with 2 ms (which
# made 2,271-2,427 against 1,641-1,809 with none, in an earlier session), and 2,763-3,101 at 64
# against 2,767-2,844; 3, 6 and 8 ms about as many as 4, 1 ms fewer than 2. A lone caller never
# waits (a batch waits only for as many as the last had). With open-loop traffic a linger that
# always waited cost latency; AsyncBatcher now stops for a while after a wait in vain (see
# ``AsyncBatcher._linger``), which made 8-13% fewer closed-loop calls/s at 16 and 2-9% fewer
# at 64 than always waiting (medians of two interleaved runs of three rounds).
DECIDE_ASYNC_LINGER_SECONDS = 0.004


class Decider:
    """Makes decisions together: concurrent ``decide_async`` calls (the asyncio server's)
    queue in one ``AsyncBatcher``, concurrent ``decide`` calls (callers on threads) in one
    ``MicroBatcher``, and each batch of them (like the items of one ``decide_many`` call) shares one claim of
    its ids, one read per feature view, one call per model and one durable write. Each caller
    waits no longer than its deadline; a feature store that does not answer in time gives
    the default decision; a decision whose deadline has passed is not logged (its caller
    has given up on it)."""

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
        self._deciding = MicroBatcher("decide", self._decide_together, linger=DECIDE_LINGER_SECONDS)
        self._gathering = AsyncBatcher("decide-async", self._decide_together, linger=DECIDE_ASYNC_LINGER_SECONDS)
        self._fetching = MicroBatcher("feature-fetch", lambda reads: [self._fetch_many(r) for r in reads])
        self._arm_policies: dict[tuple[str, str, str, str], Blueprint] = {}  # (use case, digest, experiment, arm)

    def close(self) -> None:
        self._gathering.close()
        self._deciding.close()
        self._fetching.close()

    def decide(self, command: DecideCommand) -> tuple[DecisionRecord, bool]:
        """Returns the decision and whether it is a replay of an earlier one with this id."""
        with self._decide_span(command) as span:
            try:
                answer = self._deciding.submit(Call(command, span, time.perf_counter()), command.remaining())
            except BatchTimeout:
                raise DeadlineExceeded("the call's deadline passed before its decision was made") from None
            return _answered(span, answer)

    async def decide_async(self, command: DecideCommand) -> tuple[DecisionRecord, bool]:
        """``decide`` for a caller on the asyncio server's event loop: the decision is made
        with the calls that queue meanwhile, on the batcher's thread."""
        with self._decide_span(command) as span:
            try:
                answer = await self._gathering.submit(Call(command, span, time.perf_counter()), command.remaining())
            except BatchTimeout:
                raise DeadlineExceeded("the call's deadline passed before its decision was made") from None
            return _answered(span, answer)

    def _decide_span(self, command: DecideCommand):
        return self.telemetry.span_below("looper.decide", {
            telemetry.USE_CASE: command.use_case, telemetry.DECISION_ID: command.decision_id})

    def decide_many(self, commands: list[DecideCommand]) -> list[tuple[DecisionRecord, bool] | Exception]:
        """Many decisions in one call, made together as a batch of concurrent calls is: each
        answered, or failed on its own; the new ones are logged in one durable write."""
        started = time.perf_counter()
        with self.telemetry.tracer.start_as_current_span("looper.decide_batch", attributes={
                "looper.requests": len(commands)}) as span:
            return self._decide_together([Call(command, span, started) for command in commands])

    def get(self, use_case: str, decision_id: str) -> DecisionRecord:
        self.blueprints.latest(use_case)  # NOT_FOUND for an unknown use case
        record = self.decision_log.find(use_case, decision_id)
        if record is None:
            raise NotFound(f"decision {decision_id!r} of use case {use_case!r} was not found")
        return record

    def _decide_together(self, calls: list[Call]) -> list[tuple[DecisionRecord, bool] | Exception]:
        """A batch: each decision checked against its blueprint; then the log claims the new
        ids, they are decided together (``_make``) and logged in one durable write, and the
        ids already used are answered from the log."""
        answers: list[tuple[DecisionRecord, bool] | Exception | None] = [None] * len(calls)
        latest = _once_each(self.blueprints.latest)
        checked: list[int] = []
        for i, call in enumerate(calls):
            try:
                call.blueprint = latest(call.command.use_case)
                validate_command(call.blueprint, call.command)
                _check_deadline(call.command)
            except Exception as err:  # noqa: BLE001 - this decision's own error
                answers[i] = err
                continue
            checked.append(i)
        stages = Stages(self.telemetry.tracer, calls)
        made: list[Call] = []

        def make(positions: list[int]) -> list[DecisionRecord | Exception]:
            made.extend(calls[checked[p]] for p in positions)
            return self._make(made, stages)

        logged = self.decision_log.record_together(
            [(calls[i].command.use_case, calls[i].command.decision_id) for i in checked], make)
        for i, answer in zip(checked, logged):
            answers[i] = answer
        new = [(calls[i], answer[0]) for i, answer in zip(checked, logged)
               if not isinstance(answer, Exception) and not answer[1]]
        stages.done("looper.decision_log.append", [call for call, _ in new])
        self._measure(new)
        return answers

    def _make(self, calls: list[Call], stages: Stages) -> list[DecisionRecord | Exception]:
        """The decisions of newly claimed ids, made together: one feature read, one call per
        model (and per model in shadow), then each decision's policy and record."""
        self._fetch(calls)
        stages.done("looper.feature_fetch", calls,
                    lambda group: {"looper.feature_count": sum(len(c.features) for c in group)},
                    lambda group: "; ".join(sorted({str(c.failure or c.reason.name) for c in group
                                                    if c.failure or c.reason != DefaultReason.UNSPECIFIED})))
        lookups = Lookups(experiment=_once_each(self.experiments.active if self.experiments else lambda _: None),
                          paused=_once_each(self.blueprints.is_paused), live=_once_each(self.models.get),
                          shadow=_once_each(self.models.shadow))
        for call in calls:
            call.plan = self._plan(call, lookups)
        scored = [c for c in calls if c.plan.model is not None]
        self._score(scored)
        stages.done("looper.inference", scored, lambda group: {
            telemetry.MODEL_VERSION: group[0].plan.model.version, "looper.rows": sum(len(c.plan.rows) for c in group)})
        shadowed = [c for c in calls if c.plan.shadow is not None]
        if shadowed:
            for call, scores in zip(shadowed, _predict_many([(c.blueprint, c.plan.shadow, c.plan.rows)
                                                             for c in shadowed])):
                call.shadow_scores = scores
            stages.done("looper.shadow_inference", shadowed,
                        lambda group: {telemetry.MODEL_VERSION: group[0].plan.shadow.version})
        records = [_attempt(lambda c=c: self._record(c)) for c in calls]
        stages.done("looper.policy", [c for c, r in zip(calls, records) if not isinstance(r, Exception)
                                      and c.blueprint.decision_type != DecisionType.REGRESSION])
        return records

    def _fetch(self, calls: list[Call]) -> None:
        """Every decision's features, read for the whole batch on the feature-fetch
        batcher's thread: a feature store that does not answer within a decision's budget
        gives that decision the default (the others may wait up to their own)."""
        pending = self._fetching.enqueue([(c.blueprint, c.command.subject) for c in calls])
        earliest_first = sorted(range(len(calls)), key=lambda i: _budget_order(calls[i].command))
        for i in earliest_first:
            call = calls[i]
            try:
                found = pending.result(call.command.budget())[i]
            except BatchTimeout as err:
                found = err
            if isinstance(found, (FeaturesUnavailable, BatchTimeout)):
                self.telemetry.feature_fetch_failures.add(1, {"looper.reason": type(found).__name__})
                call.reason = DefaultReason.FEATURES_UNAVAILABLE
            elif isinstance(found, Exception):
                call.failure = found
            else:
                call.features = dict(found)

    def _fetch_many(self, requests: list[tuple[Blueprint, dict[str, str]]]) -> list:
        fetch_many = getattr(self.features, "fetch_many", None)
        if fetch_many is not None:
            return fetch_many(requests)
        return [_attempt(lambda b=b, s=s: self.features.fetch(b, s)) for b, s in requests]

    def _plan(self, call: Call, lookups: Lookups) -> Plan:
        """The model to ask (None: decide by default), its input rows, the subject's arm
        and the policy it runs, and the shadow model to ask as well."""
        blueprint, command = call.blueprint, call.command
        call.features.update(command.context)
        actions, rows = model_rows(blueprint, command, call.features)
        arm = self._arm(blueprint, command, lookups)
        policy = self._arm_policy(blueprint, arm)
        model, reason = ((None, call.reason) if call.reason != DefaultReason.UNSPECIFIED
                         else self._model(blueprint, arm, lookups))
        plan = Plan(model, rows, actions, reason, policy, arm=arm[1].name if arm else "")
        shadow = lookups.shadow(blueprint.name) if model is not None else None
        if shadow is not None and blueprint.decision_type != DecisionType.REGRESSION:
            plan.shadow_version, plan.shadow = shadow
        return plan

    def _arm(self, blueprint: Blueprint, command: DecideCommand, lookups: Lookups) -> tuple[str, Arm] | None:
        """(experiment id, the subject's arm) while the use case runs an experiment."""
        experiment = lookups.experiment(blueprint.name)
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

    def _score(self, calls: list[Call]) -> None:
        """The live (or arm's) model's predictions for each decision; a model that fails
        leaves its decisions to the default (a broken model must not fail the product)."""
        for call, scores in zip(calls, _predict_many([(c.blueprint, c.plan.model, c.plan.rows) for c in calls])):
            if isinstance(scores, Exception):
                log.error("model %s failed to score; using the default decision", call.plan.model.version,
                          exc_info=scores)
                call.plan.reason = DefaultReason.MODEL_UNAVAILABLE
            else:
                call.scores = scores

    def _record(self, call: Call) -> DecisionRecord:
        blueprint, command, plan, scores = call.blueprint, call.command, call.plan, call.scores
        if call.failure is not None:
            raise call.failure
        _check_deadline(command)
        model = plan.model if scores else None
        common = dict(decision_id=command.decision_id, use_case=blueprint.name,
                      model_version=model.version if model else "", blueprint_version=blueprint.version,
                      default_reason=plan.reason, decide_time=self.clock(), subject=dict(command.subject),
                      features=call.features, context=dict(command.context), traceparent=traceparent_of(call.span),
                      arm=plan.arm, shadow=shadow_of(plan, call.shadow_scores))
        if blueprint.decision_type == DecisionType.REGRESSION:
            value = scores[blueprint.primary_label.outcome][0] if scores else float(blueprint.default_decision)
            return DecisionRecord(action="", score=value, propensity=1.0, is_exploration=False, **common)
        if blueprint.decision_type == DecisionType.NUMERIC:
            choice = choose_value(plan.policy, command.decision_id, scores)
        else:
            choice = choose(plan.policy, command.decision_id, plan.actions, scores,
                            [dict(c.features) for c in command.candidates] if command.candidates else None)
        return DecisionRecord(action=choice.action, score=choice.score, propensity=choice.propensity,
                              is_exploration=choice.is_exploration, ranking=choice.ranking,
                              predictions=choice.predictions, value=choice.value, **common)

    def _model(self, blueprint: Blueprint, arm: tuple[str, Arm] | None,
               lookups: Lookups) -> tuple[ScoringModel | None, DefaultReason]:
        if lookups.paused(blueprint.name):
            return None, DefaultReason.PAUSED
        wanted = arm[1].model if arm else "live"
        if wanted == "default":
            return None, DefaultReason.EXPERIMENT_ARM
        model = lookups.live(blueprint.name) if wanted == "live" else self.models.version(blueprint.name, wanted)
        if model is not None:
            return model, DefaultReason.UNSPECIFIED
        failed = self.models.load_failed(blueprint.name) if wanted == "live" else True
        return None, DefaultReason.MODEL_UNAVAILABLE if failed else DefaultReason.NO_MODEL

    def _measure(self, made: list[tuple[Call, DecisionRecord]]) -> None:
        """The batch's new decisions, by use case and result: one count for each kind, and
        each one's latency from its call's arrival to its durable write. Recorded here in one
        loop: spread over the callers' answers, each record cost several times as much (7 us
        in a loop; about 30 us by its share of a py-spy profile when spread)."""
        now = time.perf_counter()
        kinds = [_measured_as(record) for _, record in made]
        for (call, _), kind in zip(made, kinds):
            self.telemetry.decision_latency.record((now - call.started) * 1000, _attributes(*kind))
        for kind, count in Counter(kinds).items():
            self.telemetry.decisions.add(count, _attributes(*kind))


class Stages:
    """The stages of one batch (feature fetch, inference, policy, log append), each timed
    once for the whole batch and shown in the trace of each decision that is sampled, as a
    child of its span (once per span: a DecideBatch call's decisions share theirs). Decisions
    that are not sampled cost no span work."""

    def __init__(self, tracer: trace.Tracer, calls: list[Call]):
        self.tracer = tracer
        self.recording = any(call.span.is_recording() for call in calls)  # else every stage is free
        self.began = time_ns()

    def done(self, name: str, calls: list[Call], attributes: Callable[[list[Call]], dict] = lambda group: {},
             failed: Callable[[list[Call]], str] = lambda group: "") -> None:
        """Ends the stage that began where the last one ended, for ``calls``."""
        start, end = self.began, time_ns()
        self.began = end
        if not self.recording:
            return
        groups: dict[int, list[Call]] = {}
        for call in calls:
            if call.span.is_recording():
                groups.setdefault(id(call.span), []).append(call)
        for group in groups.values():
            span = self.tracer.start_span(name, context=trace.set_span_in_context(group[0].span), start_time=start,
                                          attributes=attributes(group))
            error = failed(group)
            if error:
                span.set_status(StatusCode.ERROR, error)
            span.end(end_time=end)


def _answered(span: trace.Span, answer: tuple[DecisionRecord, bool]) -> tuple[DecisionRecord, bool]:
    record, replayed = answer
    if replayed:
        span.set_attribute("looper.replayed", True)
    elif span.is_recording():
        span.set_attributes(decision_attributes(record))
    return answer


def _measured_as(record: DecisionRecord) -> tuple[str, str]:
    """What a decision's figures are kept by: its use case and how it was made."""
    return record.use_case, "exploration" if record.is_exploration else "default" if record.is_default else "model"


@functools.lru_cache(maxsize=4096)
def _attributes(use_case: str, result: str) -> dict:
    """Their attributes, made once (read only: every figure of the kind shares them)."""
    return {telemetry.USE_CASE: use_case, "looper.result": result}


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


def _attempt(call: Callable):
    try:
        return call()
    except Exception as err:  # noqa: BLE001 - returned, to be raised for its own item
        return err


def _once_each(lookup: Callable):
    """``lookup`` remembering its answer for each argument (the lookups of one batch)."""
    seen: dict = {}

    def get(key):
        if key not in seen:
            seen[key] = lookup(key)
        return seen[key]

    return get


def _check_deadline(command: DecideCommand) -> None:
    remaining = command.remaining()
    if remaining is not None and remaining <= 0:
        raise DeadlineExceeded("the call's deadline passed before the decision was made; it was not logged")


def _budget_order(command: DecideCommand) -> float:
    """Earliest deadline first; decisions without one last."""
    return command.deadline if command.deadline is not None else math.inf


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
    """Each value declared by the blueprint, of its type, finite and bounded. A field's name
    is formed only for a violation: a ranking's hundred candidates carry hundreds of values."""
    if not violations.require_at_most(prefix, len(values), MAX_CONTEXT_KEYS, "keys"):
        return
    for name, value in values.items():
        expected = declared.get(name)
        if expected is None:
            violations.add(f"{prefix}.{name}"[:200], f"is not declared by the blueprint; declared: {sorted(declared)}")
        elif value is None:
            continue
        elif not isinstance(value, expected[0]) or (expected[1] != "bool" and isinstance(value, bool)):
            violations.add(f"{prefix}.{name}", f"must be of type {expected[1]}, got {type(value).__name__}")
        elif not is_plain_value(value):
            violations.check_value(f"{prefix}.{name}", value)


def _expected(declared: dict) -> dict[str, tuple[tuple[type, ...], str]]:
    """Per declared feature, the Python types its values may have and its type's name."""
    return {name: (_PYTHON_TYPES[kind.value], kind.value) for name, kind in declared.items()}


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
    _check_typed(v, "context", command.context, _expected(blueprint.context_features))
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
    typed = _plainly_typed([c.features for c in candidates], blueprint.candidate_features)
    if typed and _plainly_distinct(blueprint, [c.action_id for c in candidates]):
        return
    seen: set[str] = set()
    declared = _expected(blueprint.candidate_features)
    for i, candidate in enumerate(candidates):
        action_id = candidate.action_id
        if action_id in seen or not is_valid_id(action_id) or (
                kind == DecisionType.MULTI_ACTION and action_id not in blueprint.actions):
            _check_action_id(v, blueprint, f"candidates[{i}].action_id", action_id, seen)
        seen.add(action_id)
        if candidate.features and not typed:
            _check_typed(v, f"candidates[{i}].features", candidate.features, declared)


def _plainly_distinct(blueprint: Blueprint, action_ids: list[str]) -> bool:
    """Whether the candidates' ids pass ``_check_action_id``, checked together."""
    return (len(set(action_ids)) == len(action_ids) and are_valid_ids(action_ids)
            and (blueprint.decision_type != DecisionType.MULTI_ACTION or set(action_ids) <= set(blueprint.actions)))


# Per declared type, the exact types (type(), not isinstance: a bool is no int) of the values
# ``_check_typed`` passes without a closer look; None is a missing value.
_PLAIN_TYPES = {kind: {*types, type(None)} for kind, types in _PYTHON_TYPES.items()}


def _plainly_typed(features: list[dict], declared: dict) -> bool:
    """Whether every map in ``features`` passes ``_check_typed`` without a violation, checked
    a column at a time in C loops. False sends them through ``_check_typed``, which names each
    violation. (With ``_plainly_distinct``, checking the bench's ranking of 100 candidates
    took 52 us against 124 one value at a time.)"""
    names = declared.keys()
    if len(names) > MAX_CONTEXT_KEYS or not all(f.keys() <= names for f in features):
        return False
    for name, kind in declared.items():
        column = [f.get(name) for f in features]
        if not set(map(type, column)) <= _PLAIN_TYPES[kind.value]:
            return False
        present = [value for value in column if value is not None] if None in column else column
        if not present:
            continue
        if kind.value == "double" and not _finite_sum(present):
            return False
        if kind.value == "string" and max(map(len, present)) > MAX_STRING:
            return False
    return True


def _finite_sum(values: list) -> bool:
    """Whether numbers sum to a finite float: then none is infinite or NaN (either would
    carry into the sum); an overflow only sends them the long way."""
    try:
        return math.isfinite(sum(values))
    except OverflowError:  # an int too large for a float
        return False


def _check_action_id(v: Violations, blueprint: Blueprint, field: str, action_id: str, seen: set[str]) -> None:
    """Why a candidate's id is refused (the common case, a valid new id, never gets here)."""
    v.require_id(field, action_id)
    if action_id in seen:
        v.add(field, "repeats an earlier candidate")
    if blueprint.decision_type == DecisionType.MULTI_ACTION and action_id not in blueprint.actions:
        v.add(field, f"is not an action of the use case {list(blueprint.actions)}")
