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
(``bot/core/delivery.py``). At most ``backlog`` updates are held at a time; beyond that, reading
waits.

The loop knows no framework: an adapter gives it ``fetch`` (which raises
:class:`~bot.core.transport.RetryAfter` or :class:`~bot.core.transport.TransportError`), ``handle``, and
how to turn its update into Telegram's JSON and back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from bot.core import tasks
from bot.core.transport import RetryAfter, TransportError
from storage import StorageError
from storage.base import BEAT
from storage.inbox import Inbox

log = logging.getLogger("reachable.polling")
HANDLED_REMEMBERED = 10_000
U = TypeVar("U")
Fetch = Callable[[int | None, int], Awaitable[Sequence[tuple[int, U]]]]


class Intake(Generic[U]):
    """Updates from the moment they are received to the moment they are handled: written to the
    inbox, handled at once (each in a task of its own), deleted from the inbox when handled.
    Polling and the webhook both take updates in through it."""

    def __init__(
        self,
        handle: Callable[[U], Awaitable[object]],
        inbox: Inbox,
        raw: Callable[[U], dict[str, Any]],
        parse: Callable[[dict[str, Any]], U],
    ) -> None:
        self.handle = handle
        self.inbox = inbox
        self.raw, self.parse = raw, parse
        self._running: dict[int, asyncio.Task[None]] = {}
        self._finished: list[int] = []
        # Handled lately: one that comes again (its write failed, so it was not confirmed) is
        # not handled twice by this process.
        self._handled: OrderedDict[int, None] = OrderedDict()
        self._forgetting = asyncio.Event()
        self._closing = False
        self._forgetter: asyncio.Task[None] | None = None
        self._adopter: asyncio.Task[None] | None = None

    @property
    def busy(self) -> int:
        """Updates being handled now."""
        return len(self._running)

    async def resume(self) -> int | None:
        """Start handling what a stop or crash left in the inbox; the newest update id there."""
        left = await self.inbox.unhandled()
        self._forgetter = asyncio.create_task(self._forget_handled())
        if self.inbox.shared:
            self._adopter = asyncio.create_task(self._adopt(), name="reachable-adopt")
        if left:
            log.info("handling %d update(s) left from before", len(left))
        unreadable = []
        for update_id, update in left:
            try:
                self._start(update_id, self.parse(update))
            except Exception as error:  # a library that no longer reads it: drop it, go on
                log.error("update %d left from before cannot be read: %s", update_id, type(error).__name__)
                unreadable.append(update_id)
        await self.inbox.handled(unreadable)
        return left[-1][0] if left else None

    async def _adopt(self) -> None:
        """Instances sharing a database: every few seconds, what an instance that stopped or died
        had kept and not handled is handled here (Telegram was told it had arrived, so it will
        not send it again)."""
        while True:
            await asyncio.sleep(BEAT)
            try:
                left = await self.inbox.unhandled()
            except Exception as error:  # the database away for a moment: the next round finds them
                log.error("inbox not read: %s", type(error).__name__)
                continue
            adopted = [(i, u) for i, u in left if i not in self._running and i not in self._handled]
            if adopted:
                log.info("handling %d update(s) an instance that stopped had kept", len(adopted))
            unreadable = []
            for update_id, update in adopted:
                try:
                    self._start(update_id, self.parse(update))
                except Exception as error:  # a library that no longer reads it: dropped
                    log.error("update %d cannot be read: %s", update_id, type(error).__name__)
                    unreadable.append(update_id)
            with contextlib.suppress(StorageError):
                await self.inbox.handled(unreadable)

    async def take(self, updates: Sequence[tuple[int, U]]) -> None:
        """Handle these at once and keep them in the inbox meanwhile; returns once they are kept.
        Raises StorageError if they could not be kept: then they must not be confirmed (Telegram
        sends them again, and the handled-update marks make the repeat harmless)."""
        # One still being handled is kept all the same: its first write may have failed.
        unhandled = [(i, u) for i, u in updates if i not in self._handled]
        fresh = [(i, u) for i, u in unhandled if i not in self._running]
        kept = []
        for update_id, update in unhandled:
            try:
                kept.append((update_id, self.raw(update)))
            except Exception as error:  # handled all the same, only not kept against a crash
                log.error("update %d cannot be kept: %s", update_id, type(error).__name__)
        await self._keep_while_handling(kept, fresh)

    async def take_raw(self, update_id: int, raw: dict[str, Any]) -> None:
        """One update as Telegram's JSON (a webhook POST). Returns once it is kept, as ``take``."""
        if update_id in self._handled:
            return  # Telegram sent it again after it was handled
        update = self.parse(raw)  # first: nothing unreadable is kept
        # Sent again while it is being handled: its first write may have failed (and Telegram
        # was told so), so it is kept all the same, and only not handled twice. Its delete, once
        # handled, comes after this write in the inbox's queue.
        fresh = [] if update_id in self._running else [(update_id, update)]
        await self._keep_while_handling([(update_id, raw)], fresh)

    async def _keep_while_handling(
        self, kept: Sequence[tuple[int, dict[str, Any]]], fresh: Sequence[tuple[int, U]]
    ) -> None:
        """Nobody's reply waits for the inbox's write to reach the disk: the write is queued first
        (so a delete of these, once handled, always comes after it), then handling starts."""
        writing = asyncio.ensure_future(self.inbox.receive(kept))
        await asyncio.sleep(0)  # the write takes its place in the inbox's queue before any delete
        for update_id, update in fresh:
            self._start(update_id, update)
        await writing

    async def wait_for_one(self) -> None:
        if self._running:
            await asyncio.wait(list(self._running.values()), timeout=1.0, return_when=asyncio.FIRST_COMPLETED)

    async def close(self) -> None:
        """Let updates being handled finish (for up to 10 s); what does not stays in the inbox
        and is handled at the next start."""
        await tasks.stop(self._adopter)
        if self._running:
            await asyncio.wait(list(self._running.values()), timeout=10)
        left = list(self._running.values())
        for task in left:  # not against a store about to close: they stay in the inbox
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)
        self._closing = True
        self._forgetting.set()
        if self._forgetter is not None:
            await self._forgetter  # never cancelled mid-write: that would lose which ids were handled

    def _start(self, update_id: int, update: U) -> None:
        task = asyncio.create_task(self._handle(update_id, update))
        self._running[update_id] = task
        task.add_done_callback(self._finisher(update_id))

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
                self._handled[update_id] = None
                if len(self._handled) > HANDLED_REMEMBERED:
                    self._handled.popitem(last=False)
                self._forgetting.set()

        return done

    async def _forget_handled(self) -> None:
        """Delete handled updates from the inbox as they finish: at once, and those that finish
        meanwhile in one write after (the shorter an update stays, the fewer a crash replays);
        once more after closing, then end."""
        while True:
            await self._forgetting.wait()
            self._forgetting.clear()
            done, self._finished = self._finished, []
            try:
                await self.inbox.handled(done)
            except StorageError as error:  # kept, so handled again at the next start: harmless
                log.error("inbox delete failed (%s)", type(error).__name__)
            if self._closing and not self._finished:
                return


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
        self.intake = Intake(handle, inbox, raw, parse)
        self.backlog = backlog
        self.timeout = timeout
        self._stop = asyncio.Event()
        self.failing_since: float | None = None  # when getUpdates started failing, if it is

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        latest = await self.intake.resume()
        try:
            latest = await self._read(latest)
        finally:
            await self.intake.close()
        await self._confirm(latest)

    async def _confirm(self, latest: int | None) -> None:
        """At a stop, tell Telegram what was read (it is in the inbox, handled or not): otherwise
        the last batch comes again at the next start and its replies are sent twice."""
        if latest is None:
            return
        try:
            await self.fetch(latest + 1, 0)
        except TransportError as error:
            log.warning("could not confirm the last updates at stop (%s)", type(error).__name__)

    async def _read(self, latest: int | None) -> int | None:
        """Read until stopped; the newest update id read."""
        failures = 0
        while not self._stop.is_set():
            if self.intake.busy >= self.backlog:
                await self.intake.wait_for_one()
                continue
            offset = None if latest is None else latest + 1  # confirms everything up to latest
            try:
                updates = await self._fetch(offset)
                failures = 0
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
                self.failing_since = None
                continue
            try:
                await self.intake.take(fresh)
            except StorageError as error:  # not kept, so not confirmed: Telegram sends them again
                log.error("inbox write failed (%s): reading again", type(error).__name__)
                self.failing_since = self.failing_since or time.monotonic()  # /healthz says so
                await self._pause(1.0)
                continue
            self.failing_since = None
            latest = max(i for i, _ in fresh) if latest is None else max(latest, *(i for i, _ in fresh))
        return latest

    async def _fetch(self, offset: int | None) -> Sequence[tuple[int, U]]:
        fetch = asyncio.ensure_future(self.fetch(offset, self.timeout))
        stopped = asyncio.ensure_future(self._stop.wait())
        done, _ = await asyncio.wait({fetch, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if fetch not in done:
            await tasks.stop(fetch)
            return []
        stopped.cancel()
        return fetch.result()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)
