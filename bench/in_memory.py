"""The bots `make bench` compares that are not Reachable (the bare echo bots, the peers): polled
by the same durable loop as Reachable, their updates held in memory (they keep no inbox)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.types import Update
from telegram import Update as PTBUpdate
from telegram.ext import Application

from bot.channels.telegram.aiogram_adapter import ALLOWED_UPDATES, update_json
from bot.channels.telegram.polling import DurablePolling
from bot.channels.telegram.serving import BACKLOG
from storage.inbox import MemoryInbox


def aiogram_polling(bot: Bot, dispatcher: Dispatcher) -> DurablePolling[Any]:
    async def fetch(offset: int | None, wait: int) -> list[tuple[int, Any]]:
        updates = await bot.get_updates(offset=offset, timeout=wait, allowed_updates=ALLOWED_UPDATES)
        return [(u.update_id, u) for u in updates]

    return DurablePolling(
        fetch,
        lambda update: dispatcher.feed_update(bot, update),
        MemoryInbox(),
        update_json,
        lambda raw: Update.model_validate(raw, context={"bot": bot}),
        backlog=BACKLOG,
        timeout=1,
    )


def ptb_polling(
    application: Application[Any, Any, Any, Any, Any, Any], handle: Callable[[PTBUpdate], Awaitable[object]]
) -> DurablePolling[Any]:
    async def fetch(offset: int | None, wait: int) -> list[tuple[int, Any]]:
        updates = await application.bot.get_updates(offset=offset, timeout=wait, allowed_updates=ALLOWED_UPDATES)
        return [(u.update_id, u) for u in updates]

    return DurablePolling(
        fetch,
        handle,
        MemoryInbox(),
        lambda update: update.to_dict(),
        lambda raw: PTBUpdate.de_json(raw, application.bot),
        backlog=BACKLOG,
        timeout=1,
    )
