"""The use case's blueprint: one declarative, versioned YAML document that says what is
decided, from which features, how the label is made, how the model is trained and how the
policy acts.

The document's schema is the pydantic models below (strict: no silent coercion, unknown keys
refused); ``parse_blueprint`` validates a document and names every offending key path at
once (``label.window``, ``features.feast[0]``), then checks what depends on several keys
(the actions a decision type allows, the default decision among them).
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from datetime import timedelta
from typing import Annotated, Any

import yaml
from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, ValidationError,
                      field_validator)

from services.platform.errors import FieldViolation, InvalidArgument
from services.platform.validation import is_valid_name

_FEAST_REF = re.compile(r"[a-z][a-z0-9_]*:[a-z][a-z0-9_]*")
_DURATION = re.compile(r"(\d+)(s|m|h|d)")
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
BINARY_ACTIONS = ("true", "false")
MIN_DURATION, MAX_DURATION = timedelta(seconds=1), timedelta(days=365)
MAX_YAML_DEPTH = 20
MAX_FEATURES = 200  # Feast, context and candidate features together


class DecisionType(enum.IntEnum):
    """What a use case decides; mirrors ``looper.v1.DecisionType`` (the blueprint spells the
    names in lower case: ``binary``, ``multi_action``...)."""

    UNSPECIFIED = 0
    BINARY = 1
    MULTI_ACTION = 2
    RANKING = 3
    REGRESSION = 4
    NUMERIC = 5

    @property
    def spelling(self) -> str:
        return self.name.lower()


class Aggregation(str, enum.Enum):
    """How the outcomes inside a decision's window become its label."""

    SUM = "sum"
    MAX = "max"
    FIRST = "first"  # the earliest outcome's value
    COUNT = "count"


class FeatureType(str, enum.Enum):
    DOUBLE = "double"
    INT64 = "int64"
    STRING = "string"
    BOOL = "bool"

    @property
    def is_categorical(self) -> bool:
        return self in (FeatureType.STRING, FeatureType.BOOL)


def parse_duration(text: str) -> timedelta:
    """``"90s"``, ``"15m"``, ``"1h"``, ``"7d"`` to a timedelta."""
    match = _DURATION.fullmatch(str(text).strip())
    if not match:
        raise ValueError("must be a duration like 30s, 15m, 1h or 7d")
    return timedelta(**{_DURATION_UNITS[match.group(2)]: int(match.group(1))})


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError("must be a duration like 30s, 15m, 1h or 7d")
    duration = parse_duration(str(value))
    if not MIN_DURATION <= duration <= MAX_DURATION:
        raise ValueError(f"must be between 1s and {MAX_DURATION.days}d")
    return duration


def _name(value: str) -> str:
    if not is_valid_name(value):
        raise ValueError("must be lower_snake_case (a letter, then letters, digits or _)")
    return value


def _choice(kind: type[enum.Enum], spelled=lambda member: member.value):
    """A before-validator that accepts the spelling of one of ``kind``'s members."""
    choices = {spelled(m): m for m in kind if m.name != "UNSPECIFIED"}

    def convert(value: Any):
        if isinstance(value, kind):
            return value
        if isinstance(value, str) and value in choices:
            return choices[value]
        raise ValueError(f"must be one of {list(choices)}")
    return BeforeValidator(convert)


def _unique(values: list) -> list:
    if len(set(values)) != len(values):
        raise ValueError("must not repeat a value")
    return values


