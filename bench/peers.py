"""Peers for `make bench`: the same questions and report, built the way a capable developer would
build them on each library without Reachable, so that Reachable's speed is measured against
what a charity would otherwise run.

- aiogram: a finite-state machine (aiogram's FSM with its MemoryStorage), one state a step;
- python-telegram-bot: a ConversationHandler with PicklePersistence, updates one at a time
  (PTB's default, and what a ConversationHandler needs to see each answer in its state).

Both send what Reachable sends in the same report, message for message: the same words (read
from the same file), the same buttons under each question, the summary built from the answers,
and the menu after the code (``Script``). They read a typed answer as its option's number or its
button's words, and ask again when it is neither. They keep the report with aiosqlite (one
connection, WAL, a commit a report) and hash its code with Argon2id at the same settings as
Reachable (storage/crypto.py), off the event loop. What they do not do, and Reachable does:
encrypt what they keep, write each update to an inbox before handling it, keep what the person
is told until it has gone out, understand answers in the person's own words (and hear danger in
any of them), keep the ids of what they sent for the quick exit, and queue summaries for staff
in the same transaction. Polled by the same loop as every bot here (bench/bots.py), their
updates held in memory."""

from __future__ import annotations

import asyncio
import json
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message
from argon2 import PasswordHasher
from telegram import InlineKeyboardButton as PTBButton
from telegram import InlineKeyboardMarkup as PTBKeyboard
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
from bot.core.settings import Settings
from fakes.telegram import TOKEN
from responses.loader import Responses

# Reachable's defaults, which its messages give
DRAFT_HOURS = Settings.model_fields["draft_hours"].default
RETENTION_DAYS = Settings.model_fields["retention_days"].default


@dataclass(frozen=True)
class Question:
    """One question of the report as a peer asks it: its message, its options (message ids, in
    the order their numbers are typed), whether several may be chosen, whether it may be skipped."""

    key: str
    asks: str
    options: tuple[str, ...] = ()
    many: bool = False
    skip: bool = True
    typed: bool = False  # answered in the person's own words


def _options(prefix: str, *names: str) -> tuple[str, ...]:
    return tuple(f"{prefix}.{name}" for name in names)


QUESTIONS = (
    Question("intro", "report.intro.keep_only", ("report.intro.start", "option.not_now"), skip=False),
    Question(
        "what",
        "report.what",
        _options("report.what", "assault", "drugged", "robbery", "threats", "violence", "other"),
        many=True,
    ),
    Question("when", "report.when", _options("report.when", "today", "week", "month", "longer")),
    Question("where", "report.where", _options("report.where", "london", "elsewhere")),
    Question(
        "substances",
        "report.substances",
        _options("report.substances", "g", "meth", "meph", "ketamine", "alcohol", "other"),
        many=True,
    ),
    Question("account", "report.account", typed=True),
    Question("app", "report.app", ("option.yes", "option.no")),
    Question("elsewhere", "report.elsewhere", _options("report.elsewhere", "no", "police", "galop", "havens", "other")),
    Question(
        "wants", "report.wants", _options("report.wants", "information", "talk", "third_party", "police"), many=True
    ),
    Question("review", "review.prompt", _options("review", "confirm", "change", "remove", "erase"), skip=False),
    Question("keep", "consent.keep", _options("consent.keep", "yes", "no"), skip=False),
)
MENU = _options("menu", "emergency", "advice", "services", "report", "delete", "language")
Buttons = tuple[tuple[str, str], ...]  # (label, callback data), one a row
Said = tuple[str, str | None]  # a message's text, and the name of the buttons under it
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS reports (reference TEXT PRIMARY KEY, answers TEXT NOT NULL, code_hash TEXT NOT NULL)"
)


