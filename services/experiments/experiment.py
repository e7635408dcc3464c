"""What an experiment is — its arms, its rules for a verdict — and how a subject is assigned
to an arm.

One use case runs at most one experiment at a time, so a subject is in one arm. Three things
start one: a blueprint's ``experiment:`` section, a model's canary stage (control: the live
model; canary: the new one), and a tuning round (arms with policy parameter overrides).
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from services.blueprints.spec import Blueprint, ExperimentSpec

CONTROL, CANARY = "control", "canary"


class ExperimentKind(str, enum.Enum):
    BLUEPRINT = "blueprint"  # declared in the blueprint's experiment section
    CANARY = "canary"  # a new model against the live one (deployment stages)
    TUNING = "tuning"  # policy parameters proposed by the tuner


class Verdict(str, enum.Enum):
    """Where the evidence stands: a treatment is better, worse (or harmful on a guardrail),
    or there is not enough evidence yet (``CONTINUE``); an experiment that reached its
    maximum sample without a verdict ends ``INCONCLUSIVE``."""

    CONTINUE = "continue"
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    INCONCLUSIVE = "inconclusive"
    STOPPED = "stopped"  # ended by an operator, a newer blueprint or a failure


@dataclass(frozen=True)
class Arm:
    """A share of the subjects, decided by a model (``live``, ``default`` for no model, or a
    version) under the blueprint's policy with ``policy`` overrides (PolicyOverrides keys)."""

    name: str
    share: float
    model: str = "live"
    policy: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Guardrail:
    outcome: str
    max_harm: float
    better: str = "lower"


@dataclass(frozen=True)
class Experiment:
    use_case: str
    experiment_id: str  # also the salt of the assignment
    kind: ExperimentKind
    control: str
    arms: tuple[Arm, ...]
    blueprint_version: int
    start_time: datetime
    min_sample: int = 200
    max_sample: int = 100_000
    alpha: float = 0.05
    guardrails: tuple[Guardrail, ...] = ()
    end_time: datetime | None = None
    verdict: Verdict = Verdict.CONTINUE
    reason: str = ""

    def arm(self, name: str) -> Arm:
        return next(arm for arm in self.arms if arm.name == name)

    @property
    def treatments(self) -> list[Arm]:
        return [arm for arm in self.arms if arm.name != self.control]

    def assign(self, subject_key: str) -> Arm:
        """The subject's arm: a uniform draw from a hash of the experiment id and the
        subject's key, walked along the arms' shares. The same subject always gets the same
        arm of an experiment, and different experiments split subjects independently."""
        digest = hashlib.blake2b(f"{self.experiment_id}\0{subject_key}".encode(), digest_size=8).digest()
        draw = int.from_bytes(digest, "little") / float(1 << 64)
        cumulative = 0.0
        for arm in self.arms:
            cumulative += arm.share
            if draw < cumulative:
                return arm
        return self.arms[-1]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(kind=self.kind.value, verdict=self.verdict.value, start_time=self.start_time.isoformat(),
                    end_time=self.end_time.isoformat() if self.end_time else None)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Experiment":
        return cls(**{**data, "kind": ExperimentKind(data["kind"]), "verdict": Verdict(data["verdict"]),
                      "arms": tuple(Arm(**a) for a in data["arms"]),
                      "guardrails": tuple(Guardrail(**g) for g in data["guardrails"]),
                      "start_time": datetime.fromisoformat(data["start_time"]),
                      "end_time": datetime.fromisoformat(data["end_time"]) if data.get("end_time") else None})


def subject_key(blueprint: Blueprint, subject: dict[str, str]) -> str:
    """What an arm is assigned by: the subject's entity values, in the blueprint's order."""
    return "\0".join(subject.get(entity, "") for entity in blueprint.entities)


def from_blueprint(blueprint: Blueprint, spec: ExperimentSpec, start: datetime) -> Experiment:
    return Experiment(
        use_case=blueprint.name, experiment_id=spec.name, kind=ExperimentKind.BLUEPRINT, control=spec.control,
        arms=tuple(Arm(a.name, a.share, a.model, a.policy.model_dump(exclude_none=True)) for a in spec.arms),
        blueprint_version=blueprint.version, start_time=start, min_sample=spec.min_sample,
        max_sample=spec.max_sample, alpha=spec.alpha,
        guardrails=tuple(Guardrail(**g.model_dump()) for g in spec.guardrails))


def canary(blueprint: Blueprint, version: str, start: datetime) -> Experiment:
    """The canary stage of a model version: ``canary_share`` of the subjects get it, the
    rest stay on the live model."""
    spec = blueprint.deployment
    return Experiment(
        use_case=blueprint.name, experiment_id=f"canary_{version}", kind=ExperimentKind.CANARY, control=CONTROL,
        arms=(Arm(CONTROL, 1.0 - spec.canary_share, "live"), Arm(CANARY, spec.canary_share, version)),
        blueprint_version=blueprint.version, start_time=start, min_sample=spec.min_sample,
        max_sample=spec.max_sample, alpha=spec.alpha,
        guardrails=tuple(Guardrail(**g.model_dump()) for g in spec.guardrails))


def with_overrides(blueprint: Blueprint, overrides: dict[str, Any]) -> Blueprint:
    """The blueprint as an arm runs it: its policy and product-metric weights overridden."""
    if not overrides:
        return blueprint
    policy = {k: v for k, v in overrides.items() if k in ("threshold", "exploration_rate", "temperature", "objective")}
    metric = {k: v for k, v in overrides.items() if k in ("weights", "treatment_cost")}
    copy = blueprint.model_copy(update={
        "policy": blueprint.policy.model_copy(update=policy),
        "product_metric": blueprint.product_metric.model_copy(update=metric)})
    return copy.with_version(blueprint.version)
