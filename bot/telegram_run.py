"""``reachable run``: the Telegram bot by long polling, or behind a webhook with a secret header."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from urllib.parse import urlsplit

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web

from bot.app import App
from bot.errors import ConfigError
from bot.polling import DurablePolling
from bot.settings import Settings
from bot.telegram import ALLOWED_UPDATES, TelegramChannel

log = logging.getLogger("reachable.telegram")
WEBHOOK_PATH = "/telegram"
CONCURRENT_UPDATES = 64


def make_bot(settings: Settings) -> Bot:
    if settings.telegram_token is None:
        raise ConfigError("REACHABLE_TELEGRAM_TOKEN is not set: get a token from @BotFather and set it")
    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_url))
    return Bot(settings.telegram_token.get_secret_value(), session=session)


def webhook_path(url: str | None) -> str:
    """The path the webhook is served on: the path of REACHABLE_WEBHOOK_URL, so what Telegram
    is told and what is served always agree (``/telegram`` when no URL is set)."""
    if not url:
        return WEBHOOK_PATH
    parsed = urlsplit(url)
    if parsed.scheme != "https" or not parsed.netloc:
        raise ConfigError(f"REACHABLE_WEBHOOK_URL must be an https:// address, not {url!r}")
    return parsed.path or "/"


def listen_address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdecimal():
        raise ConfigError(f"REACHABLE_WEBHOOK_LISTEN must look like 127.0.0.1:8080, not {value!r}")
    return host.strip("[]"), int(port)


async def run_polling(app: App, bot: Bot) -> None:
    channel = TelegramChannel(app, bot)
    await channel.check_staff_chat()
    channel.attach_forwarders()
    dispatcher = channel.dispatcher()
    await bot.delete_webhook(drop_pending_updates=False)
    await channel.register_commands()
    log.info("polling for updates")
    polling = DurablePolling(dispatcher, bot, ALLOWED_UPDATES, concurrency=CONCURRENT_UPDATES)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, polling.stop)
    try:
        await polling.run()
    finally:
        await channel.ledger.close()
        await bot.session.close()


async def run_webhook(app: App, bot: Bot) -> None:
    settings = app.settings
    if settings.webhook_secret is None:
        raise ConfigError("REACHABLE_WEBHOOK_SECRET is required in webhook mode: set a long random value")
    secret = settings.webhook_secret.get_secret_value()
    host, port = listen_address(settings.webhook_listen)
    channel = TelegramChannel(app, bot)
    await channel.check_staff_chat()
    channel.attach_forwarders()
    dispatcher = channel.dispatcher()
    web_app = web.Application()
    # aiogram's handler compares the secret header with secrets.compare_digest and answers 401.
    # Handled in the foreground: Telegram gets 200 only once the update is handled, so an update
    # interrupted by a crash is delivered again (and the handled-update marks make that harmless).
    path = webhook_path(settings.webhook_url)
    SimpleRequestHandler(dispatcher=dispatcher, bot=bot, secret_token=secret, handle_in_background=False).register(
        web_app, path=path
    )
    setup_application(web_app, dispatcher, bot=bot)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    try:
        await channel.register_commands()
        if settings.webhook_url:
            await bot.set_webhook(settings.webhook_url, secret_token=secret, allowed_updates=ALLOWED_UPDATES)
        log.info("webhook listening on %s:%d%s", host, port, path)
        await _until_stopped()
    finally:
        await runner.cleanup()
        await channel.ledger.close()
        await bot.session.close()


async def _until_stopped() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping")
