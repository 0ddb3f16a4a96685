"""Serving what every channel shares: where a site listens, serving it without client details in any
log, and stopping cleanly on SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where a site is served: polling Telegram needs no HTTP server
    from aiohttp import web

from bot.core.errors import ConfigError
from bot.core.settings import Settings

log = logging.getLogger("reachable.serving")
SHUTDOWN_SECONDS = 5.0


def require_telegram_for_staff(settings: Settings) -> None:
    """Channels other than Telegram still keep the staff chat there: it needs the token."""
    if settings.staff_chats and settings.telegram_token is None:
        raise ConfigError("the staff chat is on Telegram: set REACHABLE_TELEGRAM_TOKEN, or use email only")


def listen_address(value: str, setting: str = "REACHABLE_WEBHOOK_LISTEN") -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdecimal():
        raise ConfigError(f"{setting} must look like 127.0.0.1:8080, not {value!r}")
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


class WithoutClientDetails(logging.Filter):
    """aiohttp's server log names the peer's address and quotes what it could not parse
    ("Invalid HTTP header: b'…'"): only the kind of failure is kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        record.msg, record.args = "request failed: %s", (type(error).__name__ if error else "-",)
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


def quiet_server_logs() -> None:
    """No address or request content from aiohttp in any log, at any level."""
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, WithoutClientDetails) for f in server.filters):
        server.addFilter(WithoutClientDetails())
    logging.getLogger("aiohttp.access").disabled = True


@contextlib.asynccontextmanager
async def serve(web_app: web.Application, listen: str, setting: str) -> AsyncIterator[str]:
    """Serve ``web_app`` on ``listen`` while inside, without an access log (it would keep
    addresses) or client details in error lines; yields where, for the log."""
    from aiohttp import web

    quiet_server_logs()
    host, port = listen_address(listen, setting)
    # On SIGTERM, requests still running get a few seconds, not aiohttp's minute.
    runner = web.AppRunner(web_app, access_log=None, shutdown_timeout=SHUTDOWN_SECONDS)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    try:
        yield f"{host}:{port}"
    finally:
        await runner.cleanup()
