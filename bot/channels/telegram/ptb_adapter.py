"""The Telegram channel on python-telegram-bot 22: translation only, like ``bot/channels/telegram/aiogram_adapter.py``.

PTB's ``Application`` dispatches updates to handlers; the updates themselves come from the
durable polling loop (or the webhook), never from PTB's ``Updater``, which confirms updates
before they are handled. PTB's persistence is not used: conversation state lives in the
engine's encrypted store.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

from telegram import BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application, CallbackQueryHandler, ContextTypes, MessageHandler, filters

from bot.channels.telegram import CHANNEL
from bot.core import callbacks
from bot.core.channel import Channel, Ports
from bot.core.transport import TELEGRAM, Button, ChatInfo, TransportError, Unreachable
from bot.core.transport import RetryAfter as WaitFor
from flows.definitions import PUBLIC_COMMANDS
from flows.events import Event, Unsupported, parse_typed
from responses import Responses

log = logging.getLogger("reachable.telegram")
ALLOWED_UPDATES = ["message", "edited_message", "callback_query"]
Context = ContextTypes.DEFAULT_TYPE


def _seconds(value: int | dt.timedelta) -> float:
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


def _translated(error: TelegramError) -> TransportError:
    if isinstance(error, RetryAfter):
        return WaitFor(_seconds(error.retry_after))
    if isinstance(error, Forbidden):
        return Unreachable(str(error))
    return TransportError(type(error).__name__)


class PTBTransport:
    channel = CHANNEL
    limits = TELEGRAM

    def __init__(self, application: Application[Any, Any, Any, Any, Any, Any]) -> None:
        self.bot = application.bot

    async def send(self, chat_id: str, text: str, buttons: Sequence[Button] = ()) -> int:
        rows = [[InlineKeyboardButton(b.text, callback_data=b.data)] for b in buttons]
        try:
            message = await self.bot.send_message(
                int(chat_id), text, reply_markup=InlineKeyboardMarkup(rows) if rows else None
            )
        except TelegramError as error:
            raise _translated(error) from error
        return int(message.message_id)

    async def delete(self, chat_id: str, message_ids: Sequence[int]) -> None:
        for start in range(0, len(message_ids), 100):
            try:
                await self.bot.delete_messages(int(chat_id), list(message_ids[start : start + 100]))
            except TelegramError as error:
                log.warning("deleteMessages failed: %s", type(error).__name__)

    async def answer_button(self, query_id: str) -> None:
        try:
            await self.bot.answer_callback_query(query_id)
        except TelegramError as error:
            raise _translated(error) from error

    async def chat_info(self, chat_id: str) -> ChatInfo:
        try:
            return ChatInfo(public_name=(await self.bot.get_chat(int(chat_id))).username)
        except TelegramError as error:
            raise _translated(error) from error

    def encode_button(self, step: str, option: str) -> str:
        return callbacks.encode(step, option)


def event_of(update: Update) -> Event:
    message = update.message
    assert message is not None
    if message.text is not None:
        return parse_typed(message.text)
    kind = next((k for k in ("sticker", "photo", "voice", "video", "location", "contact") if getattr(message, k)), "")
    return Unsupported(kind=kind or "other")


class PTBChannel:
    """python-telegram-bot's updates, translated into the channel core's calls."""

    def __init__(self, ports: Ports, application: Application[Any, Any, Any, Any, Any, Any]) -> None:
        self.application = application
        self.core = Channel(PTBTransport(application), ports)
        self.ledger = self.core.ledger
        staff = filters.Chat(chat_id=[int(c) for c in self.core.staff_chat_ids])
        groups = filters.ChatType.GROUPS
        private = filters.ChatType.PRIVATE
        messages = filters.UpdateType.MESSAGE
        application.add_handler(MessageHandler(messages & staff, self.on_staff_message))
        application.add_handler(MessageHandler(messages & private, self.on_private_message))
        application.add_handler(CallbackQueryHandler(self.on_button))
        application.add_handler(MessageHandler(messages & groups & ~staff, self.on_group_message))

    async def on_private_message(self, update: Update, context: Context) -> None:
        message = update.message
        assert message is not None
        language = message.from_user.language_code if message.from_user else None
        await self.core.private(
            str(message.chat.id), event_of(update), update_id=update.update_id, incoming=message.message_id,
            language=language,
        )  # fmt: skip

    async def on_button(self, update: Update, context: Context) -> None:
        query = update.callback_query
        assert query is not None
        message = query.message
        if message is None or message.chat.type != "private":
            await self.core.answer_button(query.id)
            return
        await self.core.private(
            str(message.chat.id), callbacks.decode(query.data), update_id=update.update_id,
            language=query.from_user.language_code, query_id=query.id,
        )  # fmt: skip

    async def on_staff_message(self, update: Update, context: Context) -> None:
        message = update.message
        assert message is not None
        # An anonymous admin writes as the group (sender_chat): no person to recognise.
        user = message.from_user.id if message.from_user and not message.sender_chat else None
        await self.core.staff(str(message.chat.id), user, message.text or "", update_id=update.update_id)

    async def on_group_message(self, update: Update, context: Context) -> None:
        message = update.message
        assert message is not None
        me = self.application.bot
        text = message.text or ""
        replied = message.reply_to_message
        addressed = (
            text.startswith("/")
            or f"@{me.username}".casefold() in text.casefold()
            or (replied is not None and replied.from_user is not None and replied.from_user.id == me.id)
        )
        await self.core.group(str(message.chat.id), addressed)

    async def register_commands(self, responses: Responses) -> None:
        for locale in responses.locales:
            commands = [BotCommand(n, responses.text(locale, f"telegram.command.{n}")) for n in PUBLIC_COMMANDS]
            await self.application.bot.set_my_commands(commands, language_code=None if locale == "en" else locale)

    def raw(self, update: Update) -> dict[str, Any]:
        return update.to_dict()

    def parse(self, raw: dict[str, Any]) -> Update:
        return Update.de_json(raw, self.application.bot)

    async def fetch(self, offset: int | None, wait: int) -> list[tuple[int, Update]]:
        """One ``getUpdates``, for the durable polling loop."""
        try:
            updates = await self.application.bot.get_updates(
                offset=offset, timeout=wait, allowed_updates=ALLOWED_UPDATES, read_timeout=wait + 10
            )
        except RetryAfter as error:
            raise WaitFor(_seconds(error.retry_after)) from error
        except (NetworkError, TelegramError) as error:
            raise TransportError(type(error).__name__) from error
        return [(u.update_id, u) for u in updates]
