"""The use case's blueprint: one declarative, versioned YAML document that says what is
decided, from which features, how the label is made, how the model is trained and how the
policy acts. ``parse_blueprint`` validates a document and names the offending key path.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable

import yaml

from services.core.errors import FieldViolation, InvalidArgument
from services.core.validation import is_valid_name

DECISION_TYPES = ("binary", "multi_action", "ranking", "regression")
AGGREGATIONS = ("sum", "max", "first", "count")
FEATURE_TYPES = ("double", "int64", "string", "bool")
BINARY_ACTIONS = ("true", "false")
_FEAST_REF = re.compile(r"^[a-z][a-z0-9_]*:[a-z][a-z0-9_]*$")
_DURATION = re.compile(r"^(\d+)(s|m|h|d)$")
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


@dataclass(frozen=True)
class LabelSpec:
    """How outcomes become a training label."""

    outcome: str
    aggregation: str
    window: timedelta
    missing_value: float


@dataclass(frozen=True)
class PolicySpec:
    """How scores become an action."""

    threshold: float
    exploration_rate: float


@dataclass(frozen=True)
class RetrainingSpec:
    """When the Trainer retrains by itself."""

    min_labeled_rows: int
    schedule: timedelta | None


@dataclass(frozen=True)
class ProductMetric:
    """The product value of a decision: what an outcome is worth and what acting costs."""

    outcome_value: float
    treatment_cost: float


@dataclass(frozen=True)
class PersonalizationSpec:
    """A Feast view Looper maintains from feedback: per-subject counts over a recent window,
    pushed online so the subject's next decision sees what just happened."""

    view: str
    window: timedelta
    window_name: str  # as written, e.g. "7d"; part of the feature names

    def feature_names(self, blueprint: "Blueprint") -> list[str]:
        return [f"decisions_{self.window_name}", f"{blueprint.label.outcome}_{self.window_name}"]


@dataclass(frozen=True)
class Blueprint:
    """One validated version of a use case's blueprint."""

    name: str
    decision_type: str
    entities: tuple[str, ...]
    actions: tuple[str, ...]
    default_decision: str
    feast_features: tuple[str, ...]
    context_features: dict[str, str]
    candidate_features: dict[str, str]
    label: LabelSpec
    model_params: dict[str, Any]
    policy: PolicySpec
    retraining: RetrainingSpec
    product_metric: ProductMetric
    personalization: PersonalizationSpec | None = None
    version: int = 0
    spec: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The model's input columns in a fixed order: Feast features, context, candidate."""
        return (tuple(feast_column(ref) for ref in self.feast_features)
                + tuple(sorted(self.context_features)) + tuple(sorted(self.candidate_features)))

    def digest(self) -> str:
        return spec_digest(self.spec)


def feast_column(ref: str) -> str:
    """The column name of a Feast reference, as Feast names it with full feature names:
    ``user_stats:sessions_7d`` -> ``user_stats__sessions_7d``."""
    return ref.replace(":", "__")