class Script:
    """What a peer says and how it reads a typed answer: the same messages and buttons as
    Reachable on Telegram, in English, from the same words file (responses/default), turned into
    strings and button rows once at start, as such a bot holds its texts. Frameworks apart, both
    peers run this: it is the part of such a bot that is not Telegram's."""

    def __init__(self) -> None:
        words = Responses.load()

        def say(message_id: str) -> str:
            return words.text("en", message_id, "telegram")

        self.say = say
        self.label = {option: say(option) for q in QUESTIONS for option in q.options} | {m: say(m) for m in MENU}
        self.buttons: dict[str, Buttons] = {}
        self.asked: list[Said] = []
        for q in QUESTIONS:
            extra = (("option.done",) if q.many else ()) + (("option.skip",) if q.skip else ()) + ("option.leave",)
            rows = tuple((say(o), f"{q.key}|{o.rsplit('.', 1)[-1]}") for o in q.options + extra)
            self.buttons[q.key] = rows
            self.asked.append((say(q.asks).format(draft_hours=DRAFT_HOURS, retention_days=RETENTION_DAYS), q.key))
        self.buttons["menu"] = tuple((say(o), f"menu|{o.rsplit('.', 1)[-1]}") for o in (*MENU, "option.leave"))
        self.menu: Said = (say("menu.prompt"), "menu")
        self.sorry: Said = (say("report.not_your_fault"), None)
        self.skips = frozenset(words.words("en", "skip"))
        self.leave = say("option.leave").casefold()
        self.done = say("option.done").casefold()
        self.typed_labels = [{say(o).casefold(): o for o in q.options} for q in QUESTIONS]

    def read(self, step: int, text: str) -> tuple[str, ...] | None:
        """The options a typed answer names (numbers, or the buttons' words), () when skipped,
        None when it names none: the question is asked again."""
        q, said = QUESTIONS[step], text.strip().casefold()
        if q.typed:
            return (text.strip(),) if said not in self.skips else ()
        if q.skip and said in self.skips:
            return ()
        chosen = []
        for part in (p.strip() for p in said.split(",")):
            if part.isdigit() and 1 <= int(part) <= len(q.options):
                chosen.append(q.options[int(part) - 1])
            elif part in self.typed_labels[step]:
                chosen.append(self.typed_labels[step][part])
            elif not (q.many and part == self.done):
                return None
        return tuple(chosen) if chosen and (q.many or len(chosen) == 1) else None

    def answer(self, step: int, text: str, answers: dict[str, Any]) -> tuple[int | None, list[Said]]:
        """The next step (None: the report is over, to be kept when ``answers["keep"]`` says so)
        and what to say, having kept the answer to ``step`` in ``answers``."""
        if text.strip().casefold() in (self.leave, "/exit"):
            answers.clear()
            return None, []
        chosen = self.read(step, text)
        if chosen is None:
            return step, [self.asked[step]]
        q = QUESTIONS[step]
        answers[q.key] = list(chosen)
        if (q.key == "intro" and chosen != ("report.intro.start",)) or (
            q.key == "review" and chosen[0] == "review.erase"
        ):
            answers.clear()
            return None, [self.menu]
        if q.key == "review" and chosen[0] != "review.confirm":  # change an answer: from the start
            return 1, [self.asked[1]]
        if q.key == "keep":
            return None, []  # the caller keeps the report, or not, and says so
        said = [self.sorry] if q.key == "what" and chosen else []
        if QUESTIONS[step + 1].key == "review":
            said.append((self.say("review.summary").format(summary=self.summary(answers)), None))
        return step + 1, [*said, self.asked[step + 1]]

    def summary(self, answers: dict[str, Any]) -> str:
        lines = []
        for q in QUESTIONS[1:-2]:
            if answers.get(q.key):
                shown = answers[q.key] if q.typed else [self.label[o] for o in answers[q.key]]
                lines.append(f"• {self.say(f'summary.{q.key}')}: {', '.join(shown)}")
        return "\n".join(lines)

    def kept(self, reference: str, code: str) -> list[Said]:
        text = self.say("report.kept").format(reference=reference, code=code, retention_days=RETENTION_DAYS)
        return [(text, None), self.menu]


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

    async def keep(self, answers: dict[str, Any]) -> tuple[str, str]:
        """The report kept: its reference and its secret code."""
        assert self.db is not None
        code = "-".join(secrets.token_hex(2).upper() for _ in range(4))
        hashed = await asyncio.to_thread(self.hasher.hash, code)
        reference = secrets.token_hex(4).upper()
        await self.db.execute("INSERT INTO reports VALUES (?, ?, ?)", (reference, json.dumps(answers), hashed))
        await self.db.commit()
        return reference, code

    async def close(self) -> None:
        if self.db is not None:
            await self.db.close()


