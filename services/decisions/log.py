"""The decision log: every decision durable before it is answered, found again by id, and
read in order by the label joiner.

Writing: each Decision process appends to its own segment (group-committed fsync). A
decision id is the caller's idempotency key; the shared index (``IdempotencyIndex``) lets
every process on the data directory agree on it: the first call with an id claims it,
decides and logs; a retry, on any process, replays the logged decision. Ids are remembered
for the idempotency window (at least the longest label window of any use case); a retry
after it gets FAILED_PRECONDITION rather than a second decision.

Reading: ``DecisionStream`` hands the log to a consumer in order, with its progress kept
by the log, so that retention deletes only segments every consumer has read.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterator

from services.decisions.record import DecisionRecord
from services.platform.data_dir import DecisionPaths
from services.platform.durable_log import (SPARE_AFTER_BYTES, Durability, DurableLog, LogConsumer, LogPosition,
                                          RecordAddress, deletable_segments, iter_records, list_segments,
                                          read_record)
from services.platform.errors import FailedPrecondition, Unavailable
from services.platform.id_index import IdempotencyIndex, IndexEntry
from services.platform.key_locks import KeyLocks
from services.platform.log_rewrite import LogEraser, pending_rewrites

PREFIX = "decisions"
# The log's readers: retention keeps every segment until each of them has read it.
CONSUMERS = ("label-joiner",)
CLAIM_WAIT_SECONDS = 5.0  # how long a retry waits for another process still deciding its id
# Whether a logged decision is hidden from readers: a deletion covers it (services.deletions).
Hidden = Callable[[DecisionRecord], bool]


@dataclass(frozen=True)
class RetentionResult:
    segments_deleted: int
    ids_forgotten: int


class DecisionLog:
    def __init__(self, paths: DecisionPaths, window: Callable[[], timedelta] = lambda: timedelta(days=1),
                 segment_seconds: float = 3600.0,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 durability: Durability = Durability.FSYNC, hidden: Hidden | None = None,
                 spare_after_bytes: int = SPARE_AFTER_BYTES):
        self.paths = paths
        self.hidden = hidden or (lambda record: False)
        self.window = window  # the idempotency window now (it grows with the longest label window)
        self.clock = clock
        self.segment_seconds = segment_seconds
        self._index = IdempotencyIndex(paths.index)
        self._in_process = KeyLocks()  # calls of this process with one id take turns
        self._log = DurableLog(paths.log, PREFIX, segment_seconds=segment_seconds, durability=durability,
                               spare_after_bytes=spare_after_bytes)

    @property
    def writable(self) -> bool:
        """Whether decisions can be logged now (False after a failed write to the log or its
        index, until there is room again)."""
        return self._log.check_space() and self._index.health.check()

    def record_once(self, use_case: str, decision_id: str,
                    decide: Callable[[], DecisionRecord]) -> tuple[DecisionRecord, bool]:
        """The decision logged under this id, made by ``decide`` and logged durably if there
        is none yet; returns it and whether it was an earlier one (a replay)."""
        answer = self.record_together([(use_case, decision_id)], lambda positions: [decide()])[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def record_many(self, requests: list[tuple[str, str, Callable[[], DecisionRecord]]]
                    ) -> list[tuple[DecisionRecord, bool] | Exception]:
        """``record_once`` for many ids at once, each request with its own ``decide``."""
        return self.record_together([(use_case, decision_id) for use_case, decision_id, _ in requests],
                                    lambda positions: [_attempt(requests[p][2]) for p in positions])

    def record_together(self, keys: list[tuple[str, str]],
                        decide: Callable[[list[int]], list[DecisionRecord | Exception]]
                        ) -> list[tuple[DecisionRecord, bool] | Exception]:
        """For each (use case, decision id): the decision logged under it, or a new one made
        and logged durably. The new ids are claimed together (one transaction per use case),
        ``decide`` is called once with the positions (in ``keys``) of those that need a
        decision and returns each one's record or its own error, and the new records share
        one durable write. Each key gets its answer, (record, whether it is a replay), or
        the error it alone met; a key repeated in the call is a replay of its first
        occurrence. A failed write raises, after releasing every id it claimed."""
        first: dict[tuple[str, str], int] = {}
        for position, key in enumerate(keys):
            first.setdefault(key, position)
        with ExitStack() as held:
            for key in sorted(first):
                held.enter_context(self._in_process.hold(key))
            answers = self._claim_all(list(first))
            ours = [key for key in first if key not in answers]
            if ours:
                try:
                    made = decide([first[key] for key in ours])
                except BaseException:
                    self._release(ours)
                    raise
                failed = [key for key, record in zip(ours, made) if isinstance(record, Exception)]
                self._release(failed)
                answers.update(zip(failed, (record for record in made if isinstance(record, Exception))))
                self._log_many([(key, record) for key, record in zip(ours, made) if not isinstance(record, Exception)])
                answers.update((key, (record, False)) for key, record in zip(ours, made)
                               if not isinstance(record, Exception))
        return [answers[key] if first[key] == position or isinstance(answers[key], Exception)
                else (answers[key][0], True) for position, key in enumerate(keys)]

    def _claim_all(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[DecisionRecord, bool] | Exception]:
        """Claims every id nobody has used, one transaction per use case; returns the
        answers of the others: an earlier decision's replay, or why there is none."""
        by_use_case: dict[str, list[str]] = {}
        for use_case, decision_id in keys:
            by_use_case.setdefault(use_case, []).append(decision_id)
        answers: dict[tuple[str, str], tuple[DecisionRecord, bool] | Exception] = {}
        now = self.clock().timestamp()
        for use_case, ids in by_use_case.items():
            try:
                taken = self._index.claim(use_case, ids, now)
            except Exception as err:  # noqa: BLE001 - the index cannot be written: these ids' error
                answers.update(((use_case, i), err) for i in ids)
                continue
            for decision_id in taken:  # used before, or being decided by another call
                try:
                    earlier = self._claim(use_case, decision_id)
                except Exception as err:  # noqa: BLE001 - this id's own error
                    answers[(use_case, decision_id)] = err
                    continue
                if earlier is not None:
                    answers[(use_case, decision_id)] = (earlier, True)
        return answers

    def _release(self, keys: list[tuple[str, str]]) -> None:
        """Gives up claims (their decision failed, or its write): the ids are free again."""
        by_use_case: dict[str, list[str]] = {}
        for use_case, decision_id in keys:
            by_use_case.setdefault(use_case, []).append(decision_id)
        for use_case, ids in by_use_case.items():
            self._index.release(use_case, ids)

    def _log_many(self, made: list[tuple[tuple[str, str], DecisionRecord]]) -> None:
        if not made:
            return
        try:
            addresses = self._log.append_many([record.to_dict() for _, record in made])
        except BaseException:
            self._release([key for key, _ in made])
            raise
        by_use_case: dict[str, list] = {}
        for ((use_case, decision_id), record), address in zip(made, addresses):
            by_use_case.setdefault(use_case, []).append((decision_id, address, record.decide_time.timestamp()))
        for use_case, items in by_use_case.items():
            self._index.complete(use_case, items)

    def find(self, use_case: str, decision_id: str) -> DecisionRecord | None:
        """The logged decision with this id; None if there is none."""
        entry = self._index.get(use_case, decision_id)
        if entry is None or not entry.done:
            return None
        return self._read(use_case, decision_id, entry)

    def retention(self) -> RetentionResult:
        """Deletes segments older than the window that every consumer has read, and
        forgets ids older than twice the window (between one and two windows, a retry is
        refused; after that an id is free again)."""
        window = self.window()
        now = self.clock().timestamp()
        segments = deletable_segments(self.paths.log, PREFIX, self.paths.consumers, list(CONSUMERS),
                                      older_than=now - window.total_seconds(),
                                      segment_seconds=self.segment_seconds)
        for segment in segments:
            segment.unlink(missing_ok=True)
        forgotten = self._index.prune(before=now - 2 * window.total_seconds())
        return RetentionResult(len(segments), forgotten)

    def close(self) -> None:
        self._log.close()
        self._index.close()

    # --- claims ------------------------------------------------------------------------
    def _claim(self, use_case: str, decision_id: str) -> DecisionRecord | None:
        """Claims the id, or returns the decision already logged under it."""
        deadline = time.monotonic() + CLAIM_WAIT_SECONDS
        while True:
            entry = self._index.claim(use_case, [decision_id], self.clock().timestamp()).get(decision_id)
            if entry is None:
                return None  # ours now
            if entry.done:
                record = self._read(use_case, decision_id, entry)
                if record is None:
                    raise FailedPrecondition(f"decision {decision_id!r} of use case {use_case!r} is no longer in "
                                             f"its log (past its retention, or deleted); use a new decision id")
                return record
            if not entry.owner_alive():
                recovered = self._recover(use_case, decision_id, entry)
                if recovered is not None or self._index.take_over(use_case, decision_id, entry.owner,
                                                                  self.clock().timestamp()):
                    return recovered
            elif time.monotonic() > deadline:
                raise Unavailable(f"decision {decision_id!r} is still being made by another call; retry")
            time.sleep(0.002)

    def _recover(self, use_case: str, decision_id: str, entry: IndexEntry) -> DecisionRecord | None:
        """A process died between logging a decision and completing its claim: find the
        decision in that process's segments, so a retry replays it instead of deciding twice."""
        for segment in list_segments(self.paths.log, f"{PREFIX}-{entry.owner}"):
            for data, position in iter_records(segment):
                if data["use_case"] == use_case and data["decision_id"] == decision_id:
                    record = DecisionRecord.from_dict(data)
                    self._index.complete(use_case, [(decision_id, position.address, record.decide_time.timestamp())])
                    return record
        return None

    def _read(self, use_case: str, decision_id: str, entry: IndexEntry) -> DecisionRecord | None:
        window = self.window()
        if self.clock().timestamp() - entry.time > window.total_seconds():
            raise FailedPrecondition(
                f"decision id {decision_id!r} of use case {use_case!r} was used more than "
                f"{_human(window)} ago, outside the idempotency window; use a new decision id")
        record = _read_at(self.paths.log, self._index, use_case, decision_id, entry.address)
        return None if record is None or self.hidden(record) else record


