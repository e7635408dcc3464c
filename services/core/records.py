"""The records that flow between services through the data directory: decisions (written
by Decision, read by the label joiner and the Trainer) and outcome events (written by
Feedback). Their dict form is what the durable logs and the offline tables hold."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import Any

FeatureScalar = float | int | str | bool | None


@dataclass(frozen=True)
class ScoredAction:
    action_id: str
    score: float
    propensity: float


@dataclass(frozen=True)
class DecisionRecord:
    """One decision as answered and logged, with every feature value the model saw."""

    decision_id: str
    use_case: str
    action: str
    score: float
    model_version: str
    blueprint_version: int
    propensity: float
    is_default: bool
    is_exploration: bool
    decide_time: datetime
    subject: dict[str, str]
    features: dict[str, FeatureScalar]
    context: dict[str, FeatureScalar]
    ranking: tuple[ScoredAction, ...] = ()
    traceparent: str = ""

    def to_dict(self) -> dict[str, Any]:
        # Built by hand: dataclasses.asdict deep-copies every value, which costs more than
        # the rest of logging on the decision path.
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["decide_time"] = self.decide_time.isoformat()
        data["ranking"] = [{"action_id": r.action_id, "score": r.score, "propensity": r.propensity}
                           for r in self.ranking]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DecisionRecord":
        data = dict(data)
        data["decide_time"] = datetime.fromisoformat(data["decide_time"])
        data["ranking"] = tuple(ScoredAction(**r) for r in data.get("ranking", ()))
        return cls(**data)


@dataclass(frozen=True)
class OutcomeEvent:
    """Something that happened after a decision, as reported by the product."""

    event_id: str
    use_case: str
    decision_id: str
    outcome: str
    value: float
    event_time: datetime
    receive_time: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    traceparent: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["event_time"] = self.event_time.isoformat()
        data["receive_time"] = self.receive_time.isoformat()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "OutcomeEvent":
        data = dict(data)
        data["event_time"] = datetime.fromisoformat(data["event_time"])
        data["receive_time"] = datetime.fromisoformat(data["receive_time"])
        return cls(**data)