async def said_after(
    script: Script, reports: Reports, step: int, text: str, answers: dict[str, Any]
) -> tuple[int | None, list[Said]]:
    """``Script.answer``, and the report kept when the person said to keep it."""
    following, said = script.answer(step, text, answers)
    if following is None and answers.get("keep") == ["consent.keep.yes"]:
        said = script.kept(*await reports.keep(dict(answers)))
        answers.clear()
    return following, said


async def aiogram_fsm(url: str) -> tuple[DurablePolling[Any], Any]:
    """aiogram's finite-state machine: the step is the state, the answers its data."""
    bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(url)))
    script, reports = Script(), Reports()
    await reports.open()
    keyboards = {
        name: InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text=text, callback_data=data)] for text, data in rows]
        )
        for name, rows in script.buttons.items()
    }
    steps = [State(q.key, group_name="report") for q in QUESTIONS]
    router = Router()

    async def send(message: Message, said: list[Said]) -> None:
        for text, buttons in said:
            await message.answer(text, reply_markup=keyboards[buttons] if buttons else None)

    async def start(message: Message, state: FSMContext) -> None:
        await state.set_state(steps[0])
        await state.set_data({})
        await send(message, [script.asked[0]])

    async def answered(message: Message, state: FSMContext) -> None:
        current = await state.get_state()
        step = next(number for number, s in enumerate(steps) if s.state == current)
        answers = await state.get_data()
        following, said = await said_after(script, reports, step, message.text or "", answers)
        if following is None:
            await state.clear()
        else:
            await state.set_state(steps[following])
            await state.set_data(answers)
        await send(message, said)

    router.message.register(start, Command("report"))
    router.message.register(answered, StateFilter(*steps), F.text)
    dispatcher = Dispatcher(storage=MemoryStorage())
    dispatcher.include_router(router)

    async def close() -> None:
        await reports.close()
        await bot.session.close()

    return aiogram_polling(bot, dispatcher), close


async def ptb_conversation(url: str) -> tuple[DurablePolling[Any], Any]:
    """python-telegram-bot's ConversationHandler: the step is its state, the answers chat data."""
    script, reports = Script(), Reports()
    await reports.open()
    keyboards = {
        name: PTBKeyboard([[PTBButton(text, callback_data=data)] for text, data in rows])
        for name, rows in script.buttons.items()
    }
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

    async def send(update: PTBUpdate, context: ContextTypes.DEFAULT_TYPE, said: list[Said]) -> None:
        assert update.effective_chat is not None
        for text, buttons in said:
            markup = keyboards[buttons] if buttons else None
            await context.bot.send_message(update.effective_chat.id, text, reply_markup=markup)

    async def start(update: PTBUpdate, context: ContextTypes.DEFAULT_TYPE) -> int:
        if context.chat_data is not None:
            context.chat_data.clear()
        await send(update, context, [script.asked[0]])
        return 0

    def step(number: int) -> Any:
        async def answered(update: PTBUpdate, context: ContextTypes.DEFAULT_TYPE) -> int:
            assert update.effective_message is not None
            answers = context.chat_data if context.chat_data is not None else {}
            text = update.effective_message.text or ""
            following, said = await said_after(script, reports, number, text, answers)
            await send(update, context, said)
            return ConversationHandler.END if following is None else following

        return answered

    typed = filters.TEXT & ~filters.COMMAND
    conversation = ConversationHandler(
        entry_points=[CommandHandler("report", start)],
        states={number: [MessageHandler(typed, step(number))] for number in range(len(QUESTIONS))},
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
