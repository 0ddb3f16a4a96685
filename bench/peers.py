"""Peers for `make bench`: the same questions and report, built the way a capable developer would
build them on each library without Reachable, so that Reachable's speed is measured against
what a charity would otherwise run.

- aiogram: a finite-state machine (aiogram's FSM with its MemoryStorage), one handler a state;
- python-telegram-bot: a ConversationHandler with PicklePersistence, updates one at a time
  (PTB's default, and what a ConversationHandler needs to see each answer in its state).

Both keep the report with aiosqlite (one connection, WAL, a commit a report) and hash its code
with Argon2id at the same settings as Reachable (storage/crypto.py), off the event loop. What
they do not do, and Reachable does: encrypt what they keep, write each update to an inbox before
handling it, keep what the person is told until it has gone out, understand free text, and
queue summaries for staff in the same transaction. Polled by the same loop as every bot here
(bench/bots.py), their updates held in memory."""

from __future__ import annotations

import asyncio
import json
import secrets
import tempfile
from pathlib import Path
from typing import Any

import aiosqlite
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.types import Message
from argon2 import PasswordHasher
from telegram import Update as PTBUpdate
from telegram.ext import (
    Application,
    CommandHandler,
    ContextTypes,
    ConversationHandler,
    MessageHandler,
    PicklePersistence,
    filters,
)

from bench.in_memory import aiogram_polling, ptb_polling
from bot.channels.telegram.polling import DurablePolling
from fakes.telegram import TOKEN

# What each step asks, in the order bench/run.py's people answer: the intro, then each question,
# the summary and whether to keep it; the last answer keeps it and gets the code.
ASKED = (
    "Before you start: this is confidential. 1 Start",
    "What happened? Choose all that fit, then Done.",
    "When did it happen?",
    "Where did it happen?",
    "Were any drugs or drink involved?",
    "In your own words, what happened?",
    "Did you meet them through an app?",
    "Have you told anyone else about this?",
    "What would help you most?",
    "Here is your summary. Is this right?",
    "Shall we keep this summary?",
)
KEYS = ("intro", "what", "when", "where", "substances", "account", "app", "told", "wants", "review", "keep")
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS reports (reference TEXT PRIMARY KEY, answers TEXT NOT NULL, code_hash TEXT NOT NULL)"
)


class Reports:
    """The report kept as such a bot keeps it: answers as JSON, the code as an Argon2id hash."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="reachable-peer-")) / "reports.sqlite3"
        self.hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
        self.db: aiosqlite.Connection | None = None

    async def open(self) -> None:
        self.db = await aiosqlite.connect(self.path)
        await self.db.execute("PRAGMA journal_mode=WAL")
        await self.db.execute(SCHEMA)
        await self.db.commit()

    async def keep(self, answers: dict[str, Any]) -> str:
        assert self.db is not None
        code = "-".join(secrets.token_hex(2).upper() for _ in range(4))
        hashed = await asyncio.to_thread(self.hasher.hash, code)
        reference = secrets.token_hex(4).upper()
        await self.db.execute("INSERT INTO reports VALUES (?, ?, ?)", (reference, json.dumps(answers), hashed))
        await self.db.commit()
        return f"Kept. Reference: {reference}\nSecret code: {code}"

    async def close(self) -> None:
        if self.db is not None:
            await self.db.close()


class Steps(StatesGroup):
    intro = State()
    what = State()
    when = State()
    where = State()
    substances = State()
    account = State()
    app = State()
    told = State()
    wants = State()
    review = State()
    keep = State()


STATES = [getattr(Steps, key) for key in KEYS]


async def aiogram_fsm(url: str) -> tuple[DurablePolling[Any], Any]:
    bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(url)))
    reports = Reports()
    await reports.open()
    router = Router()

    async def start(message: Message, state: FSMContext) -> None:
        await state.set_state(Steps.intro)
        await message.answer(ASKED[0])

    async def answered(message: Message, state: FSMContext) -> None:
        current = await state.get_state()
        step = next(i for i, s in enumerate(STATES) if s.state == current)
        await state.update_data({KEYS[step]: message.text})
        if step + 1 < len(STATES):
            await state.set_state(STATES[step + 1])
            await message.answer(ASKED[step + 1])
            return
        answers = await state.get_data()
        await state.clear()
        await message.answer(await reports.keep(answers))

    router.message.register(start, Command("report"))
    router.message.register(answered, StateFilter(Steps), F.text)
    dispatcher = Dispatcher(storage=MemoryStorage())
    dispatcher.include_router(router)

    async def close() -> None:
        await reports.close()
        await bot.session.close()

    return aiogram_polling(bot, dispatcher), close


async def ptb_conversation(url: str) -> tuple[DurablePolling[Any], Any]:
    reports = Reports()
    await reports.open()
    persistence = PicklePersistence(filepath=reports.path.with_name("conversations.pickle"))
    application = (
        Application.builder()
        .token(TOKEN)
        .base_url(f"{url}/bot")
        .base_file_url(f"{url}/file/bot")
        .updater(None)
        # Updates one at a time, PTB's default and what its ConversationHandler needs: a reply
        # goes out before the callback returns the next state, so a person answering at once
        # would otherwise find the conversation still in the last state.
        .persistence(persistence)
        .build()
    )

    async def start(update: PTBUpdate, context: ContextTypes.DEFAULT_TYPE) -> int:
        assert update.effective_chat is not None
        await context.bot.send_message(update.effective_chat.id, ASKED[0])
        return 0

    def step(number: int) -> Any:
        async def answered(update: PTBUpdate, context: ContextTypes.DEFAULT_TYPE) -> int:
            assert update.effective_chat is not None
            assert update.effective_message is not None
            answers = context.chat_data if context.chat_data is not None else {}
            answers[KEYS[number]] = update.effective_message.text
            if number + 1 < len(KEYS):
                await context.bot.send_message(update.effective_chat.id, ASKED[number + 1])
                return number + 1
            said = await reports.keep(dict(answers))
            answers.clear()
            await context.bot.send_message(update.effective_chat.id, said)
            return ConversationHandler.END

        return answered

    typed = filters.TEXT & ~filters.COMMAND
    conversation = ConversationHandler(
        entry_points=[CommandHandler("report", start)],
        states={number: [MessageHandler(typed, step(number))] for number in range(len(KEYS))},
        fallbacks=[],
        name="report",
        persistent=True,
    )
    application.add_handler(conversation)
    await application.initialize()

    async def close() -> None:
        await application.shutdown()
        await reports.close()

    one_at_a_time = asyncio.Lock()  # as PTB's own update loop does by default

    async def handle(update: PTBUpdate) -> None:
        async with one_at_a_time:
            await application.process_update(update)

    return ptb_polling(application, handle), close
