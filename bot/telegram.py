"""The Telegram channel on aiogram 3: updates become engine events, replies become Bot API calls.

No flow logic lives here. Filters are async classes: aiogram runs plain callables (and magic
filters) in a thread pool, which halves throughput. Conversation state lives in the engine's
encrypted store, so aiogram's FSM is switched off rather than kept as a second copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from typing import Any

from aiogram import Bot, Dispatcher, Router
from aiogram.exceptions import TelegramAPIError, TelegramForbiddenError, TelegramRetryAfter
from aiogram.filters import Filter
from aiogram.types import (
    BotCommand,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)

from bot import callbacks
from bot.app import App
from bot.delivery import GiveUp, Pacer, PartlySent, RetryLater
from bot.errors import ConfigError
from flows.events import Command, Event, Relayed, Unsupported, parse_typed
from responses import Rendered
from responses.catalog import TELEGRAM_LIMIT
from storage import ChatKey, Outgoing, Store
from storage.sqlite import MESSAGE_LIFETIME

log = logging.getLogger("reachable.telegram")
CHANNEL = "telegram"
PRIVATE = "private"
GROUPS = frozenset({"group", "supergroup"})
COMMANDS = (
    "start",
    "help",
    "emergency",
    "report",
    "advice",
    "services",
    "check",
    "delete",
    "language",
    "cancel",
    "exit",
)
ALLOWED_UPDATES = ["message", "edited_message", "callback_query"]
STAFF_COMMANDS = frozenset({"ack", "reply", "close", "stats"})
# What the bot sends staff about a report, remembered so a withdrawal can delete it there.
REMEMBERED = frozenset({"summary", "answer"})
GROUP_NOTICE_EVERY = 3600.0
GLOBAL_RATE = 30  # messages a second, Telegram's limit for one bot
COMBINED_SEPARATOR = "\n\n· · ·\n\n"
RETRY_AFTER_ATTEMPTS = 5
GROUP_RATE = 20  # messages a minute to one group


class ChatIs(Filter):
    """Matches messages and button presses by the kind of chat they come from (async, no thread)."""

    def __init__(self, *kinds: str, excluding: frozenset[int] = frozenset()) -> None:
        self.kinds = frozenset(kinds)
        self.excluding = excluding

    async def __call__(self, event: Message | CallbackQuery) -> bool:
        message = event.message if isinstance(event, CallbackQuery) else event
        if message is None:
            return False
        return message.chat.type in self.kinds and message.chat.id not in self.excluding


def keyboard(message: Rendered) -> InlineKeyboardMarkup | None:
    if not message.options or message.step is None:
        return None
    rows = [
        [
            InlineKeyboardButton(
                text=option.text,
                callback_data=callbacks.encode(message.step, option.key),
            )
        ]
        for option in message.options
    ]
    return InlineKeyboardMarkup(inline_keyboard=rows)


def event_of(message: Message) -> Event:
    if message.text is not None:
        return parse_typed(message.text)
    return Unsupported(kind=str(message.content_type))


class InChat(Filter):
    """Matches messages from the staff chats."""

    def __init__(self, chat_ids: frozenset[int]) -> None:
        self.chat_ids = chat_ids

    async def __call__(self, message: Message) -> bool:
        return message.chat.id in self.chat_ids


def _retry_for(error: TelegramAPIError) -> RetryLater:
    if isinstance(error, TelegramRetryAfter):
        return RetryLater(after=float(error.retry_after), reason="429")
    return RetryLater(reason=type(error).__name__)


class TelegramChannel:
    def __init__(self, app: App, bot: Bot) -> None:
        self.app = app
        self.bot = bot
        # Every recipient's chat (support team, SOIT officer, any a charity adds) by destination.
        self.staff_chats = app.settings.staff_chats
        self.staff_chat_ids = frozenset(self.staff_chats.values())
        # Under GLOBAL_RATE in any second, with a margin: a small burst, then an even rate.
        self.pacer = Pacer(GLOBAL_RATE - 5, 1.0, burst=3)
        self._group_notices: OrderedDict[int, float] = OrderedDict()
        self.ledger = MessageLedger(app.store)
        self._wipes: dict[ChatKey, int] = {}
        self._answered: OrderedDict[str, None] = OrderedDict()

    def attach_forwarders(self) -> None:
        """Let the delivery worker send to the staff chat and relay to people on Telegram."""
        for destination, chat_id in self.staff_chats.items():
            self.app.delivery.add(StaffChatForwarder(self, destination, chat_id))
        self.app.delivery.add(PersonForwarder({CHANNEL: self}))

    def router(self) -> Router:
        router = Router(name="reachable")
        router.message.register(self.on_staff_message, InChat(self.staff_chat_ids))
        router.message.register(self.on_private_message, ChatIs(PRIVATE))
        router.callback_query.register(self.on_button, ChatIs(PRIVATE))
        router.callback_query.register(self.on_group_button)
        router.message.register(self.on_group_message, ChatIs(*GROUPS, excluding=self.staff_chat_ids))
        router.edited_message.register(self.on_edited)
        return router

    def dispatcher(self) -> Dispatcher:
        dispatcher = Dispatcher(disable_fsm=True)
        dispatcher.include_router(self.router())
        return dispatcher

    # ------------------------------------------------------------------ private chats
    async def on_private_message(self, message: Message, event_update: Update) -> None:
        language = message.from_user.language_code if message.from_user else None
        await self._turn(message.chat.id, event_of(message), event_update.update_id, message.message_id, language)

    async def on_button(self, query: CallbackQuery, event_update: Update) -> None:
        assert query.message is not None  # guaranteed by the filter
        language = query.from_user.language_code if query.from_user else None
        event = callbacks.decode(query.data)
        await self._turn(query.message.chat.id, event, event_update.update_id, None, language, query)

    async def on_edited(self, message: Message) -> None:
        """Edits are not read: the answer was taken when it was sent."""

    async def _turn(
        self,
        chat_id: int,
        event: Event,
        update_id: int,
        incoming: int | None,
        language: str | None,
        query: CallbackQuery | None = None,
    ) -> None:
        conversations = self.app.conversations
        key = conversations.key(CHANNEL, chat_id)
        delivery = await conversations.handle(CHANNEL, chat_id, event, update_id=update_id, locale_hint=language)
        if delivery.duplicate:
            return  # a button press Telegram delivers twice is answered once: a second answer is refused
        if query is not None:
            await self._answer(query)
        if incoming is not None:
            self.ledger.note(key, [incoming])
        if delivery.remember:
            self.ledger.persist(key)
        elif delivery.forget_ids:
            await self.ledger.unpersist(key)
        if delivery.wipe:
            self._wipes[key] = self._wipes.get(key, 0) + 1
            await self._wipe(chat_id, await self.ledger.take(key))
        await self._send_and_note(chat_id, key, delivery.messages)

    async def _send_and_note(self, chat_id: int, key: ChatKey, messages: tuple[Rendered, ...]) -> None:
        """Send, and note the ids for the quick exit. If the chat was wiped while these were on
        their way (a reply to an earlier message, still being paced), delete them at once."""
        wipes = self._wipes.get(key, 0)
        sent = [i for rendered in messages for i in await self._send(chat_id, rendered)]
        if self._wipes.get(key, 0) != wipes and sent:
            await self._wipe(chat_id, sent)
            return
        self.ledger.note(key, sent)

    async def _send(self, chat_id: int, rendered: Rendered, strict: bool = False) -> list[int]:
        """Send one rendered message (in parts if long). ``strict``: let Bot API errors through."""
        parts = rendered.parts()
        ids: list[int] = []
        for number, part in enumerate(parts, start=1):
            markup = keyboard(rendered) if number == len(parts) else None
            try:
                sent = await self._send_paced(chat_id, part, markup)
            except TelegramAPIError as error:
                if strict:
                    raise
                log.error("sendMessage failed: %s", type(error).__name__)
                return ids
            ids.append(sent.message_id)
        return ids

    async def _send_paced(
        self, chat_id: int, text: str, markup: InlineKeyboardMarkup | None, attempts: int = RETRY_AFTER_ATTEMPTS
    ) -> Message:
        """Within Telegram's rate; if Telegram still says 429, wait as long as it asks and send
        again: a person's reply is never dropped for pacing."""
        for attempt in range(1, attempts + 1):
            await self.pacer.wait()
            try:
                return await self.bot.send_message(chat_id, text, reply_markup=markup)
            except TelegramRetryAfter as error:
                if attempt == attempts:
                    raise
                log.info("429 from Telegram: waiting %ss", error.retry_after)
                await asyncio.sleep(float(error.retry_after))
        raise AssertionError("unreachable")

    async def relay(self, chat_id: str, event: Relayed) -> None:
        """A message from staff reaches the person: through the engine, so their place is kept."""
        chat = int(chat_id)
        delivery = await self.app.conversations.handle(CHANNEL, chat, event)
        key = self.app.conversations.key(CHANNEL, chat)
        try:
            for rendered in delivery.messages:
                self.ledger.note(key, await self._send(chat, rendered, strict=True))
        except TelegramForbiddenError as error:
            raise GiveUp("the person has blocked the bot") from error
        except TelegramAPIError as error:
            raise _retry_for(error) from error

    # ------------------------------------------------------------------ the staff chat
    async def on_staff_message(self, message: Message) -> None:
        """Staff commands, accepted only here and only from the staff listed by id: anyone who
        joins the group can read it, but not act. Anything else said there is left alone."""
        typed = parse_typed(message.text or "")
        if not isinstance(typed, Command):
            return
        allowed = self.app.settings.staff_users
        if message.from_user is None or message.from_user.id not in allowed:
            if typed.name in STAFF_COMMANDS:
                await self.send_staff(self.app.desk.refusal(bool(allowed)), message.chat.id)
            return
        answer = await self.app.desk.command(typed.name, typed.argument)
        if answer is not None:
            await self.send_staff(answer, message.chat.id)

    async def check_staff_chat(self) -> None:
        """At start-up: every staff chat must be one the bot can see, and private (a group with a
        public @username can be found and joined by anyone)."""
        for chat_id in sorted(self.staff_chat_ids):
            try:
                chat = await self.bot.get_chat(chat_id)
            except TelegramAPIError as error:
                raise ConfigError(
                    f"the bot cannot see the staff chat {chat_id} ({type(error).__name__}): check the chat id "
                    "and that the bot is a member"
                ) from error
            if chat.username:
                raise ConfigError(
                    f"the staff chat is public (@{chat.username}): anyone could find it, join and read "
                    "summaries. Make the group private (remove its public link), then start again"
                )
        if self.staff_chat_ids and not self.app.settings.staff_users:
            log.warning("no REACHABLE_STAFF_USER_IDS: staff commands in the staff chats will be refused")

    async def send_staff(self, text: str, chat_id: int) -> list[int]:
        """Send to a staff chat; the ids of the messages sent."""
        ids = []
        for part in Rendered(text).parts():
            # One attempt: a 429 goes back to the delivery worker, which pauses the staff chat
            # for as long as Telegram asks without holding up other deliveries.
            ids.append((await self._send_paced(chat_id, part, None, attempts=1)).message_id)
        return ids

    async def delete_staff_messages(self, reference: str) -> bool:
        """A report was withdrawn: delete the bot's staff-chat messages that hold only it (where
        Telegram still allows). True when some message also holding other summaries stays."""
        found = await self.app.store.take_staff_messages(reference)
        by_chat: dict[int, list[int]] = {}
        for chat, message, shared in found:
            if not shared and chat in self.staff_chat_ids:
                by_chat.setdefault(chat, []).append(message)
        for chat, messages in by_chat.items():
            await self._wipe(chat, messages)
        return any(shared for _, _, shared in found)

    async def _wipe(self, chat_id: int, message_ids: list[int]) -> None:
        for start in range(0, len(message_ids), 100):
            try:
                await self.bot.delete_messages(chat_id, message_ids[start : start + 100])
            except TelegramAPIError as error:
                log.warning("deleteMessages failed: %s", type(error).__name__)

    async def _answer(self, query: CallbackQuery) -> None:
        """Stop the button's spinner, once per press: Telegram refuses a second answer."""
        if query.id in self._answered:
            return
        self._answered[query.id] = None
        while len(self._answered) > 10_000:
            self._answered.popitem(last=False)
        try:
            await query.answer()
        except TelegramAPIError as error:
            log.info("answerCallbackQuery failed: %s", type(error).__name__)

    # ------------------------------------------------------------------ groups
    async def on_group_message(self, message: Message) -> None:
        """No flow in groups, nothing stored: one short line, at most hourly per group, and only
        when the bot is addressed (a command, a mention, or a reply to the bot)."""
        text = message.text or ""
        me = await self.bot.me()
        addressed = (
            text.startswith("/")
            or (me.username is not None and f"@{me.username}".casefold() in text.casefold())
            or (
                message.reply_to_message is not None
                and message.reply_to_message.from_user is not None
                and message.reply_to_message.from_user.id == me.id
            )
        )
        if not addressed or not self._may_notice(message.chat.id):
            return
        text = self.app.responses.text("en", "group.private_only")
        try:
            await self.bot.send_message(message.chat.id, text)
        except TelegramAPIError as error:
            log.info("group notice failed: %s", type(error).__name__)

    async def on_group_button(self, query: CallbackQuery) -> None:
        await self._answer(query)

    def _may_notice(self, chat_id: int) -> bool:
        now = time.monotonic()
        last = self._group_notices.get(chat_id)
        if last is not None and now - last < GROUP_NOTICE_EVERY:
            return False
        self._group_notices[chat_id] = now
        self._group_notices.move_to_end(chat_id)
        while len(self._group_notices) > 10_000:
            self._group_notices.popitem(last=False)
        return True

    # ------------------------------------------------------------------ start-up
    async def register_commands(self) -> None:
        """The command menu, in every language the responses have."""
        responses = self.app.responses
        for locale in responses.locales:
            commands = [
                BotCommand(command=name, description=responses.text(locale, f"telegram.command.{name}"))
                for name in COMMANDS
            ]
            kwargs: dict[str, Any] = {} if locale == "en" else {"language_code": locale}
            await self.bot.set_my_commands(commands, **kwargs)


