"""``reachable run`` on aiogram: long polling, or the webhook (both in bot/channels/telegram/serving.py)."""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from bot.channels.telegram.aiogram_adapter import ALLOWED_UPDATES, TelegramChannel
from bot.channels.telegram.serving import poll, ready, token, webhook
from bot.core.app import App
from bot.core.settings import Settings

log = logging.getLogger("reachable.telegram")


def make_bot(settings: Settings) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_url))
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