class DecisionLookup:
    """Read-only lookup of logged decisions by id, for other services (Feedback checks that
    an outcome names one of its decision's items); it writes nothing."""

    def __init__(self, paths: DecisionPaths, hidden: Hidden | None = None):
        self.paths = paths
        self.hidden = hidden or (lambda record: False)
        self._index = IdempotencyIndex(paths.index)

    def find(self, use_case: str, decision_id: str) -> DecisionRecord | None:
        entry = self._index.get(use_case, decision_id)
        if entry is None or not entry.done or entry.address is None:
            return None
        record = _read_at(self.paths.log, self._index, use_case, decision_id, entry.address)
        return None if record is None or self.hidden(record) else record

    def close(self) -> None:
        self._index.close()


class DecisionStream:
    """A consumer's ordered view of the decision log (the label joiner's input)."""

    def __init__(self, paths: DecisionPaths, consumer: str):
        self._paths = paths
        self._consumer = LogConsumer(paths.log, PREFIX, paths.consumers, consumer)

    def pending(self) -> Iterator[tuple[DecisionRecord, LogPosition]]:
        for data, position in self._consumer.pending():
            yield DecisionRecord.from_dict(data), position

    def advance(self, position: LogPosition) -> None:
        self._consumer.advance(position)

    def commit(self) -> None:
        """Saves the progress: what was advanced over is not handed out again."""
        self._consumer.save()

    def reload(self) -> None:
        """Picks up the progress another process saved, after finishing a rewrite of the log
        that was cut short (the caller holds the consumers' lock, as the rewrite did)."""
        finish_interrupted_rewrites(self._paths)
        self._consumer.reload()

    def backlog_bytes(self) -> int:
        return self._consumer.backlog_bytes()


