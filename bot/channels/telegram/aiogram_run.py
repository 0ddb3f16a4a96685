"""``reachable run`` on aiogram: long polling, or the webhook (both in bot/channels/telegram/serving.py)."""

from __future__ import annotations

import logging
from typing import Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.methods.base import Response, TelegramMethod, TelegramType

from bot.channels.telegram.aiogram_adapter import ALLOWED_UPDATES, TelegramChannel
from bot.channels.telegram.serving import poll, ready, token, webhook
from bot.core.app import App
from bot.core.settings import Settings

log = logging.getLogger("reachable.telegram")


class ResponseTypesKept(AiohttpSession):
    """aiogram's session, holding on to each pydantic type it reads the Bot API's answers with.

    aiogram names the type anew for every call (``Response[method.__returning__]``), and
    pydantic keeps the types it has made only weakly: each full garbage collection let them go,
    and the next call built them again, 4-5 ms of the event loop each time (129 times, about a
    seventh of the loop's time, in one run of `make bench`'s report flow). Kept here, one per
    kind of answer (a few), they are made once."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._response_types: dict[Any, type[Response[Any]]] = {}

    def check_response(
        self, bot: Bot, method: TelegramMethod[TelegramType], status_code: int, content: str
    ) -> Response[TelegramType]:
        returning = method.__returning__
        if returning not in self._response_types:
            self._response_types[returning] = Response[returning]  # type: ignore[valid-type]
        return super().check_response(bot, method, status_code, content)


def make_bot(settings: Settings) -> Bot:
    session = ResponseTypesKept(api=TelegramAPIServer.from_base(settings.telegram_api_url))
    return Bot(token(settings), session=session)


async def start(app: App, bot: Bot) -> TelegramChannel:
    channel = TelegramChannel(app.ports(), bot)
    await ready(channel, app.responses)
    return channel


async def run_polling(app: App, bot: Bot) -> None:
    try:
        channel = await start(app, bot)
        dispatcher = channel.dispatcher()
        await bot.delete_webhook(drop_pending_updates=False)
        log.info("polling for updates")
        await poll(channel, lambda update: dispatcher.feed_update(bot, update), app)
    finally:
        await bot.session.close()


async def run_webhook(app: App, bot: Bot) -> None:
    try:
        channel = await start(app, bot)
        dispatcher = channel.dispatcher()

        async def set_webhook(url: str, secret: str) -> None:
            await bot.set_webhook(url, secret_token=secret, allowed_updates=ALLOWED_UPDATES)

        await webhook(channel, lambda update: dispatcher.feed_update(bot, update), app, set_webhook)
    finally:
        await bot.session.close()
