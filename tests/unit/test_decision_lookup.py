"""Finding a logged decision by id from another service (``DecisionLookup``), and reading it
while a deletion may be rewriting its segment: a stale address is followed to the new one
the index holds, never answered with another decision's record."""

from __future__ import annotations

from contextlib import closing

from services.decisions.log import DecisionLog, DecisionLookup, _read_at
from services.platform.id_index import IdempotencyIndex
from tests.unit.test_decision_log import paths, record  # noqa: F401 - the fixture


def logged(paths, *ids):  # noqa: F811
    log = DecisionLog(paths)
    for decision_id in ids:
        log.record_once("uc", decision_id, lambda d=decision_id: record(d))
    log.close()


def test_a_logged_decision_is_found_and_an_unknown_or_unfinished_one_is_not(paths):  # noqa: F811
    logged(paths, "d1")
    index = IdempotencyIndex(paths.index)
    index.claim("uc", ["d2"], 0.0)  # being decided by a process right now: not logged yet
    index.close()
    lookup = DecisionLookup(paths)
    try:
        assert lookup.find("uc", "d1").decision_id == "d1"
        assert lookup.find("uc", "d2") is None and lookup.find("uc", "d9") is None and lookup.find("other", "d1") is None
    finally:
        lookup.close()


def test_a_decision_being_deleted_is_hidden(paths):  # noqa: F811
    logged(paths, "d1", "d2")
    lookup = DecisionLookup(paths, hidden=lambda found: found.decision_id == "d1")
    try:
        assert lookup.find("uc", "d1") is None and lookup.find("uc", "d2").decision_id == "d2"
    finally:
        lookup.close()


def test_a_stale_address_is_followed_to_the_one_the_index_now_holds(paths):  # noqa: F811
    logged(paths, "d1", "d2")
    with closing(IdempotencyIndex(paths.index)) as index:
        first, second = index.get("uc", "d1").address, index.get("uc", "d2").address
        # As if a rewrite had moved d2 and left d1's bytes where the caller last saw d2:
        assert _read_at(paths.log, index, "uc", "d2", first).decision_id == "d2"
        assert _read_at(paths.log, index, "uc", "d2", second).decision_id == "d2"
        assert _read_at(paths.log, index, "uc", "d2", None).decision_id == "d2", "no address: ask the index"


def test_an_address_that_holds_another_record_and_is_still_the_indexs_answers_nothing(paths):  # noqa: F811
    logged(paths, "d1", "d2")
    with closing(IdempotencyIndex(paths.index)) as index:
        first = index.get("uc", "d1").address
        index.move(index.get("uc", "d2").address.segment, [("uc", "d2", first)])  # the index points d2 at d1
        assert _read_at(paths.log, index, "uc", "d2", first) is None, "d1's record answered for d2"
        index.forget([("uc", "d2")])
        assert _read_at(paths.log, index, "uc", "d2", first) is None
