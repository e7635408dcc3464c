"""Makes a decision: validate against the blueprint, fetch features, score with the live
model, apply the policy, log durably, answer. Plain Python; the gRPC adapter is server.py."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Protocol

from services.core.blueprint import Blueprint
from services.core.blueprint_store import BlueprintStore
from services.core.decision_log import DecisionLog
from services.core import telemetry
from services.core.errors import NotFound
from services.core.key_locks import KeyLocks
from services.core.records import DecisionRecord, FeatureScalar
from services.core.telemetry import Telemetry, current_traceparent
from services.core.validation import Violations
from services.core.policies import choose

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


class FeatureSource(Protocol):
    def fetch(self, blueprint: Blueprint, subject: dict[str, str]) -> dict[str, FeatureScalar]:
        """The subject's Feast features, by column name (``view__feature``)."""


class ScoringModel(Protocol):
    version: str

    def score(self, rows: list[dict[str, FeatureScalar]]) -> list[float]:
        """One score per row: a probability for classifiers, a value for regression."""


class LiveModels(Protocol):
    def get(self, use_case: str) -> ScoringModel | None:
        """The live model of a use case, or None before the first one is promoted."""


class NoFeatures:
    """A FeatureSource for use cases without Feast features."""

    def fetch(self, blueprint: Blueprint, subject: dict[str, str]) -> dict[str, FeatureScalar]:
        return {}


class NoModels:
    def get(self, use_case: str) -> ScoringModel | None:
        return None


class Decider:
    def __init__(self, blueprints: BlueprintStore, decision_log: DecisionLog,
                 features: FeatureSource | None = None, models: LiveModels | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 telemetry: Telemetry | None = None):
        self.blueprints = blueprints
        self.decision_log = decision_log
        self.features = features or NoFeatures()
        self.models = models or NoModels()
        self.clock = clock
        self.telemetry = telemetry or Telemetry()
        # Concurrent calls with one decision id take turns, so the second replays the first
        # instead of logging a second decision under the same id.
        self._in_flight = KeyLocks()

    def decide(self, command: DecideCommand) -> tuple[DecisionRecord, bool]:
        """Returns the decision and whether it is a replay of an earlier one with this id."""
        started = time.perf_counter()
        tracer = self.telemetry.tracer
        with tracer.start_as_current_span("looper.decide", attributes={
                telemetry.USE_CASE: command.use_case, telemetry.DECISION_ID: command.decision_id}) as span:
            blueprint = self.blueprints.latest(command.use_case)
            validate_command(blueprint, command)
            with self._in_flight.hold((command.use_case, command.decision_id)):
                earlier = self.decision_log.find(command.use_case, command.decision_id)
                if earlier is not None:
                    span.set_attribute("looper.replayed", True)
                    return earlier, True
                record, feature_count = self._decide_and_log(blueprint, command)
            span.set_attributes(decision_attributes(record, feature_count))
        self._measure(record, started)
        return record, False

    def _decide_and_log(self, blueprint: Blueprint, command: DecideCommand) -> tuple[DecisionRecord, int]:
        tracer = self.telemetry.tracer
        with tracer.start_as_current_span("looper.feature_fetch") as fetch:
            features = self.features.fetch(blueprint, command.subject)
            fetch.set_attribute("looper.feature_count", len(features))
        features.update(command.context)
        record = self._decide(blueprint, command, features)
        with tracer.start_as_current_span("looper.decision_log.append"):
            self.decision_log.append(record)
        return record, len(features)

    def get(self, use_case: str, decision_id: str) -> DecisionRecord:
        self.blueprints.latest(use_case)  # NOT_FOUND for an unknown use case
        record = self.decision_log.find(use_case, decision_id)
        if record is None:
            raise NotFound(f"decision {decision_id!r} of use case {use_case!r} was not found")
        return record

    def _decide(self, blueprint: Blueprint, command: DecideCommand,
                features: dict[str, FeatureScalar]) -> DecisionRecord:
        tracer = self.telemetry.tracer
        model = self.models.get(blueprint.name)
        actions, rows = model_rows(blueprint, command, features)
        scores = None
        if model is not None:
            with tracer.start_as_current_span("looper.inference", attributes={
                    telemetry.MODEL_VERSION: model.version, "looper.rows": len(rows)}):
                try:
                    scores = model.score(rows)
                except Exception:  # a broken model must not fail the product: fall back
                    log.exception("model %s failed to score; using the default decision", model.version)
                    model = None
        common = dict(decision_id=command.decision_id, use_case=blueprint.name,
                      model_version=model.version if model else "", blueprint_version=blueprint.version,
                      is_default=model is None, decide_time=self.clock(), subject=dict(command.subject),
                      features=features, context=dict(command.context), traceparent=current_traceparent())
        if blueprint.decision_type == "regression":
            value = scores[0] if scores is not None else float(blueprint.default_decision)
            return DecisionRecord(action="", score=value, propensity=1.0, is_exploration=False, **common)
        with tracer.start_as_current_span("looper.policy"):
            choice = choose(blueprint, command.decision_id, actions, scores)
        return DecisionRecord(action=choice.action, score=choice.score, propensity=choice.propensity,
                              is_exploration=choice.is_exploration, ranking=choice.ranking, **common)

    def _measure(self, record: DecisionRecord, started: float) -> None:
        result = "exploration" if record.is_exploration else "default" if record.is_default else "model"
        attributes = {telemetry.USE_CASE: record.use_case, "looper.result": result}
        self.telemetry.decisions.add(1, attributes)
        self.telemetry.decision_latency.record((time.perf_counter() - started) * 1000, attributes)


