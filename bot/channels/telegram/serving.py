"""What every way of running the Telegram bot shares, whichever library carries it: the token,
getting a channel ready, durable polling until stopped, where the webhook listens and on which
path with which secret."""

from __future__ import annotations

import contextlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import urlsplit

from bot.channels.telegram.polling import DurablePolling, Intake
from bot.core.app import App
from bot.core.channel import Channel
from bot.core.errors import ConfigError
from bot.core.forwarders import check_staff_chats
from bot.core.health import Health
from bot.core.serving import on_stop, serve, until_stopped
from bot.core.settings import Settings
from responses import Responses
from storage import StorageError

if TYPE_CHECKING:  # imported where a site is served: polling needs no HTTP server
    from aiohttp import web

log = logging.getLogger("reachable.serving")
WEBHOOK_PATH = "/telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name, not a secret
# Updates read and not yet handled, at most: all are handled at once (PTB is told the same).
BACKLOG = 5000
U = TypeVar("U")


class TelegramAdapter(Protocol[U]):
    """What the two Telegram adapters have in common for running: the channel core they
    translate for, their command list, and a way to fetch updates."""

    core: Channel

    async def register_commands(self, responses: Responses) -> None: ...

    async def fetch(self, offset: int | None, wait: int) -> list[tuple[int, U]]: ...

    def raw(self, update: U) -> dict[str, Any]:
        """The update as Telegram's JSON, to keep in the inbox."""
        ...

    def parse(self, raw: dict[str, Any]) -> U:
        """An update kept in the inbox, back as the library's own."""
        ...


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


def webhook_receiver(intake: Intake[U], secret: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Telegram's POST: refused without the secret (401); otherwise kept in the inbox and
    answered at once, and handled from there, so a slow reply holds up no one's next update and
    a crash loses nothing. 503 when it could not be kept: Telegram sends it again."""

    from aiohttp import web

    async def receive(request: web.Request) -> web.StreamResponse:
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), secret.encode()):
            return web.Response(status=401)
        try:
            raw = await request.json()
            update_id = int(raw["update_id"])
            await intake.take_raw(update_id, raw)
        except StorageError:
            return web.Response(status=503)
        except Exception:  # not JSON, or not an update the library reads
            return web.Response(status=400)
        return web.Response()

    return receive


async def webhook(
    adapter: TelegramAdapter[U],
    handle: Callable[[U], Awaitable[object]],
    app: App,
    set_webhook: Callable[[str, str], Awaitable[object]],
) -> None:
    """Serve the webhook on the path of REACHABLE_WEBHOOK_URL (with `/healthz` beside it), tell
    Telegram where it is, and run until SIGTERM or Ctrl-C."""
    from aiohttp import web

    settings = app.settings
    secret = webhook_secret(settings)
    path = webhook_path(settings.webhook_url)
    intake = Intake(handle, app.inbox, adapter.raw, adapter.parse)
    web_app = web.Application()
    web_app.router.add_post(path, webhook_receiver(intake, secret))
    try:
        await intake.resume()
        async with listening(web_app, app) as where:
            if settings.webhook_url:
                await set_webhook(settings.webhook_url, secret)
            log.info("webhook listening on %s%s", where, path)
            await until_stopped()
    finally:
        await intake.close()
        await adapter.core.close()


async def ready(adapter: TelegramAdapter[U], responses: Responses) -> None:
    """Refuse a staff chat anyone could join, start delivering, publish the commands, and send
    what people were never wholly told before the last stop."""
    await check_staff_chats(adapter.core)
    adapter.core.attach()
    await adapter.register_commands(responses)
    adapter.core.start_resending()


async def poll(adapter: TelegramAdapter[U], handle: Callable[[U], Awaitable[object]], app: App) -> None:
    """Long polling through the inbox, until SIGTERM or Ctrl-C; with REACHABLE_HEALTH_LISTEN,
    `/healthz` there meanwhile."""
    polling = DurablePolling(adapter.fetch, handle, app.inbox, adapter.raw, adapter.parse, backlog=BACKLOG)
    on_stop(polling.stop)
    try:
        if app.settings.health_listen:
            from aiohttp import web

            health = web.Application()
            Health(app, polling).add_to(health)
            async with serve(health, app.settings.health_listen, "REACHABLE_HEALTH_LISTEN"):
                await polling.run()
        else:
            await polling.run()
    finally:
        await adapter.core.close()


def listening(web_app: web.Application, app: App) -> contextlib.AbstractAsyncContextManager[str]:
    """The webhook's site on REACHABLE_WEBHOOK_LISTEN, with `/healthz` beside it."""
    Health(app).add_to(web_app)
    return serve(web_app, app.settings.webhook_listen, "REACHABLE_WEBHOOK_LISTEN")
