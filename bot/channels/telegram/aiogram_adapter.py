"""The Telegram channel on aiogram 3: translation only. Updates become calls to the channel
core (``bot/core/channel.py``); the core's sends become Bot API calls through :class:`AiogramTransport`.

Filters are async classes: aiogram runs plain callables (and magic filters) in a thread pool,
which halves throughput. Conversation state lives in the engine's encrypted store, so aiogram's
FSM is switched off rather than kept as a second copy.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from aiogram import Bot, Dispatcher, Router
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.filters import Filter
from aiogram.types import BotCommand, CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update

from bot.channels.telegram import CHANNEL
from bot.core import callbacks
from bot.core.channel import Channel, Ports
from bot.core.transport import TELEGRAM, Button, ChatInfo, RetryAfter, TransportError, Unreachable
from flows.definitions import PUBLIC_COMMANDS
from flows.events import Event, Unsupported, parse_typed
from responses import Responses

log = logging.getLogger("reachable.telegram")
ALLOWED_UPDATES = ["message", "edited_message", "callback_query"]
GROUPS = frozenset({"group", "supergroup"})


def _translated(error: TelegramAPIError) -> TransportError:
    if isinstance(error, TelegramRetryAfter):
        return RetryAfter(float(error.retry_after))
    if isinstance(error, TelegramForbiddenError):
        return Unreachable(str(error))
    return TransportError(type(error).__name__)


class AiogramTransport:
    channel = CHANNEL
    limits = TELEGRAM

    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    async def send(self, chat_id: str, text: str, buttons: Sequence[Button] = ()) -> int:
        rows = [[InlineKeyboardButton(text=b.text, callback_data=b.data)] for b in buttons]
        markup = InlineKeyboardMarkup(inline_keyboard=rows) if rows else None
        try:
            return (await self.bot.send_message(int(chat_id), text, reply_markup=markup)).message_id
        except TelegramAPIError as error:
            raise _translated(error) from error

    async def delete(self, chat_id: str, message_ids: Sequence[int]) -> None:
        for start in range(0, len(message_ids), 100):
            try:
                await self.bot.delete_messages(int(chat_id), list(message_ids[start : start + 100]))
            except TelegramAPIError as error:
                log.warning("deleteMessages failed: %s", type(error).__name__)

    async def answer_button(self, query_id: str) -> None:
        try:
            await self.bot.answer_callback_query(query_id)
        except TelegramAPIError as error:
            raise _translated(error) from error

    async def chat_info(self, chat_id: str) -> ChatInfo:
        try:
            return ChatInfo(public_name=(await self.bot.get_chat(int(chat_id))).username)
        except TelegramAPIError as error:
            raise _translated(error) from error

    def encode_button(self, step: str, option: str) -> str:
        return callbacks.encode(step, option)


class Kind(Filter):
    """Messages and button presses by the kind of chat they come from (async: no thread pool)."""

    def __init__(self, kinds: frozenset[str], chats: frozenset[str] = frozenset(), among: bool = False) -> None:
        self.kinds, self.chats, self.among = kinds, chats, among

    async def __call__(self, event: Message | CallbackQuery) -> bool:
        message = event.message if isinstance(event, CallbackQuery) else event
        if message is None:
            return False
        listed = str(message.chat.id) in self.chats
        return listed if self.among else message.chat.type in self.kinds and not listed


def event_of(message: Message) -> Event:
    return parse_typed(message.text) if message.text is not None else Unsupported(kind=str(message.content_type))


def update_json(update: Update) -> dict[str, Any]:
    """The update as Telegram sent it, for the inbox. Only what was set: aiogram fills what
    Telegram left out with placeholders (Default) that have no JSON form."""
    return update.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_unset=True)


class TelegramChannel:
    """aiogram's updates, translated into the channel core's calls."""

    def __init__(self, ports: Ports, bot: Bot) -> None:
        self.bot = bot
        self.core = Channel(AiogramTransport(bot), ports)
        self.ledger = self.core.ledger

    def router(self) -> Router:
        staff = self.core.staff_chat_ids
        router = Router(name="reachable")
        router.message.register(self.on_staff_message, Kind(GROUPS, staff, among=True))
        router.message.register(self.on_private_message, Kind(frozenset({"private"})))
        router.callback_query.register(self.on_button, Kind(frozenset({"private"})))
        router.callback_query.register(self.on_other_button)
        router.message.register(self.on_group_message, Kind(GROUPS, staff))
        router.edited_message.register(self.on_edited)
        return router

    def dispatcher(self) -> Dispatcher:
        dispatcher = Dispatcher(disable_fsm=True)
        dispatcher.include_router(self.router())
        return dispatcher

    async def on_private_message(self, message: Message, event_update: Update) -> None:
        language = message.from_user.language_code if message.from_user else None
        await self.core.private(
            str(message.chat.id),
            event_of(message),
            update_id=event_update.update_id,
            incoming=message.message_id,
            language=language,
        )

    async def on_button(self, query: CallbackQuery, event_update: Update) -> None:
        assert query.message is not None  # guaranteed by the filter
        language = query.from_user.language_code if query.from_user else None
        await self.core.private(
            str(query.message.chat.id),
            callbacks.decode(query.data),
            update_id=event_update.update_id,
            language=language,
            query_id=query.id,
        )

    async def on_other_button(self, query: CallbackQuery) -> None:
        await self.core.answer_button(query.id)

    async def on_edited(self, message: Message) -> None:
        """Edits are not read: the answer was taken when it was sent."""

    async def on_staff_message(self, message: Message, event_update: Update) -> None:
        # An anonymous admin writes as the group (sender_chat): no person to recognise.
        user = message.from_user.id if message.from_user and not message.sender_chat else None
        await self.core.staff(str(message.chat.id), user, message.text or "", update_id=event_update.update_id)

    async def on_group_message(self, message: Message) -> None:
        me = await self.bot.me()
        text = message.text or ""
        replied = message.reply_to_message
        addressed = (
            text.startswith("/")
            or (me.username is not None and f"@{me.username}".casefold() in text.casefold())
            or (replied is not None and replied.from_user is not None and replied.from_user.id == me.id)
        )
        await self.core.group(str(message.chat.id), addressed)

    async def register_commands(self, responses: Responses) -> None:
        """The command menu, in every language the responses have."""
        for locale in responses.locales:
            commands = [
                BotCommand(command=name, description=responses.text(locale, f"telegram.command.{name}"))
                for name in PUBLIC_COMMANDS
            ]
            kwargs: dict[str, Any] = {} if locale == "en" else {"language_code": locale}
            await self.bot.set_my_commands(commands, **kwargs)

    def raw(self, update: Update) -> dict[str, Any]:
        return update_json(update)

    def parse(self, raw: dict[str, Any]) -> Update:
        return Update.model_validate(raw, context={"bot": self.bot})

    async def fetch(self, offset: int | None, wait: int) -> list[tuple[int, Update]]:
        """One ``getUpdates``, for the durable polling loop."""
        try:
            updates = await self.bot.get_updates(offset=offset, timeout=wait, allowed_updates=ALLOWED_UPDATES)
        except TelegramRetryAfter as error:
            raise RetryAfter(float(error.retry_after)) from error
        except (TelegramNetworkError, TelegramServerError) as error:
            raise TransportError(type(error).__name__) from error
        return [(u.update_id, u) for u in updates]