def decision_attributes(record: DecisionRecord, feature_count: int) -> dict:
    """What an on-call engineer needs on the decision's span; never feature values."""
    return {telemetry.MODEL_VERSION: record.model_version, telemetry.BLUEPRINT_VERSION: record.blueprint_version,
            "looper.is_default": record.is_default, "looper.is_exploration": record.is_exploration,
            "looper.action": record.action, "looper.feature_count": feature_count}


def model_rows(blueprint: Blueprint, command: DecideCommand,
               features: dict[str, FeatureScalar]) -> tuple[list[str], list[dict]]:
    """The actions to score and one model input row per action: the subject's features plus
    the action (and, for candidates, the candidate's own features)."""
    if blueprint.decision_type == "regression":
        return [], [dict(features)]
    if command.candidates:
        return ([c.action_id for c in command.candidates],
                [{**features, **c.features, "action": c.action_id} for c in command.candidates])
    actions = list(blueprint.actions)
    return actions, [{**features, "action": a} for a in actions]


_PYTHON_TYPES = {"double": (float, int), "int64": (int,), "string": (str,), "bool": (bool,)}


def _check_typed(violations: Violations, prefix: str, values: dict, declared: dict[str, str]) -> None:
    for name, value in values.items():
        if name not in declared:
            violations.add(f"{prefix}.{name}", f"is not declared by the blueprint; declared: {sorted(declared)}")
            continue
        expected = declared[name]
        if value is not None and (not isinstance(value, _PYTHON_TYPES[expected])
                                  or (expected != "bool" and isinstance(value, bool))):
            violations.add(f"{prefix}.{name}", f"must be of type {expected}, got {type(value).__name__}")


def validate_command(blueprint: Blueprint, command: DecideCommand) -> None:
    """Checks the request against the blueprint; raises InvalidArgument naming each field."""
    v = Violations()
    v.require_id("decision_id", command.decision_id)
    missing = [e for e in blueprint.entities if not command.subject.get(e)]
    for entity in missing:
        v.add(f"subject.{entity}", "is required by the blueprint")
    for key in command.subject:
        if key not in blueprint.entities:
            v.add(f"subject.{key}", f"is not an entity of the use case; expected {list(blueprint.entities)}")
    _check_typed(v, "context", command.context, blueprint.context_features)
    _check_candidates(v, blueprint, command.candidates)
    v.raise_if_any()


def _check_candidates(v: Violations, blueprint: Blueprint, candidates: tuple[CandidateInput, ...]) -> None:
    kind = blueprint.decision_type
    if kind in ("binary", "regression") and candidates:
        v.add("candidates", f"are not allowed for a {kind} use case")
        return
    if kind == "ranking" and not candidates:
        v.add("candidates", "are required for a ranking use case")
    if len(candidates) > MAX_CANDIDATES:
        v.add("candidates", f"must hold at most {MAX_CANDIDATES} items, got {len(candidates)}")
    seen: set[str] = set()
    for i, candidate in enumerate(candidates):
        v.require_id(f"candidates[{i}].action_id", candidate.action_id)
        if candidate.action_id in seen:
            v.add(f"candidates[{i}].action_id", "repeats an earlier candidate")
        seen.add(candidate.action_id)
        if kind == "multi_action" and candidate.action_id not in blueprint.actions:
            v.add(f"candidates[{i}].action_id", f"is not an action of the use case {list(blueprint.actions)}")
        _check_typed(v, f"candidates[{i}].features", candidate.features, blueprint.candidate_features)
