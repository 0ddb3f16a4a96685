"""The bots `make bench` compares, each polling the fake Bot API through the durable loop:
a bare echo bot and Reachable, on aiogram and on python-telegram-bot."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import Message
from telegram import Update as PTBUpdate
from telegram.ext import ContextTypes, MessageHandler, filters

from bench import peers
from bench.in_memory import aiogram_polling, ptb_polling
from bot.channels.telegram.aiogram_run import make_bot
from bot.channels.telegram.aiogram_run import start as start_aiogram
from bot.channels.telegram.polling import DurablePolling
from bot.channels.telegram.ptb_run import make_application
from bot.channels.telegram.ptb_run import start as start_ptb
from bot.channels.telegram.serving import BACKLOG
from bot.core.app import App, create_app
from bot.core.delivery import Pacer
from bot.core.guards import FloodGuard
from bot.core.settings import Settings
from fakes.harness import settings_for
from fakes.telegram import TOKEN
from storage import Keyring
from storage.inbox import MemoryInbox

Close = Callable[[], Awaitable[None]]
Running = tuple[DurablePolling[Any], Close]
BotMaker = Callable[[str], Awaitable[Running]]


def bench_settings(url: str, in_ram: bool = False) -> Settings:
    """The bot's settings; its data in a PostgreSQL database when BENCH_DATABASE_URL names one
    (bench/postgres.py), in a SQLite file otherwise (``in_ram``: on /dev/shm, where writing and
    syncing to disk cost no waiting)."""
    ram = "/dev/shm" if in_ram else None  # noqa: S108 - mkdtemp makes a folder only we may enter
    folder = tempfile.mkdtemp(prefix="reachable-bench-", dir=ram)
    database = (
        {"REACHABLE_DATABASE_URL": os.environ["BENCH_DATABASE_URL"]} if "BENCH_DATABASE_URL" in os.environ else {}
    )
    return settings_for(type("F", (), {"url": url})(), Path(folder), Keyring.new_key().decode(), **database)


async def open_app(settings: Settings) -> App:
    app = create_app(settings)
    await app.__aenter__()
    app.conversations.flood = FloodGuard(burst=10_000)  # capacity, not flood behaviour
    return app


def for_capacity(pacer_owner: Any) -> None:
    # Telegram's 30/s pacing is not what a capacity benchmark measures.
    pacer_owner.pacer = Pacer(1_000_000, 1.0)


async def bare_aiogram(url: str) -> Running:
    bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(url)))
    router = Router()

    async def echo(message: Message) -> None:
        await message.answer(message.text or "")

    router.message.register(echo, F.text)
    dispatcher = Dispatcher()
    dispatcher.include_router(router)

    async def close() -> None:
        await bot.session.close()

    # Held in memory: the bare bot keeps nothing, and the loop is the same as Reachable's.
    return aiogram_polling(bot, dispatcher), close


async def reachable_aiogram(url: str, inbox_in_memory: bool = False, in_ram: bool = False) -> Running:
    settings = bench_settings(url, in_ram)
    bot = make_bot(settings)
    app = await open_app(settings)
    channel = await start_aiogram(app, bot)
    for_capacity(channel.core)
    dispatcher = channel.dispatcher()
    polling = DurablePolling(
        channel.fetch,
        lambda update: dispatcher.feed_update(bot, update),
        MemoryInbox() if inbox_in_memory else app.inbox,
        channel.raw,
        channel.parse,
        backlog=BACKLOG,
        timeout=1,
    )

    async def close() -> None:
        await channel.core.close()
        await app.__aexit__(None, None, None)
        await bot.session.close()

    return polling, close


async def bare_ptb(url: str) -> Running:
    application = make_application(bench_settings(url))

    async def echo(update: PTBUpdate, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is not None and message.text is not None:
            await context.bot.send_message(message.chat.id, message.text)

    application.add_handler(MessageHandler(filters.TEXT, echo))
    await application.initialize()

    return ptb_polling(application, application.process_update), application.shutdown


async def reachable_ptb(url: str) -> Running:
    settings = bench_settings(url)
    application = make_application(settings)
    app = await open_app(settings)
    channel = await start_ptb(app, application)
    for_capacity(channel.core)
    polling = DurablePolling(
        channel.fetch, application.process_update, app.inbox, channel.raw, channel.parse, backlog=BACKLOG, timeout=1
    )

    async def close() -> None:
        await channel.core.close()
        await app.__aexit__(None, None, None)
        await application.shutdown()

    return polling, close


async def inbox_in_memory(url: str) -> Running:
    return await reachable_aiogram(url, inbox_in_memory=True)


async def inbox_in_memory_data_in_ram(url: str) -> Running:
    return await reachable_aiogram(url, inbox_in_memory=True, in_ram=True)


BOTS: dict[str, BotMaker] = {
    "bare aiogram echo": bare_aiogram,
    "Reachable on aiogram": reachable_aiogram,
    "bare python-telegram-bot echo": bare_ptb,
    "Reachable on python-telegram-bot": reachable_ptb,
    # The same questions and report as a capable developer would build them (bench/peers.py).
    "peer aiogram FSM": peers.aiogram_fsm,
    "peer python-telegram-bot ConversationHandler": peers.ptb_conversation,
}
# Reachable on aiogram with one duty at a time taken away, to measure what each costs (`make bench`).
DUTIES: dict[str, BotMaker] = {
    "Reachable on aiogram, updates not written to the inbox first": inbox_in_memory,
    "... and its SQLite files in memory (/dev/shm: no disk syncs)": inbox_in_memory_data_in_ram,
}
