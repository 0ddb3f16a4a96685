"""What every way of running the Telegram bot shares: where the webhook listens and on which
path, the webhook's secret, stopping cleanly on SIGTERM, and the token."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from urllib.parse import urlsplit

from bot.errors import ConfigError
from bot.settings import Settings

log = logging.getLogger("reachable.serving")
WEBHOOK_PATH = "/telegram"
CONCURRENT_UPDATES = 64


def token(settings: Settings) -> str:
    if settings.telegram_token is None:
        raise ConfigError("REACHABLE_TELEGRAM_TOKEN is not set: get a token from @BotFather and set it")
    return settings.telegram_token.get_secret_value()


def webhook_secret(settings: Settings) -> str:
    if settings.webhook_secret is None:
        raise ConfigError("REACHABLE_WEBHOOK_SECRET is required in webhook mode: set a long random value")
    return settings.webhook_secret.get_secret_value()


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


def on_stop(callback: Callable[[], None]) -> None:
    """Call ``callback`` on SIGTERM or SIGINT (a service manager stopping us, or Ctrl-C)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, callback)


async def until_stopped() -> None:
    stop = asyncio.Event()
    on_stop(stop.set)
    await stop.wait()
    log.info("stopping")
