"""Asking for a deletion (the Trainer's ``DeleteUseCase`` and ``DeleteSubjectData``): checks
what is asked, records it, and makes what it covers disappear at once: the tombstone hides a
subject's decisions from every reader, and a use case's blueprints are taken out of sight, so
that every call naming it answers NOT_FOUND. The deletion job does the rest."""

from __future__ import annotations

from typing import Callable

from services.blueprints.store import BlueprintStore
from services.deletions.store import Deletion, DeletionKind, DeletionStore
from services.platform.errors import FailedPrecondition
from services.platform.validation import MAX_KEY_VALUE, Violations


class DeletionRequests:
    def __init__(self, store: DeletionStore, blueprints: BlueprintStore, wake: Callable[[], None] = lambda: None):
        self.store, self.blueprints = store, blueprints
        self.wake = wake  # runs the deletion job now

    def delete_use_case(self, use_case: str, request_id: str = "", requested_by: str = "") -> tuple[Deletion, bool]:
        """The deletion of a use case (its blueprints, models, runs, experiments, training
        table, joined rows, id-index entries, log records and personalization views); returns
        it and whether this request created it."""
        earlier = self.store.earlier(use_case, request_id, DeletionKind.USE_CASE, {})
        if earlier is not None:
            return earlier, False
        running = self.store.deleting_use_case(use_case)
        if running is not None:
            return running, False
        latest = self.blueprints.latest_version(use_case)  # NOT_FOUND for an unknown use case
        versions = [self.blueprints.get(use_case, v).blueprint for v in range(1, latest + 1)]
        views = sorted({b.personalization.view for b in versions if b.personalization})
        deletion, created = self.store.create(DeletionKind.USE_CASE, use_case, {}, request_id, requested_by,
                                              details={"views": views})
        if created:
            self.blueprints.retire(use_case, deletion.deletion_id)
            self.wake()
        return deletion, created

    def delete_subject(self, use_case: str, subject: dict[str, str], request_id: str = "",
                       requested_by: str = "") -> tuple[Deletion, bool]:
        """The deletion of one subject's data in a use case (its decisions made until now, their
        outcome events, labels, training rows and personalization rows); returns it and
        whether this request created it."""
        earlier = self.store.earlier(use_case, request_id, DeletionKind.SUBJECT, subject)
        if earlier is not None:
            return earlier, False
        if self.store.deleting_use_case(use_case) is not None:
            raise FailedPrecondition(f"use case {use_case!r} is being deleted with all its subjects")
        blueprint = self.blueprints.latest(use_case)  # NOT_FOUND for an unknown use case
        v = Violations()
        for entity in blueprint.entities:
            if not subject.get(entity):
                v.add(f"subject.{entity}", "is required by the blueprint")
        for key, value in subject.items():
            if key not in blueprint.entities:
                v.add(f"subject.{key}"[:200], f"is not an entity of the use case; expected {list(blueprint.entities)}")
            else:
                v.check_value(f"subject.{key}", value, MAX_KEY_VALUE)
        v.raise_if_any()
        deletion, created = self.store.create(DeletionKind.SUBJECT, use_case, dict(subject), request_id, requested_by)
        if created:
            self.wake()
        return deletion, created

    def get(self, deletion_id: str) -> Deletion:
        return self.store.get(deletion_id)

    def blocks(self, use_case: str) -> None:
        """Refuses to create a use case again while its deletion runs (FAILED_PRECONDITION)."""
        deletion = self.store.deleting_use_case(use_case)
        if deletion is not None:
            raise FailedPrecondition(f"use case {use_case!r} is being deleted (deletion {deletion.deletion_id}); "
                                     "apply its blueprint again once GetDeletion says DONE")
