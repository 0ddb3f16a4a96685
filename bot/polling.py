"""Long polling that never confirms an update before it has been handled.

aiogram's own polling loop confirms updates (moves the ``getUpdates`` offset past them) as soon
as it fetches the next batch, while handlers may still be running: a crash at that moment loses
the update, and with it a person's answer or consent. Here the offset only moves past updates
whose handling has *finished*; after a crash Telegram delivers the unfinished ones again, and
the conversation layer's handled-update marks make the repeat harmless. Updates are still
handled concurrently, at most ``concurrency`` at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramNetworkError, TelegramRetryAfter, TelegramServerError
from aiogram.types import Update

log = logging.getLogger("reachable.polling")


class DurablePolling:
    def __init__(
        self,
        dispatcher: Dispatcher,
        bot: Bot,
        allowed_updates: list[str],
        concurrency: int = 64,
        timeout: int = 30,
    ) -> None:
        self.dispatcher = dispatcher
        self.bot = bot
        self.allowed_updates = allowed_updates
        self.timeout = timeout
        self._slots = asyncio.Semaphore(concurrency)
        self._running: dict[int, asyncio.Task[None]] = {}
        self._stop = asyncio.Event()

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
            except TelegramRetryAfter as error:
                await self._pause(float(error.retry_after))
                continue
            except (TelegramNetworkError, TelegramServerError) as error:
                failures += 1
                log.warning("getUpdates failed (%s); retrying", type(error).__name__)
                await self._pause(min(30.0, 0.5 * 2**failures))
                continue
            fresh = [
                u for u in updates if u.update_id not in self._running and (latest is None or u.update_id > latest)
            ]
            for update in fresh:
                await self._slots.acquire()
                task = asyncio.create_task(self._handle(update))
                self._running[update.update_id] = task
                task.add_done_callback(self._finisher(update.update_id))
                latest = update.update_id if latest is None else max(latest, update.update_id)
            if latest is not None:
                # Confirm only what has finished: everything below the oldest update still running.
                offset = min(self._running) if self._running else latest + 1
            if updates and not fresh and self._running:
                # Only unfinished updates came back: wait for one to finish rather than spin.
                await asyncio.wait(list(self._running.values()), timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
        await self._drain()

    async def _fetch(self, offset: int | None) -> list[Update]:
        fetch = asyncio.ensure_future(
            self.bot.get_updates(offset=offset, timeout=self.timeout, allowed_updates=self.allowed_updates)
        )
        stopped = asyncio.ensure_future(self._stop.wait())
        done, _ = await asyncio.wait({fetch, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if fetch not in done:
            fetch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await fetch
            return []
        stopped.cancel()
        return fetch.result()

    async def _handle(self, update: Update) -> None:
        try:
            await self.dispatcher.feed_update(self.bot, update)
        except Exception as error:  # one bad update must not stop the others
            log.error("update %d failed: %s", update.update_id, type(error).__name__)

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