class StaffChatForwarder:
    """Summaries and notices to the staff chat: within Telegram's 20 messages a minute per group
    and 30 a second overall, and waiting out any 429 for as long as Telegram asks."""

    def __init__(self, channel: TelegramChannel, destination: str, chat_id: int) -> None:
        self.channel = channel
        self.destination = destination
        self.chat_id = chat_id
        # Never more than GROUP_RATE in any minute: a burst of one, then an even trickle.
        self.group = Pacer(GROUP_RATE - 1, 60.0, burst=1)

    async def send(self, item: Outgoing) -> None:
        shared = False
        if item.kind == "withdrawn":
            shared = await self.channel.delete_staff_messages(item.reference)
        text = await self.channel.app.desk.compose(item, shared=shared)
        if text is None:
            return
        await self.group.wait()
        try:
            ids = await self.channel.send_staff(text.body, self.chat_id)
        except TelegramAPIError as error:
            raise _retry_for(error) from error
        if item.kind in REMEMBERED:
            await self.channel.app.store.remember_staff_messages([item.reference], self.chat_id, ids)

    async def send_combined(self, items: list[Outgoing]) -> None:
        """When summaries queue up, send as many as fit in each message (4,096 characters), each
        still whole and with its own reference; a message that fails leaves its summaries queued."""
        bodies: list[tuple[Outgoing, str]] = []
        for item in items:
            text = await self.channel.app.desk.compose(item)
            bodies.append((item, text.body if text else ""))
        messages: list[list[tuple[Outgoing, str]]] = [[]]
        for item, body in bodies:
            current = messages[-1]
            size = sum(len(b) + len(COMBINED_SEPARATOR) for _, b in current) + len(body)
            if current and size > TELEGRAM_LIMIT:
                messages.append([])
            messages[-1].append((item, body))
        sent: list[Outgoing] = []
        for message in messages:
            combined = COMBINED_SEPARATOR.join(body for _, body in message if body)
            if combined:
                await self.group.wait()
                try:
                    ids = await self.channel.send_staff(combined, self.chat_id)
                except TelegramAPIError as error:
                    raise PartlySent(sent, _retry_for(error)) from error
                references = [item.reference for item, body in message if body]
                await self.channel.app.store.remember_staff_messages(references, self.chat_id, ids)
            sent.extend(item for item, _ in message)


