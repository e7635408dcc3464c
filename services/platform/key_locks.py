"""Per-key mutual exclusion: callers working on the same key (a decision id) take turns,
callers on different keys never wait for each other."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Hashable, Iterator


class KeyLocks:
    def __init__(self) -> None:
        self._held: dict[Hashable, list] = {}  # key -> [lock, number of holders and waiters]
        self._guard = threading.Lock()

    @contextmanager
    def hold(self, key: Hashable) -> Iterator[None]:
        with self._guard:
            entry = self._held.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        entry[0].acquire()
        try:
            yield
        finally:
            entry[0].release()
            with self._guard:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._held[key]

    def __len__(self) -> int:
        with self._guard:
            return len(self._held)
