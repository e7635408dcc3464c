"""Property-based fuzz of every RPC through the real servers: whatever a caller sends, the
answer is a status the caller can act on, never INTERNAL or UNKNOWN (which would mean an
unhandled error inside Looper).

Requests are generated from the messages' descriptors: strings that look like real ids and
names (so calls get past the first checks) mixed with arbitrary text, numbers including NaN
and infinities, timestamps far outside any calendar, maps and lists of bounded size. The run
is derandomized with a fixed budget in `make test`; `make fuzz` runs it longer
(LOOPER_FUZZ_EXAMPLES examples per RPC).
"""

from __future__ import annotations

import os

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from looper import LooperError
from looperpb.v1 import decision_pb2, feedback_pb2, trainer_pb2

from tests.conftest import SIMPLE_BLUEPRINT

EXAMPLES = int(os.environ.get("LOOPER_FUZZ_EXAMPLES", "40"))
NEVER = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
USE_CASES = st.sampled_from(["contract_test", "no_such_case", "", "Contract", "../x"])
IDS = st.one_of(st.sampled_from(["d-1", "e-1", "m000001", "run-0123456789ab", "u1"]),
                st.from_regex(r"[A-Za-z0-9._:\-]{1,12}", fullmatch=True))
LONG = st.integers(300, 6000).map(lambda n: "x" * n)
TEXT = st.one_of(IDS, st.text(max_size=40), st.text(alphabet="\x00\n/\\.%", max_size=8), LONG)
FEATURE_NAMES = st.one_of(st.sampled_from(["hour_of_day", "platform", "mood", "", "label"]), LONG)
SCALARS = {
    FieldDescriptor.TYPE_DOUBLE: st.floats(allow_nan=True, allow_infinity=True),
    FieldDescriptor.TYPE_FLOAT: st.floats(allow_nan=True, allow_infinity=True, width=32),
    FieldDescriptor.TYPE_INT64: st.integers(-2**63, 2**63 - 1),
    FieldDescriptor.TYPE_INT32: st.integers(-2**31, 2**31 - 1),
    FieldDescriptor.TYPE_BOOL: st.booleans(),
}


def message(descriptor, depth: int = 0):
    """A strategy for messages of ``descriptor``, fields set at random."""
    fields = {f.name: field_value(f, depth) for f in descriptor.fields}
    return st.fixed_dictionaries({}, optional=fields).map(lambda values: _build(descriptor, values))


def field_value(field, depth: int):
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key = FEATURE_NAMES if "context" in field.name or "features" in field.name else st.sampled_from(
            ["user_id", "org", ""])
        value = field.message_type.fields_by_name["value"]
        return st.dictionaries(key, single(value, depth + 1), max_size=4)
    if field.is_repeated:
        return st.lists(single(field, depth + 1), max_size=3 if depth else 5)
    return single(field, depth)


def single(field, depth: int):
    if field.message_type is not None:
        if field.message_type.full_name == "google.protobuf.Timestamp":
            return st.builds(lambda s, n: {"seconds": s, "nanos": n}, st.integers(-2**62, 2**62),
                             st.integers(-2**31, 2**31 - 1))
        if depth > 2:
            return st.just({"__message__": None})
        return message(field.message_type, depth + 1).map(lambda m: {"__message__": m})
    if field.type == FieldDescriptor.TYPE_ENUM:
        return st.integers(-2, 5)
    if field.type == FieldDescriptor.TYPE_STRING:
        return USE_CASES if field.name == "use_case" else TEXT
    return SCALARS.get(field.type, st.just(None))


def _build(descriptor, values: dict):
    from google.protobuf import message_factory

    msg = message_factory.GetMessageClass(descriptor)()
    for name, value in values.items():
        _assign(msg, descriptor.fields_by_name[name], value)
    return msg


def _assign(msg, field, value) -> None:
    target = getattr(msg, field.name)
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        value_field = field.message_type.fields_by_name["value"]
        for key, item in value.items():
            if value_field.message_type is not None:
                _copy(target[key], item)
            else:
                target[key] = item
    elif field.is_repeated:
        for item in value:
            _copy(target.add(), item) if field.message_type is not None else target.append(item)
    elif field.message_type is not None:
        _copy(target, value)
    else:
        setattr(msg, field.name, value)


def _copy(target, value) -> None:
    if "__message__" in value:
        if value["__message__"] is not None:
            target.CopyFrom(value["__message__"])
    else:  # a Timestamp, possibly far outside any calendar
        target.seconds, target.nanos = value["seconds"], max(-999_999_999, min(999_999_999, value["nanos"]))


RPCS = [(service, method.name, method.input_type)
        for service, module in (("decision", decision_pb2), ("feedback", feedback_pb2), ("trainer", trainer_pb2))
        for s in module.DESCRIPTOR.services_by_name.values() for method in s.methods]


@pytest.mark.parametrize("service, method, request_type", RPCS, ids=[r[1] for r in RPCS])
def test_no_request_makes_looper_fail_internally(client, service, method, request_type):
    stub = {"decision": client.decision, "feedback": client.feedback, "trainer": client.trainer}[service]
    seen = []
    if method == "DeleteUseCase":  # deletes a use case of its own, never the one the other RPCs are fuzzed in
        client.apply_blueprint(SIMPLE_BLUEPRINT.replace("name: contract_test", "name: fuzz_deletable"))

    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(message(request_type))
    def call(request):
        if method == "DeleteUseCase" and request.use_case == "contract_test":
            request.use_case = "fuzz_deletable"
        try:
            client._call(getattr(stub, method), request, 10)
        except LooperError as err:
            assert err.code not in NEVER, f"{method} answered {err.code.name} to {request}: {err.message}"
            assert "Traceback" not in err.message
        seen.append(request)

    call()
    assert len(seen) >= min(EXAMPLES, 5), "the fuzz made too few calls to mean anything"