class PersonForwarder:
    """Messages from staff to a person, through whichever channel the person used."""

    destination = "person"

    def __init__(self, channels: dict[str, TelegramChannel]) -> None:
        self.channels = channels

    async def send(self, item: Outgoing) -> None:
        channel, _, chat_id = str(item.data.get("chat", "")).partition(":")
        sender = self.channels.get(channel)
        if sender is None:
            raise RetryLater(reason=f"no {channel or 'unknown'} channel running here")
        await sender.relay(chat_id, Relayed(item.reference, item.kind, str(item.data.get("text", ""))))


class MessageLedger:
    """Message ids of each conversation, both sides, for the quick exit.

    They stay in memory until the chat has something stored (a report draft, or a report kept
    or sent): someone who only reads the menu, advice or services leaves no row naming their
    chat, not even a keyed hash. From then on they are also written down, in one transaction
    every quarter second (a flood of a thousand messages costs a handful of writes), so a
    restart still finds them; when the draft goes with nothing kept, the rows go too. A wipe
    writes its chat's ids first, so none is missed. A crash can lose the last quarter second of
    ids, and a restart loses those held only in memory: those few messages would stay."""

    def __init__(self, store: Store, every: float = 0.25, limit: int = 100_000) -> None:
        self.store = store
        self.every = every
        self.limit = limit
        self._memory: OrderedDict[ChatKey, list[tuple[int, float]]] = OrderedDict()
        self._persisted: set[ChatKey] = set()
        self._pending: dict[ChatKey, list[int]] = {}
        self._task: asyncio.Task[None] | None = None

    def note(self, key: ChatKey, message_ids: list[int]) -> None:
        if not message_ids:
            return
        now = time.monotonic()
        young = [(i, at) for i, at in self._memory.get(key, []) if now - at < MESSAGE_LIFETIME]
        self._memory[key] = young + [(i, now) for i in message_ids]
        self._memory.move_to_end(key)
        while len(self._memory) > self.limit:
            old, _ = self._memory.popitem(last=False)
            self._persisted.discard(old)
        if key in self._persisted:
            self._queue(key, message_ids)

    def _queue(self, key: ChatKey, message_ids: list[int]) -> None:
        self._pending.setdefault(key, []).extend(message_ids)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush_soon())

    def persist(self, key: ChatKey) -> None:
        """The chat now has something stored: write its ids down, those noted so far included."""
        if key not in self._persisted:
            self._persisted.add(key)
            self._queue(key, [i for i, _ in self._memory.get(key, [])])

    async def unpersist(self, key: ChatKey) -> None:
        """The draft went and nothing was kept: the ids go back to memory only."""
        if key in self._persisted:
            self._persisted.discard(key)
            self._pending.pop(key, None)
            await self.store.forget_messages(key)

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self.every)
        await self.flush()

    async def flush(self) -> None:
        batch, self._pending = self._pending, {}
        try:
            await self.store.remember_batch(batch)
        except Exception as error:
            log.error("message ids not written: %s", type(error).__name__)

    async def take(self, key: ChatKey) -> list[int]:
        """Every id of this chat still young enough to delete, forgetting them."""
        held = [i for i, at in self._memory.pop(key, []) if time.monotonic() - at < MESSAGE_LIFETIME]
        self._pending.pop(key, None)
        self._persisted.discard(key)
        stored = await self.store.take_messages(key)
        return sorted(set(held) | set(stored))

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
