"""The message ids of each conversation, both sides, for the quick exit."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections import OrderedDict

from bot.core import tasks
from storage import ChatKey, MessageIds
from storage.rows import MESSAGE_LIFETIME

log = logging.getLogger("reachable.channel")
RETRY_AT_MOST = 60.0  # seconds between tries of a batch that failed


class MessageLedger:
    """Message ids of each conversation, both sides, for the quick exit.

    They stay in memory until the chat has something stored (a report draft, or a report kept
    or sent): someone who only reads the menu, advice or services leaves no row naming their
    chat, not even a keyed hash. From then on they are also written down, in one transaction
    every quarter second (a flood of a thousand messages costs a handful of writes; a batch that
    fails is tried again), so a restart still finds them; when the draft goes with nothing kept,
    the rows go too. A quick exit writes its chat's ids still waiting for a batch before it is
    committed (one that dies then finds them after a restart). A crash can lose the last quarter
    second of ids, and a restart loses those held only in memory: those few messages would stay."""

    def __init__(self, store: MessageIds, every: float = 0.25, limit: int = 100_000) -> None:
        self.store = store
        self.every = every
        self.limit = limit
        self._memory: OrderedDict[ChatKey, list[tuple[int, float]]] = OrderedDict()
        self._persisted: set[ChatKey] = set()
        self._pending: dict[ChatKey, list[int]] = {}
        self._task: asyncio.Task[None] | None = None

    def note(self, key: ChatKey, message_ids: list[int]) -> None:
        if not message_ids:
            return
        now = time.monotonic()
        young = [(i, at) for i, at in self._memory.get(key, []) if now - at < MESSAGE_LIFETIME]
        self._memory[key] = young + [(i, now) for i in message_ids]
        self._memory.move_to_end(key)
        while len(self._memory) > self.limit:
            old, _ = self._memory.popitem(last=False)
            self._persisted.discard(old)
        if key in self._persisted:
            self._queue(key, message_ids)

    def _queue(self, key: ChatKey, message_ids: list[int]) -> None:
        self._pending.setdefault(key, []).extend(message_ids)
        self._batches_running()

    def _batches_running(self) -> None:
        if self._task is None or self._task.done():
            # Its own context: queued during a turn, it must not take the turn's database connection.
            self._task = asyncio.create_task(self._flush_soon(), context=contextvars.Context())

    def persist(self, key: ChatKey) -> None:
        """The chat now has something stored: write its ids down, those noted so far included."""
        if key not in self._persisted:
            self._persisted.add(key)
            self._queue(key, [i for i, _ in self._memory.get(key, [])])

    async def unpersist(self, key: ChatKey) -> None:
        """The draft went and nothing was kept: the ids go back to memory only."""
        if key in self._persisted:
            self._persisted.discard(key)
            self._pending.pop(key, None)
            await self.store.forget_messages(key)

    async def write_now(self, key: ChatKey) -> None:
        """Write this chat's ids still waiting for the next batch, now (nothing if none)."""
        pending = self._pending.pop(key, None)
        if pending and not await self._write({key: pending}):
            self._batches_running()  # the batch that took them may have ended meanwhile

    async def _flush_soon(self) -> None:
        """A batch every ``every`` seconds while ids wait: those noted while one is written go in
        the next, and a batch that failed is tried again, later each time (a minute at most)."""
        wait = self.every
        while self._pending:
            await asyncio.sleep(wait)
            wait = self.every if await self.flush() else min(wait * 2, RETRY_AT_MOST)

    async def flush(self) -> bool:
        """Write every waiting id now; False if that failed (they wait for the next batch)."""
        batch, self._pending = self._pending, {}
        return not batch or await self._write(batch)

    async def _write(self, batch: dict[ChatKey, list[int]]) -> bool:
        try:
            await self.store.remember_batch(batch)
        except Exception as error:  # kept for the next batch: the quick exit still needs them
            for key, ids in batch.items():
                self._pending.setdefault(key, [])[:0] = ids
            log.error("message ids not written: %s", type(error).__name__)
            return False
        return True

    async def take(self, key: ChatKey) -> list[int]:
        """Every id of this chat still young enough to delete, forgetting them."""
        held = [i for i, at in self._memory.pop(key, []) if time.monotonic() - at < MESSAGE_LIFETIME]
        self._pending.pop(key, None)
        self._persisted.discard(key)
        stored = await self.store.take_messages(key)
        return sorted(set(held) | set(stored))

    async def close(self) -> None:
        await tasks.stop(self._task)
        await self.flush()
