"""Long polling that never loses an update, and lets no one's message wait unread behind others.

Framework polling loops (aiogram's, python-telegram-bot's) confirm updates (move the
``getUpdates`` offset past them) as soon as the next batch is fetched, while handlers may still
be running: a crash at that moment loses the update, and with it a person's answer or consent.
Confirming only what has been handled is safe but slow under load: Telegram hands out at most
100 updates from the oldest unconfirmed one, so while 100 people wait for a reply under
Telegram's sending limit, the 101st message -- perhaps an emergency -- is not even read.

Here every update is written to the encrypted inbox (``storage/inbox.py``) before it is
confirmed, handled at once, and deleted from the inbox when handled. After a crash the inbox
still holds what was not handled, and it is handled at the next start (the conversation layer's
handled-update marks make a repeat harmless). Emergency replies then go first in the pacer
(``bot/delivery.py``). At most ``backlog`` updates are held at a time; beyond that, reading
waits.

The loop knows no framework: an adapter gives it ``fetch`` (which raises
:class:`~bot.transport.RetryAfter` or :class:`~bot.transport.TransportError`), ``handle``, and
how to turn its update into Telegram's JSON and back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from bot.transport import RetryAfter, TransportError
from storage import StorageError
from storage.inbox import Inbox

log = logging.getLogger("reachable.polling")
U = TypeVar("U")
Fetch = Callable[[int | None, int], Awaitable[Sequence[tuple[int, U]]]]


class DurablePolling(Generic[U]):
    def __init__(
        self,
        fetch: Fetch[U],
        handle: Callable[[U], Awaitable[object]],
        inbox: Inbox,
        raw: Callable[[U], dict[str, Any]],
        parse: Callable[[dict[str, Any]], U],
        backlog: int = 5000,
        timeout: int = 30,
    ) -> None:
        self.fetch = fetch
        self.handle = handle
        self.inbox = inbox
        self.raw, self.parse = raw, parse
        self.backlog = backlog
        self.timeout = timeout
        self._running: dict[int, asyncio.Task[None]] = {}
        self._finished: list[int] = []
        self._forgetting = asyncio.Event()
        self._reading_done = False
        self._stop = asyncio.Event()
        self.failing_since: float | None = None  # when getUpdates started failing, if it is

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        left = await self.inbox.unhandled()
        if left:
            log.info("handling %d update(s) left from before", len(left))
        for update_id, update in left:
            self._start(update_id, self.parse(update))
        latest: int | None = left[-1][0] if left else None
        forgetter = asyncio.create_task(self._forget_handled())
        try:
            await self._read(latest)
        finally:
            await self._drain()
            self._reading_done = True
            self._forgetting.set()
            await forgetter  # never cancelled mid-write: that would lose which ids were handled

    async def _read(self, latest: int | None) -> None:
        failures = 0
        while not self._stop.is_set():
            if len(self._running) >= self.backlog:
                await asyncio.wait(list(self._running.values()), timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
                continue
            offset = None if latest is None else latest + 1  # confirms everything up to latest
            try:
                updates = await self._fetch(offset)
                failures = 0
                self.failing_since = None
            except RetryAfter as error:
                await self._pause(error.seconds)
                continue
            except TransportError as error:
                failures += 1
                self.failing_since = self.failing_since or time.monotonic()
                log.warning("getUpdates failed (%s); retrying", type(error.__cause__ or error).__name__)
                await self._pause(min(30.0, 0.5 * 2**failures))
                continue
            fresh = [(i, u) for i, u in updates if latest is None or i > latest]
            if not fresh:
                continue
            try:
                await self.inbox.receive([(i, self.raw(u)) for i, u in fresh])
            except StorageError as error:  # not kept, so not confirmed: Telegram sends them again
                log.error("inbox write failed (%s): reading again", type(error).__name__)
                await self._pause(1.0)
                continue
            for update_id, update in fresh:
                self._start(update_id, update)
            latest = fresh[-1][0] if latest is None else max(latest, fresh[-1][0])

    def _start(self, update_id: int, update: U) -> None:
        task = asyncio.create_task(self._handle(update_id, update))
        self._running[update_id] = task
        task.add_done_callback(self._finisher(update_id))

    async def _fetch(self, offset: int | None) -> Sequence[tuple[int, U]]:
        fetch = asyncio.ensure_future(self.fetch(offset, self.timeout))
        stopped = asyncio.ensure_future(self._stop.wait())
        done, _ = await asyncio.wait({fetch, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if fetch not in done:
            fetch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await fetch
            return []
        stopped.cancel()
        return fetch.result()

    async def _handle(self, update_id: int, update: U) -> None:
        try:
            await self.handle(update)
        except Exception as error:  # one bad update must not stop the others
            log.error("update %d failed: %s", update_id, type(error).__name__)

    def _finisher(self, update_id: int) -> Callable[[asyncio.Task[None]], None]:
        def done(task: asyncio.Task[None]) -> None:
            self._running.pop(update_id, None)
            if not task.cancelled():  # cancelled at a stop: handled again at the next start
                self._finished.append(update_id)
                self._forgetting.set()

        return done

    async def _forget_handled(self) -> None:
        """Delete handled updates from the inbox as they finish, many in one write; after the
        loop has stopped and drained, once more, then end."""
        while True:
            await self._forgetting.wait()
            self._forgetting.clear()
            done, self._finished = self._finished, []
            try:
                await self.inbox.handled(done)
            except StorageError as error:  # kept, so handled again at the next start: harmless
                log.error("inbox delete failed (%s)", type(error).__name__)
            if self._reading_done and not self._finished:
                return

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _drain(self) -> None:
        """On shutdown: let updates being handled finish; what does not stays in the inbox and is
        handled at the next start."""
        if self._running:
            await asyncio.wait(list(self._running.values()), timeout=10)