Name = Annotated[str, AfterValidator(_name)]
Duration = Annotated[timedelta, BeforeValidator(_duration)]
FeatureTypeName = Annotated[FeatureType, _choice(FeatureType)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class LabelKind(str, enum.Enum):
    """What a model predicts of a label."""

    PROBABILITY = "probability"  # that the label is positive (an open, a purchase): a classifier
    VALUE = "value"  # its expected value (a count, a sum, a watch time): a regressor


class LabelSpec(_Section):
    """How outcomes become a training label."""

    outcome: Name
    aggregation: Annotated[Aggregation, _choice(Aggregation)] = Aggregation.MAX
    window: Duration
    missing_value: float = 0.0
    kind: Annotated[LabelKind, _choice(LabelKind)] | None = None  # default: by the aggregation

    @property
    def model_kind(self) -> LabelKind:
        if self.kind is not None:
            return self.kind
        return LabelKind.VALUE if self.aggregation in (Aggregation.SUM, Aggregation.COUNT) else LabelKind.PROBABILITY


class Objective(str, enum.Enum):
    """What a binary policy weighs when it decides whether to act (``policy.objective``).

    ``uplift`` (the default): act where the predicted *incremental* value of acting, the
    value with the treatment minus the value without it (the effect, CATE, times what the
    outcome is worth), exceeds the cost by more than the threshold. Without ``model.uplift``
    the two values come from the one outcome model that takes the action as an input (an
    S-learner): what every binary use case did before ``objective`` existed. With
    ``model.uplift`` they come from a T- or X-learner trained for the effect.

    ``response``: act where the predicted value of the response to acting exceeds the cost
    by more than the threshold, ignoring what would happen without acting. It treats the
    subjects most likely to respond, including those who respond anyway ("sure things") and
    those whom acting puts off ("sleeping dogs"), and spends the cost on them.
    """

    UPLIFT = "uplift"
    RESPONSE = "response"


class Exploration(str, enum.Enum):
    """How a policy explores around its best action (binary and multi-action decisions)."""

    EPSILON_GREEDY = "epsilon_greedy"  # the best action, or with the exploration rate a uniformly random one
    SOFTMAX = "softmax"  # actions in proportion to exp(value / temperature), mixed with the uniform floor


MAX_TEMPERATURE = 1000.0


class PolicySpec(_Section):
    """How scores become an action. ``exploration: softmax`` chooses among the actions with
    probabilities ``exp(value / temperature)`` (normalized; value: the expected product value,
    so the temperature is in product-value units: the smaller, the greedier), mixed with the
    uniform choice at ``exploration_rate``, a floor that keeps every action tried."""

    threshold: float = 0.0
    exploration_rate: float = Field(0.0, ge=0.0, le=1.0)
    exploration: Annotated[Exploration, _choice(Exploration)] = Exploration.EPSILON_GREEDY
    temperature: float | None = Field(None, gt=0.0, le=MAX_TEMPERATURE)  # softmax only
    objective: Annotated[Objective, _choice(Objective)] | None = None  # binary use cases; default uplift


class RetrainingSpec(_Section):
    """When the Trainer retrains by itself, and how much one run may take."""

    min_labeled_rows: int = Field(1000, ge=10)
    schedule: Duration | None = None
    max_rows: int = Field(1_000_000, ge=100, le=10_000_000)  # the newest labeled rows a run trains on
    max_seconds: int = Field(900, ge=10, le=6 * 3600)  # a run's wall-clock limit


class ProductMetric(_Section):
    """The product value of a decision: what each outcome is worth and what acting costs.
    ``weights`` (outcome -> worth) combine several labels, e.g. ``{opened: 1.0,
    unsubscribed: -3.0}``; with one label, ``outcome_value`` says what it is worth. The
    weights are policy parameters: changing them needs no retraining."""

    outcome_value: float | None = None
    weights: dict[Name, float] | None = None
    treatment_cost: float = 0.0
    # The product goal, when it is an outcome the policy does not weigh (e.g. the user is
    # still active a week later): a label of its own, not predicted; experiments and tuning
    # judge arms by it (its value per decision, less the treatment cost when acting).
    goal: Name | None = None


_ARM_MODEL = re.compile(r"live|default|m\d{6}")


class PolicyOverrides(_Section):
    """What an experiment arm changes in the policy and the product metric's weights; what
    it leaves out stays as the blueprint says."""

    threshold: float | None = None
    exploration_rate: float | None = Field(None, ge=0.0, le=1.0)
    temperature: float | None = Field(None, gt=0.0, le=MAX_TEMPERATURE)  # softmax exploration's
    weights: dict[Name, float] | None = None
    treatment_cost: float | None = None
    objective: Annotated[Objective, _choice(Objective)] | None = None  # binary: response against uplift


class ArmSpec(_Section):
    """One arm: a share of the subjects, decided by a model (``live``: whatever is live;
    ``default``: no model, the default policy; or a version like ``m000003``) and a policy."""

    name: Name
    share: float = Field(gt=0.0, le=1.0)
    model: str = "live"
    policy: PolicyOverrides = PolicyOverrides()

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        if not _ARM_MODEL.fullmatch(value):
            raise ValueError("must be live, default or a model version like m000003")
        return value


class GuardrailSpec(_Section):
    """A label that a treatment must not make worse than control by more than ``max_harm``
    (in the label's units per decision): ``better`` says which direction is good."""

    outcome: Name
    max_harm: float = Field(ge=0.0)
    better: str = "lower"

    @field_validator("better")
    @classmethod
    def _direction(cls, value: str) -> str:
        if value not in ("lower", "higher"):
            raise ValueError("must be lower or higher")
        return value


class ExperimentSpec(_Section):
    """An online experiment: subjects are split over the arms by a salted hash of their
    entity key (the experiment's name is the salt), and the arms are compared on the product
    value per decision with anytime-valid intervals."""

    name: Name
    control: Name
    arms: list[ArmSpec] = Field(min_length=2, max_length=10)
    min_sample: int = Field(200, ge=10, le=10_000_000)  # labeled decisions per arm before a verdict
    max_sample: int = Field(100_000, ge=10, le=100_000_000)  # per arm: then it ends without a winner
    guardrails: list[GuardrailSpec] = Field([], max_length=10)
    alpha: float = Field(0.05, gt=0.0, lt=0.5)


class DeploymentSpec(_Section):
    """How a new model reaches live once a live model exists: shadow (scored on live traffic
    and logged, never acted on) for ``shadow_decisions`` decisions, then a canary arm with
    ``canary_share`` of the subjects against the live model, promoted when it wins on the
    product value, rolled back when it loses, breaks a guardrail, or fails."""

    shadow_decisions: int = Field(200, ge=0, le=10_000_000)  # 0 skips the shadow stage
    shadow_max_time: Duration = timedelta(days=1)  # a shadow that sees too few decisions in this long stops
    canary_share: float = Field(0.1, gt=0.0, le=0.5)
    min_sample: int = Field(200, ge=10, le=10_000_000)
    max_sample: int = Field(50_000, ge=10, le=100_000_000)
    guardrails: list[GuardrailSpec] = Field([], max_length=10)
    alpha: float = Field(0.05, gt=0.0, lt=0.5)


TUNABLE = ("threshold", "exploration_rate", "temperature", "treatment_cost")  # and weights.<outcome>


class TuningSpec(_Section):
    """Bayesian tuning of the policy for the product goal: the parameters' ranges (policy
    parameters, ``weights.<outcome>`` of the product metric), scored off-policy on the logged
    decisions first, then in online rounds of experiment arms; the round's best arm, if it
    beats the current policy, becomes a new blueprint version. ``exploration_rate``'s lower
    bound is a floor: tuning never stops the exploration that learning needs."""

    parameters: dict[str, Annotated[list[float], Field(min_length=2, max_length=2)]] = Field(min_length=1, max_length=8)
    offline_evaluations: int = Field(40, ge=5, le=500)  # Gaussian-process steps scored off-policy
    candidates_per_round: int = Field(2, ge=1, le=5)  # arms besides the current policy in each round
    rounds: int = Field(1, ge=1, le=10)
    round_sample: int = Field(300, ge=50, le=10_000_000)  # labeled decisions per arm that end a round
    min_rows: int = Field(500, ge=50, le=10_000_000)  # labeled decisions before tuning starts
    seed: int = Field(0, ge=0)


class PersonalizationSpec(_Section):
    """A Feast view Looper maintains from feedback: per-subject counts over a recent window,
    pushed online so the subject's next decision sees what just happened."""

    view: Name
    window: Duration = timedelta(days=7)

    @property
    def window_name(self) -> str:
        """The window as a suffix of the feature names, e.g. ``7d``."""
        seconds = int(self.window.total_seconds())
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if seconds % size == 0 and seconds >= size:
                return f"{seconds // size}{unit}"
        return f"{seconds}s"


class NumericSpec(_Section):
    """The values a numeric decision chooses among: ``min`` to ``max`` by ``step``."""

    min: float
    max: float
    step: float = Field(gt=0)
    exploration_width: int = Field(2, ge=1, le=100)  # steps either side of the best value that exploration tries

    @property
    def grid(self) -> list[float]:
        count = int(round((self.max - self.min) / self.step)) + 1
        return [round(self.min + i * self.step, 10) for i in range(count) if self.min + i * self.step <= self.max + 1e-9]


class FeaturesSpec(_Section):
    feast: Annotated[list[Annotated[str, AfterValidator(lambda v: _feast_ref(v))]], AfterValidator(_unique)] = []
    context: dict[Name, FeatureTypeName] = {}
    candidate: dict[Name, FeatureTypeName] = {}


class CatBoostParams(_Section):
    """The CatBoost parameters a blueprint may set, bounded so that one use case cannot take
    the Trainer for hours."""

    iterations: int = Field(300, ge=1, le=5000)
    depth: int = Field(6, ge=1, le=10)
    learning_rate: float = Field(0.08, gt=0.0, le=1.0)
    l2_leaf_reg: float = Field(3.0, ge=0.0, le=100.0)
    random_seed: int = Field(0, ge=0)
    border_count: int = Field(254, ge=1, le=1024)
    one_hot_max_size: int = Field(2, ge=1, le=255)


class UpliftLearner(str, enum.Enum):
    """The meta-learner an uplift model is (see ``services/evaluation/uplift.py``)."""

    T = "t"  # an outcome model per arm; effect = mu1(x) - mu0(x)
    X = "x"  # the T-learner's models, then each arm's imputed effects regressed on x and blended


class UpliftSpec(_Section):
    """An uplift model for a binary use case: the effect of acting (true) against not
    acting (false), learned by a meta-learner from the decisions whose propensities were
    logged (randomized ones, or any policy's with exploration)."""

    learner: Annotated[UpliftLearner, _choice(UpliftLearner)]


class ModelSpec(_Section):
    params: CatBoostParams = CatBoostParams()
    uplift: UpliftSpec | None = None  # binary use cases: train a T- or X-learner instead of one outcome model


def _feast_ref(value: str) -> str:
    if not _FEAST_REF.fullmatch(value):
        raise ValueError("must be a Feast reference view:feature")
    return value


class Blueprint(_Section):
    """One validated version of a use case's blueprint."""

    name: Name
    description: str = ""
    decision_type: Annotated[DecisionType, _choice(DecisionType, lambda m: m.spelling)]
    entities: Annotated[list[Name], AfterValidator(_unique)]
    actions: Annotated[list[str], AfterValidator(_unique)] = []
    default_decision: str | bool | int | float
    features: FeaturesSpec = FeaturesSpec()
    label: LabelSpec | None = None  # one outcome; or
    labels: list[LabelSpec] = []  # several, the first being the primary one
    model: ModelSpec = ModelSpec()
    policy: PolicySpec = PolicySpec()
    retraining: RetrainingSpec = RetrainingSpec()
    product_metric: ProductMetric = ProductMetric()
    personalization: PersonalizationSpec | None = None
    numeric: NumericSpec | None = None  # what a numeric decision chooses among
    experiment: ExperimentSpec | None = None
    deployment: DeploymentSpec | None = None  # without it, a model that wins offline goes live at once
    tuning: TuningSpec | None = None

    _version: int = PrivateAttr(0)
    _spec: dict = PrivateAttr(default_factory=dict)
    _digest: str = PrivateAttr("")

    @field_validator("default_decision", mode="after")
    @classmethod
    def _spell(cls, value):  # a YAML `false` is the action "false"
        return str(value).lower() if isinstance(value, bool) else str(value)

    @property
    def all_labels(self) -> tuple[LabelSpec, ...]:
        """Every label, the primary one first."""
        return (self.label,) if self.label is not None else tuple(self.labels)

    @property
    def primary_label(self) -> LabelSpec:
        return self.all_labels[0]

    @property
    def predicted_labels(self) -> tuple[LabelSpec, ...]:
        """The labels a model learns to predict: all but the product goal."""
        return tuple(label for label in self.all_labels if label.outcome != self.product_metric.goal)

    @property
    def longest_window(self) -> timedelta:
        return max(label.window for label in self.all_labels)

    @property
    def weights(self) -> dict[str, float]:
        """What each label's outcome is worth, for the policy."""
        metric = self.product_metric
        if metric.weights is not None:
            return dict(metric.weights)
        return {self.primary_label.outcome: 1.0 if metric.outcome_value is None else metric.outcome_value}

    @property
    def version(self) -> int:
        """The version the store gave this document (0 before it is stored)."""
        return self._version

    def with_version(self, version: int) -> "Blueprint":
        copy = self.model_copy()
        copy._version, copy._spec = version, self._spec
        return copy

    @property
    def choices(self) -> tuple[str, ...]:
        """The actions the policy chooses among (binary: true and false)."""
        return BINARY_ACTIONS if self.decision_type == DecisionType.BINARY else tuple(self.actions)

    @property
    def feast_features(self) -> tuple[str, ...]:
        return tuple(self.features.feast)

    @property
    def context_features(self) -> dict[str, FeatureType]:
        return dict(self.features.context)

    @property
    def candidate_features(self) -> dict[str, FeatureType]:
        return dict(self.features.candidate)

    @property
    def objective(self) -> Objective:
        """What a binary policy weighs (``policy.objective``, uplift by default)."""
        return Objective(self.policy.objective) if self.policy.objective else Objective.UPLIFT

    @property
    def uplift_learner(self) -> str | None:
        """The meta-learner the blueprint asks for (``t``, ``x``), or None for one outcome model."""
        return self.model.uplift.learner.value if self.model.uplift is not None else None

    @property
    def model_params(self) -> dict[str, Any]:
        return self.model.params.model_dump()

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The subject-level and candidate inputs in a fixed order: Feast, context, candidate."""
        return (tuple(feast_column(ref) for ref in self.features.feast)
                + tuple(sorted(self.features.context)) + tuple(sorted(self.features.candidate)))

    def feature_type(self, column: str) -> FeatureType | None:
        """The declared type of a context or candidate column (Feast columns: None)."""
        return self.features.context.get(column) or self.features.candidate.get(column)

    def personalization_features(self) -> list[str]:
        """The names of the counters Looper keeps in the personalization view."""
        spec = self.personalization
        return [f"decisions_{spec.window_name}", f"{self.primary_label.outcome}_{spec.window_name}"] if spec else []

    def digest(self) -> str:
        """The document's SHA-256 (computed once: the decision path asks for it)."""
        if not self._digest:
            self._digest = spec_digest(self._spec)
        return self._digest


def feast_column(ref: str) -> str:
    """The column name of a Feast reference, as Feast names it with full feature names:
    ``user_stats:sessions_7d`` -> ``user_stats__sessions_7d``."""
    return ref.replace(":", "__")


def spec_digest(spec: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON form; equal specs give equal digests."""
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class _BlueprintLoader(yaml.SafeLoader):
    """YAML's safe loader without aliases (a few lines could expand to gigabytes) and with
    a nesting limit (deep documents exhaust the parser's stack)."""

    _depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in a blueprint",
                                              self.peek_event().start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise yaml.composer.ComposerError(None, None, f"nesting is deeper than {MAX_YAML_DEPTH} levels",
                                                  self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def blueprint_name(text: str) -> str | None:
    """The use case a YAML blueprint names, or None when it names none (without validating
    the rest: used to decide who may apply it)."""
    try:
        spec = yaml.load(text, Loader=_BlueprintLoader)  # noqa: S506 - a SafeLoader subclass
    except (yaml.YAMLError, RecursionError):
        return None
    name = spec.get("name") if isinstance(spec, dict) else None
    return name if isinstance(name, str) and is_valid_name(name) else None


def load_blueprint_yaml(text: str) -> Blueprint:
    """Parses and validates a YAML blueprint document."""
    try:
        spec = yaml.load(text, Loader=_BlueprintLoader)  # noqa: S506 - a SafeLoader subclass
    except (yaml.YAMLError, RecursionError) as err:
        raise InvalidArgument.single("spec_yaml", f"is not valid YAML: {str(err)[:500]}") from None
    return parse_blueprint(spec)


def parse_blueprint(spec: Any) -> Blueprint:
    """Validates a blueprint mapping; raises InvalidArgument naming every bad key path."""
    if not isinstance(spec, dict):
        raise InvalidArgument.single("spec_yaml", "must be a mapping of blueprint keys")
    try:
        blueprint = Blueprint.model_validate(spec)
    except ValidationError as err:
        raise InvalidArgument(_violations(err.errors())) from None
    problems = (_label_problems(blueprint) + _decision_space_problems(blueprint) + _policy_problems(blueprint)
                + _uplift_problems(blueprint)
                + _personalization_problems(blueprint) + _feature_name_problems(blueprint)
                + _experiment_problems(blueprint))
    if problems:
        raise InvalidArgument(problems)
    blueprint._spec = spec
    return blueprint


def _label_problems(bp: Blueprint) -> list[FieldViolation]:
    """One label (``label``) or several (``labels``), each outcome once, and the product
    metric's weights for exactly those outcomes."""
    if (bp.label is None) == (not bp.labels):
        return [FieldViolation("label", "is required (or labels, for several outcomes), not both")]
    outcomes = [label.outcome for label in bp.all_labels]
    problems = []
    if len(set(outcomes)) != len(outcomes):
        problems.append(FieldViolation("labels", "must not repeat an outcome"))
    metric = bp.product_metric
    weighed = [o for o in outcomes if o != metric.goal]
    if metric.goal is not None and metric.goal not in outcomes[1:]:
        problems.append(FieldViolation("product_metric.goal", f"must be the outcome of a label other than the first "
                                       f"(the primary one): one of {outcomes[1:]}"))
    if metric.weights is not None and metric.outcome_value is not None:
        problems.append(FieldViolation("product_metric.weights", "replaces outcome_value: give one of them"))
    elif metric.weights is not None and set(metric.weights) != set(weighed):
        problems.append(FieldViolation("product_metric.weights", f"must give a weight to each label's outcome "
                                       f"{weighed}, and to nothing else" + (" (not to the goal)" if metric.goal else "")))
    elif metric.weights is None and len(weighed) > 1:
        problems.append(FieldViolation("product_metric.weights", "is required with several labels: what is each "
                                       "outcome worth?"))
    return problems


def _experiment_problems(bp: Blueprint) -> list[FieldViolation]:
    """Arms that split every subject once, a control among them, and outcomes that exist."""
    outcomes = {label.outcome for label in bp.all_labels}
    problems = []
    guardrails = [("deployment", g) for g in (bp.deployment.guardrails if bp.deployment else [])]
    if bp.experiment is not None:
        exp = bp.experiment
        names = [arm.name for arm in exp.arms]
        if len(set(names)) != len(names):
            problems.append(FieldViolation("experiment.arms", "must not repeat an arm name"))
        if exp.control not in names:
            problems.append(FieldViolation("experiment.control", f"must be one of the arms {names}"))
        if abs(sum(arm.share for arm in exp.arms) - 1.0) > 1e-6:
            problems.append(FieldViolation("experiment.arms", "shares must add up to 1"))
        if exp.min_sample > exp.max_sample:
            problems.append(FieldViolation("experiment.min_sample", "must not exceed max_sample"))
        for i, arm in enumerate(exp.arms):
            extra = set(arm.policy.weights or {}) - outcomes
            if extra:
                problems.append(FieldViolation(f"experiment.arms[{i}].policy.weights",
                                               f"names outcomes that are not labels: {sorted(extra)}"))
        guardrails += [("experiment", g) for g in exp.guardrails]
    for section, guardrail in guardrails:
        if guardrail.outcome not in outcomes:
            problems.append(FieldViolation(f"{section}.guardrails", f"outcome {guardrail.outcome!r} is not a "
                                           f"label of the use case {sorted(outcomes)}"))
    if bp.deployment and bp.deployment.min_sample > bp.deployment.max_sample:
        problems.append(FieldViolation("deployment.min_sample", "must not exceed max_sample"))
    return problems + _tuning_problems(bp)


def _tuning_problems(bp: Blueprint) -> list[FieldViolation]:
    """Tunable parameters with sensible ranges, for the decision types the tuner replays."""
    if bp.tuning is None:
        return []
    if bp.decision_type not in (DecisionType.BINARY, DecisionType.MULTI_ACTION):
        return [FieldViolation("tuning", "is for binary and multi_action use cases (the tuner replays their policy "
                               "on logged decisions)")]
    problems = []
    for name, (low, high) in bp.tuning.parameters.items():
        at = f"tuning.parameters.{name}"
        outcome = name.removeprefix("weights.")
        if name not in TUNABLE and not (name.startswith("weights.") and outcome in bp.weights):
            problems.append(FieldViolation(at, f"is not tunable: use one of {list(TUNABLE)} or weights.<outcome> for "
                                           f"an outcome the policy weighs {sorted(bp.weights)}"))
        elif not low < high:
            problems.append(FieldViolation(at, "must be a range [low, high] with low < high"))
        elif name == "temperature" and (bp.policy.temperature is None or low <= 0):
            problems.append(FieldViolation(at, "is tunable with softmax exploration only, in a range above 0"))
        elif name == "exploration_rate" and not 0 < low and high <= 1:
            problems.append(FieldViolation(at, "must lie in (0, 1]: its low end is the exploration floor, above 0 so "
                                           "that learning never stops"))
    return problems


MAX_NUMERIC_VALUES = 200


def _decision_space_problems(bp: Blueprint) -> list[FieldViolation]:
    """What a decision type allows: its actions and its default decision."""
    kind, default = bp.decision_type, bp.default_decision
    if kind != DecisionType.NUMERIC and bp.numeric is not None:
        return [FieldViolation("numeric", "is only for numeric use cases")]
    if kind == DecisionType.NUMERIC:
        return _numeric_problems(bp)
    if kind == DecisionType.BINARY:
        problems = [FieldViolation("actions", "is not allowed for binary use cases (actions are true/false)")
                    ] if bp.actions else []
        if default not in BINARY_ACTIONS:
            problems.append(FieldViolation("default_decision", "must be true or false for a binary use case"))
        return problems
    if kind == DecisionType.MULTI_ACTION:
        if len(bp.actions) < 2:
            return [FieldViolation("actions", "must list at least 2 actions")]
        if default not in bp.actions:
            return [FieldViolation("default_decision", f"must be one of the actions {bp.actions}")]
        return []
    if kind == DecisionType.RANKING and default != "as_given":
        return [FieldViolation("default_decision", "must be as_given for a ranking use case")]
    if kind == DecisionType.REGRESSION:
        try:
            float(default)
        except ValueError:
            return [FieldViolation("default_decision", "must be a number for a regression use case")]
    return []


def _uplift_problems(bp: Blueprint) -> list[FieldViolation]:
    """An objective and an uplift model are a binary use case's: acting against not acting."""
    if bp.decision_type == DecisionType.BINARY:
        return []
    problems = []
    if bp.policy.objective is not None:
        problems.append(FieldViolation("policy.objective", "is only for binary use cases (act or not); the others "
                                       "choose the action of the highest predicted value"))
    if bp.model.uplift is not None:
        problems.append(FieldViolation("model.uplift", "is only for binary use cases: the effect of acting (true) "
                                       "against not acting (false)"))
    for i, arm in enumerate(bp.experiment.arms if bp.experiment is not None else []):
        if arm.policy.objective is not None:
            problems.append(FieldViolation(f"experiment.arms[{i}].policy.objective", "is only for binary use cases"))
    return problems


def _feature_name_problems(bp: Blueprint) -> list[FieldViolation]:
    """Feature and entity names become columns beside Looper's own: they must not take one."""
    from services.labels.training_table import RESERVED_COLUMNS, RESERVED_PREFIXES

    problems = []
    for section, names in (("entities", bp.entities), ("features.context", bp.features.context),
                           ("features.candidate", bp.features.candidate)):
        for i, name in enumerate(names):
            at = f"{section}[{i}]" if section == "entities" else f"{section}.{name}"
            if name in RESERVED_COLUMNS or name.startswith(RESERVED_PREFIXES):
                problems.append(FieldViolation(at, f"{name!r} is a column Looper keeps itself; choose another name"))
            elif section != "entities" and name in bp.entities:
                problems.append(FieldViolation(at, f"{name!r} is also an entity of the use case"))
    count = len(bp.features.feast) + len(bp.features.context) + len(bp.features.candidate)
    if count > MAX_FEATURES:
        problems.append(FieldViolation("features", f"must declare at most {MAX_FEATURES} features, got {count}"))
    return problems


def _numeric_problems(bp: Blueprint) -> list[FieldViolation]:
    spec = bp.numeric
    if spec is None:
        return [FieldViolation("numeric", "is required for a numeric use case: the range to choose in "
                               "(min, max, step)")]
    if spec.min >= spec.max:
        return [FieldViolation("numeric.max", "must be greater than numeric.min")]
    if (spec.max - spec.min) / spec.step + 1 > MAX_NUMERIC_VALUES:
        return [FieldViolation("numeric.step", f"must leave at most {MAX_NUMERIC_VALUES} values between min and max")]
    try:
        default = float(bp.default_decision)
    except ValueError:
        return [FieldViolation("default_decision", "must be a number for a numeric use case")]
    if not spec.min <= default <= spec.max:
        return [FieldViolation("default_decision", f"must be between {spec.min} and {spec.max}")]
    return []


def _policy_problems(bp: Blueprint) -> list[FieldViolation]:
    """Softmax exploration needs its temperature, and fits the decisions that choose one
    action: a ranking explores by shuffling the whole order, whose per-slot propensities the
    off-policy estimate needs (under a softmax over orders they would sum over every
    permutation); a numeric decision explores within ``numeric.exploration_width`` steps of
    its best value; a regression returns its prediction and does not explore."""
    policy = bp.policy
    if policy.exploration != Exploration.SOFTMAX:
        if policy.temperature is not None:
            return [FieldViolation("policy.temperature", "is only used with exploration: softmax")]
        return []
    why = {DecisionType.RANKING: "a ranking explores by shuffling the whole order, so that each slot's "
                                 "propensity is known",
           DecisionType.NUMERIC: "a numeric decision explores within numeric.exploration_width steps of its "
                                 "best value",
           DecisionType.REGRESSION: "a regression returns its prediction and does not explore"}
    if bp.decision_type in why:
        return [FieldViolation("policy.exploration", f"softmax is for binary and multi_action decisions: "
                               f"{why[bp.decision_type]}; use epsilon_greedy")]
    if policy.temperature is None:
        return [FieldViolation("policy.temperature", "is required with exploration: softmax (in product-value "
                               "units: the smaller, the greedier; e.g. 0.05)")]
    return []


def _personalization_problems(bp: Blueprint) -> list[FieldViolation]:
    """The view Looper writes is named after its use case, so that a blueprint can never
    write into a view of the product's (or another use case's)."""
    if not bp.personalization:
        return []
    problems = []
    if len(bp.entities) != 1:
        problems.append(FieldViolation("personalization",
                                       "needs exactly one entity (the subject whose outcomes are counted)"))
    if not bp.personalization.view.startswith(f"{bp.name}_"):
        problems.append(FieldViolation("personalization.view", f"must start with the use case's name: "
                                       f"{bp.name}_<something>, e.g. {bp.name}_outcomes"))
    return problems


_TYPE_NAMES = {"string_type": "a string", "int_type": "an integer", "float_type": "a number",
               "bool_type": "true or false", "list_type": "a list", "dict_type": "a mapping",
               "model_type": "a mapping", "model_attributes_type": "a mapping"}


_UNION_MEMBERS = {"str", "bool", "int", "float"}  # how pydantic names the members of a scalar union


def _violations(errors: list[dict]) -> list[FieldViolation]:
    """Pydantic's errors as field violations. A value that fits no member of a union (a
    ``default_decision`` that is a list) is one violation naming every form it may take,
    where pydantic reports one per member, each under the member's type name as a key."""
    found: list[FieldViolation | tuple] = []  # a union's location holds its place in the order
    forms: dict[tuple, list[str]] = {}
    for error in errors:
        loc, kind = tuple(error["loc"]), error["type"]
        if loc and loc[-1] in _UNION_MEMBERS and kind in _TYPE_NAMES:
            if loc[:-1] not in forms:
                forms[loc[:-1]] = []
                found.append(loc[:-1])
            forms[loc[:-1]].append(_TYPE_NAMES[kind])
        else:
            found.append(_violation(error))
    return [FieldViolation(_path(v), "must be " + _either(forms[v])) if isinstance(v, tuple) else v for v in found]


def _either(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _path(loc: tuple) -> str:
    """A pydantic location as the blueprint spells the key path: ``labels[1].window``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not part.startswith(("[", "function-")):  # pydantic's own markers, e.g. "[key]"
            path += f".{part}" if path else part
    return path


def _violation(error: dict) -> FieldViolation:
    """A pydantic error as a field violation with the key path as the blueprint spells it."""
    path = _path(error["loc"])
    kind = error["type"]
    if kind == "missing":
        return FieldViolation(path, "is required")
    if kind == "extra_forbidden":
        return FieldViolation(path, "unknown key")
    if kind in _TYPE_NAMES:
        return FieldViolation(path, f"must be {_TYPE_NAMES[kind]}")
    if kind == "value_error":
        return FieldViolation(path, str(error["ctx"]["error"]))
    if kind == "greater_than":
        return FieldViolation(path, f"must be greater than {error['ctx']['gt']}")
    if kind in ("greater_than_equal", "less_than_equal"):
        bound = "at least" if kind == "greater_than_equal" else "at most"
        limit = error["ctx"]["ge" if kind == "greater_than_equal" else "le"]
        return FieldViolation(path, f"must be {bound} {limit}")
    if kind in ("too_short", "too_long"):
        bound = "at least" if kind == "too_short" else "at most"
        return FieldViolation(path, f"must have {bound} {error['ctx']['min_length' if kind == 'too_short' else 'max_length']} items")
    return FieldViolation(path, error["msg"])
