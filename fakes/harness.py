"""Running the real aiogram bot against the fake Bot API, in-process or as a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from bot.channels.telegram.aiogram_run import start
from bot.channels.telegram.polling import DurablePolling
from bot.core.app import App, create_app
from bot.core.channel import Channel
from bot.core.guards import FloodGuard
from bot.core.settings import Settings
from fakes.telegram import TOKEN, FakeTelegram

QUIET = 0.15
# The trained understanding model, shared by every bot and console process tests and benchmarks
# start: it is keyed by what it was trained on, so sharing it changes nothing but the time taken.
# Scripted people tap faster than anyone can, and are answered as fast: Telegram's limit a chat
# (about one message a second, bursts allowed) is tested on its own, with real_flood_limit.
UNPACED_CHAT = (1_000_000.0, 1_000_000.0)
MODEL_CACHE = Path(tempfile.gettempdir()) / "reachable-test-model-cache"


class Person:
    """Someone in a private chat with the bot, as seen through the fake server."""

    def __init__(self, fake: FakeTelegram, chat_id: int) -> None:
        self.fake = fake
        self.chat_id = chat_id
        fake.chat(chat_id)

    async def _after(self, action: Awaitable[int], expect_reply: bool = True) -> list[str]:
        # A person acts on a screen that has stopped changing: the last parts of what came
        # before (paced a few tens of milliseconds apart) are not taken for the answer.
        while (since := time.monotonic() - self.fake.last_spoke.get(self.chat_id, 0.0)) < QUIET:  # noqa: ASYNC110
            await asyncio.sleep(QUIET - since)
        before = len(self.fake.bot_texts(self.chat_id))
        spoken = self.fake._spoken(self.chat_id)
        await action
        if not expect_reply:
            await self.fake.settle()
            return []
        await self.fake.wait_until_spoken(self.chat_id, spoken + 1)
        while True:  # wait until the bot has gone quiet
            count = self.fake._spoken(self.chat_id)
            await asyncio.sleep(QUIET)
            if self.fake._spoken(self.chat_id) == count:
                break
        return self.fake.bot_texts(self.chat_id)[before:]

    async def says(self, text: str) -> list[str]:
        return await self._after(self.fake.user_sends(self.chat_id, text))

    async def taps(self, label: str) -> list[str]:
        await self._buttons_shown()
        return await self._after(self.fake.user_taps(self.chat_id, label))

    async def _buttons_shown(self, timeout: float = 20) -> None:
        """On a busy machine the part of a reply that carries the buttons can come later than
        the pause between parts, as on a slow phone: a person waits for buttons to tap."""
        deadline = time.monotonic() + timeout
        chat = self.fake.chat(self.chat_id)
        while not any(m.from_bot and m.buttons for m in chat.messages.values()):
            assert time.monotonic() < deadline, "no buttons to tap"
            await asyncio.sleep(0.05)

    async def taps_data(self, data: str) -> list[str]:
        return await self._after(self.fake.user_taps(self.chat_id, "", data=data))

    async def sends(self, kind: str) -> list[str]:
        return await self._after(self.fake.user_sends_content(self.chat_id, kind))

    @property
    def buttons(self) -> list[str]:
        return self.fake.buttons(self.chat_id)

    @property
    def screen(self) -> str:
        return "\n\n".join(self.fake.bot_texts(self.chat_id))


def settings_for(fake: FakeTelegram, data: Path, key: str, **extra: str) -> Settings:
    return Settings.from_environ(
        {
            "REACHABLE_TELEGRAM_TOKEN": TOKEN,
            "REACHABLE_TELEGRAM_API_URL": fake.url,
            "REACHABLE_DATA_DIR": str(data),
            "REACHABLE_CACHE_DIR": str(MODEL_CACHE),
            "REACHABLE_ENCRYPTION_KEY": key,
            **extra,
        }
    )


@dataclass
class Running:
    app: App
    bot: Bot
    dispatcher: Dispatcher
    core: Channel  # the channel core the adapter translates for

    async def feed(self, update: dict[str, Any]) -> None:
        """Hand the dispatcher a raw update, as a webhook POST or a redelivery does."""
        await self.dispatcher.feed_raw_update(self.bot, update)


@contextlib.asynccontextmanager
async def polling_bot(settings: Settings, real_flood_limit: bool = False) -> AsyncIterator[Running]:
    """The real adapter, dispatcher and polling loop, in this event loop."""
    bot = Bot(
        settings.telegram_token.get_secret_value() if settings.telegram_token else "",
        session=AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_url)),
    )
    try:
        async with create_app(settings) as app:
            if not real_flood_limit:
                # Scripted people tap several buttons a second, faster than anyone can: the flood
                # limit is tested on its own in test_flood.py.
                app.conversations.flood = FloodGuard(burst=10_000)
            channel = await start(app, bot)
            if not real_flood_limit:
                channel.core.chat_limit = UNPACED_CHAT
            dispatcher = channel.dispatcher()
            polling = DurablePolling(
                channel.fetch,
                lambda update: dispatcher.feed_update(bot, update),
                app.inbox,
                channel.raw,
                channel.parse,
                timeout=1,
            )
            task = asyncio.create_task(polling.run())
            try:
                yield Running(app, bot, dispatcher, channel.core)
            finally:
                polling.stop()
                await task
                await channel.core.close()
    finally:
        await bot.session.close()


@contextlib.asynccontextmanager
async def ptb_polling_bot(settings: Settings) -> AsyncIterator[App]:
    """The same bot on python-telegram-bot: its Application, the same durable polling loop."""
    from bot.channels.telegram.ptb_run import make_application
    from bot.channels.telegram.ptb_run import start as start_ptb

    application = make_application(settings)
    try:
        async with create_app(settings) as app:
            app.conversations.flood = FloodGuard(burst=10_000)
            channel = await start_ptb(app, application)
            channel.core.chat_limit = UNPACED_CHAT
            polling = DurablePolling(
                channel.fetch, application.process_update, app.inbox, channel.raw, channel.parse, timeout=1
            )
            task = asyncio.create_task(polling.run())
            try:
                yield app
            finally:
                polling.stop()
                await task
                await channel.core.close()
    finally:
        await application.shutdown()


def bot_process_env(settings: Settings) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("REACHABLE_")}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        environ[f"REACHABLE_{name.upper()}"] = str(value)
    return environ


async def start_bot_process(settings: Settings, *args: str, command: str = "run") -> asyncio.subprocess.Process:
    """``reachable run`` (or another ``command``) as a real process. Its log goes to a file beside
    (never inside) the data folder: a pipe nobody reads fills up and blocks the bot once it has
    logged 64 KiB."""
    log = settings.data_dir.parent / f"{settings.data_dir.name}-bot.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as stderr:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            command,
            *args,
            env=bot_process_env(settings),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
        )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def rasa_bot(data: Path, key: str, telegram_url: str = "http://127.0.0.1:9", **extra: str) -> AsyncIterator[Any]:
    """The action server with the real app in this event loop, and a fake Rasa that calls it
    and serves the HTTP API staff messages go through. Yields (app, fake Rasa)."""
    from bot.channels.rasa.run import serving_actions
    from fakes.rasa import TOKEN as RASA_TOKEN
    from fakes.rasa import FakeRasa

    port = free_port()
    rasa = FakeRasa(f"http://127.0.0.1:{port}")
    await rasa.start()
    stub = type("F", (), {"url": telegram_url})()
    environ = {
        "REACHABLE_RASA_ACTIONS_LISTEN": f"127.0.0.1:{port}",
        "REACHABLE_RASA_URL": rasa.url,
        "REACHABLE_RASA_TOKEN": RASA_TOKEN,
        **extra,
    }
    settings = settings_for(stub, data, key, **environ)
    try:
        async with create_app(settings) as app, serving_actions(app):
            app.conversations.flood = FloodGuard(burst=10_000)
            yield app, rasa
    finally:
        await rasa.stop()


@contextlib.asynccontextmanager
async def web_chat(
    data: Path,
    key: str,
    telegram_url: str = "http://127.0.0.1:9",
    extra: dict[str, str] | None = None,
    real_rate_limits: bool = False,
) -> AsyncIterator[Any]:
    """The web chat with the real app in this event loop. Yields (app, the page's address)."""
    async with web_chat_served(data, key, telegram_url, extra, real_rate_limits) as (app, base, _):
        yield app, base


@contextlib.asynccontextmanager
async def web_chat_served(
    data: Path,
    key: str,
    telegram_url: str = "http://127.0.0.1:9",
    extra: dict[str, str] | None = None,
    real_rate_limits: bool = False,
) -> AsyncIterator[Any]:
    """As :func:`web_chat`, also yielding the web chat itself (its sessions and limits)."""
    from bot.channels.web.run import Addresses, serving_web

    port = free_port()
    stub = type("F", (), {"url": telegram_url})()
    environ = {
        "REACHABLE_WEB_LISTEN": f"127.0.0.1:{port}",
        "REACHABLE_WEB_EXIT_URL": "https://example.org/",
        **(extra or {}),
    }
    settings = settings_for(stub, data, key, **environ)
    async with create_app(settings) as app, serving_web(app) as chat:
        app.conversations.flood = FloodGuard(burst=10_000)
        if not real_rate_limits:
            # Scripted people post faster than anyone can, and all come from this machine.
            chat.per_session = (1000.0, 1000.0)
            chat.addresses = Addresses(1000.0, 1000.0)
        yield app, f"http://127.0.0.1:{port}", chat
