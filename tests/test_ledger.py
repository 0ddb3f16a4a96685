"""The quick exit's message ids, written down in batches: none is left behind in memory by a
write that was slow or failed, so a quick exit after a restart still deletes them."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from bot.core.ledger import MessageLedger
from storage import ChatKey, MessageIds
from storage.errors import StorageError
from storage.sqlite import SQLiteStore
from tests.test_support import until

CHAT = ChatKey(b"\x01" * 32)


class Disk:
    """The real store, on a disk that is slow, or fails, for the first batches."""

    def __init__(self, store: MessageIds, slow: float = 0.0, failures: int = 0) -> None:
        self.store, self.slow, self.failures = store, slow, failures
        self.started = asyncio.Event()
        self.written = 0

    async def remember_batch(self, batch: Mapping[ChatKey, Sequence[int]]) -> None:
        self.started.set()
        await asyncio.sleep(self.slow)
        self.slow = 0.0
        if self.failures:
            self.failures -= 1
            raise StorageError("the disk is full")
        await self.store.remember_batch(batch)
        self.written += 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


async def test_ids_noted_while_a_batch_is_being_written_go_in_the_next(store: SQLiteStore) -> None:
    disk = Disk(store, slow=0.3)
    ledger = MessageLedger(disk, every=0.05)
    ledger.note(CHAT, [1])
    ledger.persist(CHAT)  # a draft now: its ids are written down
    await asyncio.wait_for(disk.started.wait(), 10)
    ledger.note(CHAT, [2])  # the bot's next message, while the first batch is on its way
    await until(lambda: disk.written == 2, timeout=10)
    assert await store.take_messages(CHAT) == [1, 2]
    await ledger.close()


async def test_a_batch_that_failed_is_written_later_without_another_message(store: SQLiteStore) -> None:
    disk = Disk(store, failures=2)
    ledger = MessageLedger(disk, every=0.05)
    ledger.note(CHAT, [1, 2])
    ledger.persist(CHAT)
    await until(lambda: disk.written == 1, timeout=10)
    assert await store.take_messages(CHAT) == [1, 2]
    await ledger.close()


async def test_ids_a_quick_exit_could_not_write_go_in_a_later_batch(store: SQLiteStore) -> None:
    disk = Disk(store, slow=0.2, failures=1)
    ledger = MessageLedger(disk, every=0.05)
    ledger.note(CHAT, [1])
    ledger.persist(CHAT)
    # The exit takes the chat's ids for a write of its own, which fails after the batch came
    # and found nothing to write.
    await ledger.write_now(CHAT)
    await until(lambda: disk.written == 1, timeout=10)
    assert await store.take_messages(CHAT) == [1]
    await ledger.close()