def spec_digest(spec: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON form; equal specs give equal digests."""
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def parse_duration(text: str) -> timedelta:
    """``"90s"``, ``"15m"``, ``"1h"``, ``"7d"`` to a timedelta."""
    match = _DURATION.match(str(text).strip())
    if not match:
        raise ValueError("must be a duration like 30s, 15m, 1h or 7d")
    return timedelta(**{_DURATION_UNITS[match.group(2)]: int(match.group(1))})


class _Section:
    """Reads one mapping of the document, recording violations under its key path."""

    def __init__(self, data: Any, path: str, errors: list[FieldViolation], allowed: set[str]):
        self.path, self.errors = path, errors
        if data is None:
            data = {}
        if not isinstance(data, dict):
            self._fail(path, "must be a mapping")
            data = {}
        self.data = data
        for key in data:
            if key not in allowed:
                self._fail(self.key(str(key)), f"unknown key; expected one of {sorted(allowed)}")

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def _fail(self, path: str, reason: str) -> None:
        self.errors.append(FieldViolation(path, reason))

    def get(self, name: str, kind: type | tuple, default: Any = ..., check: Callable | None = None) -> Any:
        """The value at ``name`` if it has type ``kind`` and passes ``check`` (which returns an
        error string or None); otherwise records a violation and returns ``default``."""
        if name not in self.data:
            if default is ...:
                self._fail(self.key(name), "is required")
                return None
            return default
        value = self.data[name]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool)):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            self._fail(self.key(name), f"must be a {names}")
            return None if default is ... else default
        problem = check(value) if check else None
        if problem:
            self._fail(self.key(name), problem)
            return None if default is ... else default
        return value

    def section(self, name: str, allowed: set[str], required: bool = True) -> "_Section":
        if required and name not in self.data:
            self._fail(self.key(name), "is required")
        return _Section(self.data.get(name), self.key(name), self.errors, allowed)

    def duration(self, name: str, default: Any = ...) -> timedelta | None:
        text = self.get(name, (str, int), default)
        if text is None or isinstance(text, timedelta):
            return text
        try:
            return parse_duration(str(text))
        except ValueError as err:
            self._fail(self.key(name), str(err))
            return None


def _one_of(options: tuple[str, ...]) -> Callable[[Any], str | None]:
    return lambda v: None if v in options else f"must be one of {list(options)}"


def _in_range(low: float, high: float) -> Callable[[Any], str | None]:
    return lambda v: None if low <= v <= high else f"must be between {low} and {high}"


def _name(v: str) -> str | None:
    return None if is_valid_name(v) else "must be lower_snake_case (a letter, then letters, digits or _)"


def load_blueprint_yaml(text: str) -> Blueprint:
    """Parses and validates a YAML blueprint document."""
    try:
        spec = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise InvalidArgument.single("spec_yaml", f"is not valid YAML: {err}") from None
    return parse_blueprint(spec)


def parse_blueprint(spec: Any) -> Blueprint:
    """Validates a blueprint mapping; raises InvalidArgument naming every bad key path."""
    errors: list[FieldViolation] = []
    top = _Section(spec, "", errors, {
        "name", "decision_type", "entities", "actions", "default_decision", "features",
        "label", "model", "policy", "retraining", "product_metric", "description", "personalization",
    })
    name = top.get("name", str, check=_name)
    decision_type = top.get("decision_type", str, check=_one_of(DECISION_TYPES))
    entities = _string_list(top, "entities", errors, check=_name)
    actions, default = _actions(top, decision_type, errors)
    feast_features, context, candidate = _features(top, errors)
    label = _label(top)
    model = top.section("model", {"params"}, required=False)
    params = model.get("params", dict, default={})
    policy = top.section("policy", {"threshold", "exploration_rate"}, required=False)
    retraining = top.section("retraining", {"min_labeled_rows", "schedule"}, required=False)
    metric = top.section("product_metric", {"outcome_value", "treatment_cost"}, required=False)
    blueprint = Blueprint(
        name=name, decision_type=decision_type, entities=tuple(entities), actions=actions,
        default_decision=default, feast_features=feast_features, context_features=context,
        candidate_features=candidate,
        label=label, model_params=params,
        policy=PolicySpec(
            threshold=policy.get("threshold", float, default=0.0),
            exploration_rate=policy.get("exploration_rate", float, default=0.0, check=_in_range(0, 1)),
        ),
        retraining=RetrainingSpec(
            min_labeled_rows=retraining.get("min_labeled_rows", int, default=1000,
                                            check=lambda v: None if v >= 10 else "must be at least 10"),
            schedule=retraining.duration("schedule", default=None),
        ),
        product_metric=ProductMetric(
            outcome_value=metric.get("outcome_value", float, default=1.0),
            treatment_cost=metric.get("treatment_cost", float, default=0.0),
        ),
        personalization=_personalization(top, entities),
        spec=spec if isinstance(spec, dict) else {},
    )
    if errors:
        raise InvalidArgument(errors)
    return blueprint


def _string_list(sec: _Section, key: str, errors: list[FieldViolation], check=None,
                 required: bool = True) -> list[str]:
    values = sec.get(key, list, default=... if required else [])
    out: list[str] = []
    for i, item in enumerate(values or []):
        problem = "must be a string" if not isinstance(item, str) else (check(item) if check else None)
        if problem:
            errors.append(FieldViolation(f"{sec.key(key)}[{i}]", problem))
        else:
            out.append(item)
    if len(set(out)) != len(out):
        errors.append(FieldViolation(sec.key(key), "must not repeat a value"))
    return out


def _actions(top: _Section, decision_type: str | None, errors: list[FieldViolation]) -> tuple[tuple, str]:
    raw_default = top.get("default_decision", (str, bool, int, float))
    default = str(raw_default).lower() if isinstance(raw_default, bool) else str(raw_default)
    if decision_type == "binary":
        if "actions" in top.data:
            errors.append(FieldViolation("actions", "is not allowed for binary use cases (actions are true/false)"))
        if raw_default is not None and default not in BINARY_ACTIONS:
            errors.append(FieldViolation("default_decision", "must be true or false for a binary use case"))
        return BINARY_ACTIONS, default
    if decision_type == "multi_action":
        actions = _string_list(top, "actions", errors)
        if len(actions) < 2 and "actions" in top.data:
            errors.append(FieldViolation("actions", "must list at least 2 actions"))
        if raw_default is not None and actions and default not in actions:
            errors.append(FieldViolation("default_decision", f"must be one of the actions {actions}"))
        return tuple(actions), default
    if decision_type == "ranking":
        if raw_default is not None and default != "as_given":
            errors.append(FieldViolation("default_decision", "must be as_given for a ranking use case"))
        return (), default
    if decision_type == "regression" and raw_default is not None:
        try:
            float(raw_default)
        except (TypeError, ValueError):
            errors.append(FieldViolation("default_decision", "must be a number for a regression use case"))
    return (), default


def _features(top: _Section, errors: list[FieldViolation]) -> tuple[tuple[str, ...], dict, dict]:
    sec = top.section("features", {"feast", "context", "candidate"}, required=False)
    feast = _string_list(sec, "feast", errors, required=False,
                         check=lambda v: None if _FEAST_REF.match(v) else "must be a Feast reference view:feature")
    return tuple(feast), _typed_names(sec, "context", errors), _typed_names(sec, "candidate", errors)


def _typed_names(parent: _Section, key: str, errors: list[FieldViolation]) -> dict[str, str]:
    """A mapping of feature name to type, e.g. ``{hour_of_day: int64}``."""
    raw = parent.data.get(key)
    sec = _Section(raw, parent.key(key), errors, set(raw) if isinstance(raw, dict) else set())
    typed = {}
    for name in sec.data:
        ftype = sec.get(name, str, check=_one_of(FEATURE_TYPES))
        if not is_valid_name(str(name)):
            errors.append(FieldViolation(sec.key(str(name)), "must be lower_snake_case"))
        elif ftype:
            typed[str(name)] = ftype
    return typed


def _label(top: _Section) -> LabelSpec:
    sec = top.section("label", {"outcome", "aggregation", "window", "missing_value"})
    return LabelSpec(
        outcome=sec.get("outcome", str, check=_name),
        aggregation=sec.get("aggregation", str, default="max", check=_one_of(AGGREGATIONS)),
        window=sec.duration("window"),
        missing_value=sec.get("missing_value", float, default=0.0),
    )


def _personalization(top: _Section, entities: list[str]) -> PersonalizationSpec | None:
    if "personalization" not in top.data:
        return None
    sec = top.section("personalization", {"view", "window"})
    view = sec.get("view", str, check=_name)
    window_name = str(sec.get("window", (str, int), default="7d")).strip()
    window = sec.duration("window", default="7d")
    if len(entities) != 1:
        sec._fail(sec.path, "needs exactly one entity (the subject whose outcomes are counted)")
    if view is None or window is None:
        return None
    return PersonalizationSpec(view=view, window=window, window_name=window_name)
