"""``reachable run`` on python-telegram-bot (``REACHABLE_FRAMEWORK=ptb``): long polling through
the durable loop, or the webhook, as on aiogram (both in bot/channels/telegram/serving.py)."""

from __future__ import annotations

import logging
from typing import Any

from telegram.ext import Application

from bot.channels.telegram.ptb_adapter import ALLOWED_UPDATES, PTBChannel
from bot.channels.telegram.serving import BACKLOG, poll, ready, token, webhook
from bot.core.app import App
from bot.core.settings import Settings

log = logging.getLogger("reachable.telegram")
PTBApplication = Application[Any, Any, Any, Any, Any, Any]
# Connections for sends: Telegram's limits keep fewer than this under way at once. PTB's 256 let
# the pool grow with every send at once, and its HTTP client (httpcore) looks at each pooled
# connection on every request: at capacity that was 16 % of the event loop. A send waits for a
# free connection (a quick exit's deletes at once), and only fails after POOL_WAIT seconds.
POOL, POOL_WAIT = 16, 30.0


def make_application(settings: Settings) -> PTBApplication:
    api = settings.telegram_api_url.rstrip("/")
    return (
        Application.builder()
        .token(token(settings))
        .base_url(f"{api}/bot")
        .base_file_url(f"{api}/file/bot")
        .updater(None)  # updates come from the durable loop or the webhook, never PTB's Updater
        .concurrent_updates(BACKLOG)
        .connection_pool_size(POOL)
        .pool_timeout(POOL_WAIT)
        .build()
    )


async def start(app: App, application: PTBApplication) -> PTBChannel:
    await application.initialize()
    channel = PTBChannel(app.ports(), application)
    await ready(channel, app.responses)
    return channel


async def run_polling(app: App, application: PTBApplication) -> None:
    try:
        channel = await start(app, application)
        await application.bot.delete_webhook(drop_pending_updates=False)
        log.info("polling for updates (python-telegram-bot)")
        await poll(channel, application.process_update, app)
    finally:
        await application.shutdown()


async def run_webhook(app: App, application: PTBApplication) -> None:
    try:
        channel = await start(app, application)

        async def set_webhook(url: str, secret: str) -> None:
            await application.bot.set_webhook(url, secret_token=secret, allowed_updates=ALLOWED_UPDATES)

        await webhook(channel, application.process_update, app, set_webhook)
    finally:
        await application.shutdown()
