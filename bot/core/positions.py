"""What the conversation service holds in memory: where each conversation stands, and what
was seen lately."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

from flows import State
from storage import ChatKey

T = TypeVar("T")


class Positions:
    """Where each conversation stands, in memory. Those without any content (a menu, an advice
    page) live only here: nothing reaches the disk for someone who never starts a report, and
    after a restart they start again at the welcome. Drafts are also written to the encrypted
    store every turn; holding them here saves reading them back. Bounded in size and age (the
    age of a draft on disk)."""

    def __init__(
        self,
        limit: int = 100_000,
        ttl: float = 24 * 3600,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.ttl = ttl
        self.clock = clock
        self._held: OrderedDict[bytes, tuple[float, State, bool]] = OrderedDict()

    def held(self, key: ChatKey) -> tuple[State, bool] | None:
        """The state, and whether it is also in storage; None if not held (or too old)."""
        found = self._held.get(key.digest)
        if found is None or self.clock() - found[0] > self.ttl:
            self._held.pop(key.digest, None)
            return None
        return found[1], found[2]

    def get(self, key: ChatKey) -> State | None:
        found = self.held(key)
        return found[0] if found else None

    def put(self, key: ChatKey, state: State, stored: bool = False) -> None:
        self._held[key.digest] = (self.clock(), state, stored)
        self._held.move_to_end(key.digest)
        while len(self._held) > self.limit:
            self._held.popitem(last=False)

    def __len__(self) -> int:
        return len(self._held)


class Lately(Generic[T]):
    """The last ``limit`` things added, in memory (update ids handled lately catch redelivery
    within a run without a read)."""

    def __init__(self, limit: int = 500_000) -> None:
        self.limit = limit
        self._ids: OrderedDict[T, None] = OrderedDict()

    def __contains__(self, item: object) -> bool:
        return item in self._ids

    def add(self, item: T) -> None:
        self._ids[item] = None
        while len(self._ids) > self.limit:
            self._ids.popitem(last=False)
