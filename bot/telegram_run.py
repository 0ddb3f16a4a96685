"""``reachable run`` on aiogram: long polling, or a webhook with a secret header."""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web

from bot.app import App
from bot.serving import listening, poll, ready, token, until_stopped, webhook_path, webhook_secret
from bot.settings import Settings
from bot.telegram import ALLOWED_UPDATES, TelegramChannel

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
    settings = app.settings
    try:
        secret = webhook_secret(settings)
        path = webhook_path(settings.webhook_url)
        channel = await start(app, bot)
        dispatcher = channel.dispatcher()
        web_app = web.Application()
        # aiogram's handler compares the secret header with secrets.compare_digest and answers 401.
        # Handled in the foreground: Telegram gets 200 only once the update is handled, so an
        # update interrupted by a crash is delivered again (the handled-update marks make that harmless).
        handler = SimpleRequestHandler(dispatcher=dispatcher, bot=bot, secret_token=secret, handle_in_background=False)
        handler.register(web_app, path=path)
        setup_application(web_app, dispatcher, bot=bot)
        try:
            async with listening(web_app, app) as where:
                if settings.webhook_url:
                    await bot.set_webhook(settings.webhook_url, secret_token=secret, allowed_updates=ALLOWED_UPDATES)
                log.info("webhook listening on %s%s", where, path)
                await until_stopped()
        finally:
            await channel.ledger.close()
    finally:
        await bot.session.close()