def _attempt(decide: Callable[[], DecisionRecord]) -> DecisionRecord | Exception:
    try:
        return decide()
    except Exception as err:  # noqa: BLE001 - returned as this request's own error
        return err


def _human(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def iter_decisions(paths: DecisionPaths) -> Iterator[DecisionRecord]:
    """Every decision in the log, oldest segment first (for tools and the demo; services
    read through ``DecisionLog`` and ``DecisionStream``)."""
    for segment in list_segments(paths.log, PREFIX):
        for data, _ in iter_records(segment):
            yield DecisionRecord.from_dict(data)


def _read_at(folder, index: IdempotencyIndex, use_case: str, decision_id: str,
             address: RecordAddress | None) -> DecisionRecord | None:
    """The decision at an address from the index. A deletion may rewrite its segment at that
    moment (services.platform.log_rewrite): then the index holds a new address, read again."""
    for _ in range(3):
        data = read_record(folder, address) if address else None
        if data is not None and (data.get("use_case"), data.get("decision_id")) == (use_case, decision_id):
            return DecisionRecord.from_dict(data)
        entry = index.get(use_case, decision_id)
        if entry is None or entry.address == address:
            return None
        address = entry.address
    return None


# --- deletion: the decision log's side (services.deletions) ------------------------------
def record_key(data: dict) -> tuple[str, str]:
    """What identifies a logged decision in the index: its use case and id."""
    return data["use_case"], data["decision_id"]


def decision_log_eraser(paths: DecisionPaths, segment_seconds: float, index: IdempotencyIndex) -> LogEraser:
    """The decision log as a deletion rewrites it, keeping the shared id index in step."""

    def reindex(old: str, new: str | None, kept: list, dropped: list[dict]) -> list[tuple[str, str]]:
        if kept:
            index.move(old, [(*record_key(record), address) for record, address in kept])
        return index.forget([record_key(record) for record in dropped], segment=old) if dropped else []

    return LogEraser(paths.log, PREFIX, paths.consumers, segment_seconds, record_key, reindex)


def finish_interrupted_rewrites(paths: DecisionPaths) -> int:
    """Finishes a rewrite of the decision log that a crash cut short (see log_rewrite)."""
    if not pending_rewrites(paths.log):
        return 0
    index = IdempotencyIndex(paths.index)
    try:
        return decision_log_eraser(paths, 0.0, index).finish()
    finally:
        index.close()
