"""Every enum the domain keeps mirrors its looper.v1 enum: the same names, and for integer
enums the same numbers, so a value crosses the wire without a hand-written table."""

from __future__ import annotations

import pytest
from looperpb.v1 import decision_pb2, trainer_pb2, types_pb2

from services.blueprints.spec import DecisionType
from services.decisions.record import DefaultReason
from services.deletions.store import DeletionKind, DeletionState
from services.models.registry import ModelStage
from services.trainer.runs import RunState, Trigger


@pytest.mark.parametrize("domain, proto, prefix", [
    (DecisionType, types_pb2.DecisionType, "DECISION_TYPE_"),
    (DefaultReason, decision_pb2.DefaultReason, "DEFAULT_REASON_"),
    (ModelStage, trainer_pb2.ModelStage, "MODEL_STAGE_"),
    (DeletionKind, trainer_pb2.DeletionKind, "DELETION_KIND_"),
    (DeletionState, trainer_pb2.DeletionState, "DELETION_STATE_"),
])
def test_integer_enums_have_the_protos_names_and_numbers(domain, proto, prefix):
    assert {m.name: m.value for m in domain} == {name.removeprefix(prefix): value for name, value in proto.items()}


@pytest.mark.parametrize("domain, proto, prefix", [
    (RunState, trainer_pb2.TrainingRunState, "TRAINING_RUN_STATE_"),
    (Trigger, trainer_pb2.TrainingTrigger, "TRAINING_TRIGGER_"),
])
def test_named_enums_have_every_proto_name(domain, proto, prefix):
    assert {m.name for m in domain} == {name.removeprefix(prefix) for name in proto.keys()} - {"UNSPECIFIED"}
