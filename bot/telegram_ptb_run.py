"""``reachable run`` on python-telegram-bot (``REACHABLE_FRAMEWORK=ptb``): long polling through
the durable loop, or a webhook with a secret header, as on aiogram."""

from __future__ import annotations

import hmac
import logging
from typing import Any

from aiohttp import web
from telegram import Update
from telegram.ext import Application

from bot.app import App
from bot.serving import BACKLOG, listening, poll, ready, token, until_stopped, webhook_path, webhook_secret
from bot.settings import Settings
from bot.telegram_ptb import ALLOWED_UPDATES, PTBChannel

log = logging.getLogger("reachable.telegram")
PTBApplication = Application[Any, Any, Any, Any, Any, Any]
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name, not a secret


def make_application(settings: Settings) -> PTBApplication:
    api = settings.telegram_api_url.rstrip("/")
    return (
        Application.builder()
        .token(token(settings))
        .base_url(f"{api}/bot")
        .base_file_url(f"{api}/file/bot")
        .updater(None)  # updates come from the durable loop or the webhook, never PTB's Updater
        .concurrent_updates(BACKLOG)
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
    settings = app.settings
    try:
        secret = webhook_secret(settings)
        path = webhook_path(settings.webhook_url)
        channel = await start(app, application)

        async def receive(request: web.Request) -> web.Response:
            given = request.headers.get(SECRET_HEADER, "")
            if not hmac.compare_digest(given.encode(), secret.encode()):
                return web.Response(status=401)
            update = Update.de_json(await request.json(), application.bot)
            # Answered only once handled: an update interrupted by a crash is delivered again.
            await application.process_update(update)
            return web.Response()

        web_app = web.Application()
        web_app.router.add_post(path, receive)
        try:
            async with listening(web_app, app) as where:
                if settings.webhook_url:
                    await application.bot.set_webhook(
                        settings.webhook_url, secret_token=secret, allowed_updates=ALLOWED_UPDATES
                    )
                log.info("webhook listening on %s%s (python-telegram-bot)", where, path)
                await until_stopped()
        finally:
            await channel.ledger.close()
    finally:
        await application.shutdown()
