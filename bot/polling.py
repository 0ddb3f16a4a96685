"""Long polling that never confirms an update before it has been handled.

Framework polling loops (aiogram's, python-telegram-bot's) confirm updates (move the
``getUpdates`` offset past them) as soon as the next batch is fetched, while handlers may still
be running: a crash at that moment loses the update, and with it a person's answer or consent.
Here the offset only moves past updates whose handling has *finished*; after a crash Telegram
delivers the unfinished ones again, and the conversation layer's handled-update marks make the
repeat harmless. Updates are still handled concurrently, at most ``concurrency`` at a time.

The loop knows no framework: an adapter gives it ``fetch`` (which raises
:class:`~bot.transport.RetryAfter` or :class:`~bot.transport.TransportError`) and ``handle``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from bot.transport import RetryAfter, TransportError

log = logging.getLogger("reachable.polling")
U = TypeVar("U")
Fetch = Callable[[int | None, int], Awaitable[Sequence[tuple[int, U]]]]


class DurablePolling(Generic[U]):
    def __init__(
        self, fetch: Fetch[U], handle: Callable[[U], Awaitable[object]], concurrency: int = 64, timeout: int = 30
    ) -> None:
        self.fetch = fetch
        self.handle = handle
        self.timeout = timeout
        self._slots = asyncio.Semaphore(concurrency)
        self._running: dict[int, asyncio.Task[None]] = {}
        self._stop = asyncio.Event()
        self.failing_since: float | None = None  # when getUpdates started failing, if it is

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        offset: int | None = None
        latest: int | None = None
        failures = 0
        while not self._stop.is_set():
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
            fresh = [(i, u) for i, u in updates if i not in self._running and (latest is None or i > latest)]
            for update_id, update in fresh:
                await self._slots.acquire()
                task = asyncio.create_task(self._handle(update_id, update))
                self._running[update_id] = task
                task.add_done_callback(self._finisher(update_id))
                latest = update_id if latest is None else max(latest, update_id)
            if latest is not None:
                # Confirm only what has finished: everything below the oldest update still running.
                offset = min(self._running) if self._running else latest + 1
            if updates and not fresh and self._running:
                # Only unfinished updates came back: wait for one to finish rather than spin.
                await asyncio.wait(list(self._running.values()), timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
        await self._drain()

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
        def done(_: asyncio.Task[None]) -> None:
            self._running.pop(update_id, None)
            self._slots.release()

        return done

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _drain(self) -> None:
        """On shutdown: let updates being handled finish (their offsets are then confirmed by
        Telegram on the next start, or redelivered if we die first)."""
        if self._running:
            await asyncio.wait(list(self._running.values()), timeout=10)
