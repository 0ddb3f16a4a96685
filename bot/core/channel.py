"""The channel core: everything a chat channel needs that is not its framework.

Adapters (aiogram, python-telegram-bot, the console) only translate: their framework's updates
become calls here, and they implement a small :class:`~bot.core.transport.Transport`. The rules every
channel needs live once, here:

- a turn: the conversation service, then the quick-exit ledger, then the replies, each part
  written down as out when it is (or, on a channel people fetch from, when they fetched it), so
  an answer a turn kept is sent whole and once, whatever moment the process dies;
- the quick exit: message ids of both sides, and the race between a wipe and replies still on
  their way;
- pacing under the platform's limits, waiting out "retry after" answers, never dropping a reply;
- answering a pressed button once, however often the platform delivers it;
- splitting long messages at the platform's length;
- groups: no flow, one short notice at most hourly, only when the bot is addressed;
- staff chats: commands only from listed staff (what is sent to them, and a staff reply to a
  person on whichever channel they used: ``bot/core/forwarders.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from bot.core import crashpoints, tasks
from bot.core.answers import Delivery, Told
from bot.core.conversations import Conversations
from bot.core.delivery import REPLY, STAFF, URGENT, DeliveryWorker, GiveUp, Pacer, TokenBucket
from bot.core.forwarders import PersonForwarder, StaffChatForwarder, retry_for
from bot.core.ledger import MessageLedger
from bot.core.staff import StaffDesk
from bot.core.transport import Button, RetryAfter, Transport, TransportError, Unreachable
from flows.events import Command, Event, Relayed, parse_typed
from responses import Rendered
from storage import ChatKey, Instances, MessageIds, StaffMessages
from storage.base import BEAT

log = logging.getLogger("reachable.channel")


STAFF_COMMANDS = frozenset({"ack", "reply", "close", "stats"})
# What the bot sends staff about a report, remembered so a withdrawal can delete it there.
REMEMBERED = frozenset({"summary", "answer"})
GROUP_NOTICE_EVERY = 3600.0
COMBINED_SEPARATOR = "\n\n· · ·\n\n"
RETRY_AFTER_ATTEMPTS = 5


class ChannelStore(MessageIds, StaffMessages, Instances, Protocol):
    """What a channel keeps: its message ids in people's chats and in staff chats."""


@dataclass(frozen=True, slots=True)
class Ports:
    """The narrow view of the running bot a channel gets."""

    conversations: Conversations
    desk: StaffDesk
    store: ChannelStore
    delivery: DeliveryWorker
    group_notice: Callable[[], str]
    staff_chats: Mapping[str, str]  # destination -> chat id
    staff_users: frozenset[int]
    # How many instances share the platform's limits now (a shared database); each keeps to its part.
    instances: Callable[[], int] = lambda: 1


class Channel:
    def __init__(self, transport: Transport, ports: Ports) -> None:
        self.transport = transport
        self.ports = ports
        self.name = transport.channel
        limits = transport.limits
        # Under the platform's limits, with a margin, counted as messages leave: in any second
        # for all chats, in any minute for each group chat, and on average for each private chat.
        # Messages that leave evenly arrive bunched when either side stalls (under load, by over
        # 0.16 s now and then): at 22 a second with a burst of one they can bunch by 0.3 s and
        # still be under Telegram's 30 in any second where they arrive.
        self.pacer = Pacer(max(1.0, limits.per_second * 11 / 15), 1.0, burst=1)
        self._groups: dict[str, Pacer] = {}
        self._chats: OrderedDict[str, TokenBucket] = OrderedDict()
        self.chat_limit = (limits.chat_per_second, limits.chat_burst)  # a second, and at once
        self._rates: tuple[float, tuple[float, float]] | None = None  # the whole, once shared
        self._share = 1
        self._exits: dict[ChatKey, int] = {}  # quick exits asked for, per chat
        self.staff_chat_ids = frozenset(ports.staff_chats.values())
        self.ledger = MessageLedger(ports.store)
        self._group_notices: OrderedDict[str, float] = OrderedDict()
        self._wipes: dict[ChatKey, int] = {}
        self._answered: OrderedDict[str, None] = OrderedDict()
        # Kept answers sent to a chat people fetch from, until they have fetched them.
        self._unfetched: dict[str, list[Told]] = {}
        self._resending: asyncio.Task[None] | None = None
        self._sending: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def attach(self) -> None:
        """Let the delivery worker send to this channel's staff chats and relay to its people."""
        for destination, chat_id in self.ports.staff_chats.items():
            self.ports.delivery.add(StaffChatForwarder(self, destination, chat_id))
        persons = self.ports.delivery.forwarders.get("person")
        if not isinstance(persons, PersonForwarder):
            persons = PersonForwarder()
            self.ports.delivery.add(persons)
        persons.channels[self.name] = self
        reaches = getattr(self.transport, "reaches_unasked", None)
        if reaches is not None:
            self.ports.conversations.reaches[self.name] = reaches
        self.ports.delivery.attached(self.name)

    # ------------------------------------------------------------------ private chats
    async def private(
        self,
        chat_id: str,
        event: Event,
        *,
        update_id: int | None = None,
        incoming: int | None = None,
        language: str | None = None,
        query_id: str | None = None,
    ) -> None:
        """One thing a person did: typed (``incoming`` is its message id) or pressed a button."""
        conversations = self.ports.conversations
        key = conversations.key(self.name, chat_id)
        # Ids this chat's last answer noted and not yet written go down before a quick exit is
        # committed: if the process dies then, the restart still finds every message to delete.
        # Other turns leave them to the next batch (a quarter second): a write with every
        # message was a quarter of the database's work under load.
        delivery = await conversations.handle(
            self.name,
            chat_id,
            event,
            update_id=update_id,
            locale_hint=language,
            on_slow=lambda rendered: self._notice(chat_id, key, rendered),
            before_wipe=lambda: self.ledger.write_now(key),
        )
        if delivery.duplicate:
            # An update delivered twice is taken once; its button was answered then, or has
            # expired. What earlier turns kept and never sent (a crash) goes now, once.
            if not delivery.earlier:
                return
            query_id, incoming = None, None
        if query_id is not None:
            await self.answer_button(query_id)
        await self._deliver_all(chat_id, key, (*delivery.earlier, delivery), incoming)

    def start_resending(self) -> None:
        """In the background: :meth:`resend_unsent` (for a channel that reaches people unasked)."""
        self._resending = asyncio.create_task(self.resend_unsent(), name="reachable-resend")
        # A failure is logged when it happens; what was not sent stays for the next start.
        self._resending.add_done_callback(tasks.log_failure)

    async def close(self) -> None:
        """At a stop: what is still being resent stays in storage for the next start; the
        quick-exit ledger writes what it holds."""
        await tasks.stop(self._resending)
        await self.ledger.close()

    async def resend_unsent(self) -> None:
        """At a start: what people on this channel were never wholly told before a stop or crash
        (a kept report's code above all) goes to them now, once, each chat in its order. With
        instances sharing a database, again every few seconds: what an instance that stopped or
        died was to tell goes from here."""
        if not self.ports.store.shared:
            await self._resend_once()
            return
        while True:
            try:
                await self._resend_once()
            except Exception as error:  # the database away for a moment: the next round finds them
                log.error("resending failed: %s", type(error).__name__)
            await asyncio.sleep(BEAT)

    async def _resend_once(self) -> None:
        conversations = self.ports.conversations
        found = await conversations.unsent_on(self.name)
        if found:
            log.info("%d answer(s) never sent before a stop: sending now", len(found))
        by_chat: dict[str, list[Delivery]] = {}
        for chat_id, delivery in found:
            by_chat.setdefault(chat_id, []).append(delivery)
        # Each chat at once, in its own order: each takes its place in its chat's queue before a
        # newer reply can (with instances, the chat may already be writing here).
        sent = await asyncio.gather(
            *(self._deliver_all(chat_id, conversations.key(self.name, chat_id), tuple(deliveries))
              for chat_id, deliveries in by_chat.items()),
            return_exceptions=True,
        )  # fmt: skip
        for failed in (outcome for outcome in sent if isinstance(outcome, Exception)):
            log.error("an answer never sent before a stop was not sent again: %s", type(failed).__name__)

    async def _deliver_all(
        self, chat_id: str, key: ChatKey, deliveries: tuple[Delivery, ...], incoming: int | None = None
    ) -> None:
        exits = self._exits.get(key, 0)
        wiping = any(d.wipe for d in deliveries)
        if wiping:  # replies still waiting to go to this chat stop: nothing more shows
            self._exits[key] = exits + 1
        async with self._in_order(chat_id):
            if not wiping and self._exits.get(key, 0) != exits:
                # The person left after this message: it goes, unanswered, with the rest.
                for delivery in deliveries:
                    if delivery.told is not None:
                        await self.ports.conversations.answer_dropped(delivery.told)
                if incoming is not None and self.transport.limits.deletes:
                    await self.transport.delete(chat_id, [incoming])
                return
            for number, delivery in enumerate(deliveries):
                await self._deliver(chat_id, key, delivery, incoming if number == 0 else None)

    def _in_order(self, chat_id: str) -> asyncio.Lock:
        """One chat's messages go out in the order its turns ended, whatever their priority."""
        lock = self._sending.get(chat_id)
        if lock is None:
            lock = self._sending[chat_id] = asyncio.Lock()
        return lock

    async def _deliver(self, chat_id: str, key: ChatKey, delivery: Delivery, incoming: int | None) -> None:
        priority = URGENT if delivery.urgent else REPLY
        if self.transport.limits.deletes:
            if incoming is not None:
                self.ledger.note(key, [incoming])
            if delivery.remember:
                self.ledger.persist(key)
            elif delivery.forget_ids:
                await self.ledger.unpersist(key)
            if delivery.wipe:
                self._wipes[key] = self._wipes.get(key, 0) + 1
                await self.transport.delete(chat_id, await self.ledger.take(key))
        elif delivery.wipe:
            # No message can be deleted here, so no id is worth keeping: a quick exit is the
            # transport's to carry out as it can (a web page is replaced; elsewhere the words
            # say how to clear the chat).
            await self.transport.delete(chat_id, ())
        await self._send_and_note(chat_id, key, delivery, priority)

    async def answer_button(self, query_id: str) -> None:
        """Stop the button's spinner, once per press: platforms refuse a second answer."""
        if query_id in self._answered:
            return
        self._answered[query_id] = None
        while len(self._answered) > 10_000:
            self._answered.popitem(last=False)
        try:
            await self.transport.answer_button(query_id)
        except TransportError as error:
            log.info("answering a button failed: %s", type(error).__name__)

    async def _notice(self, chat_id: str, key: ChatKey, rendered: Rendered) -> None:
        """Said while a turn is still running (its code is being made): after the replies
        already on their way to this chat, never between their parts or ahead of them."""
        async with self._in_order(chat_id):
            await self._send_and_note(chat_id, key, Delivery((rendered,)))

    def _pieces(self, rendered: Rendered) -> list[tuple[str, list[Button]]]:
        """A rendered message as the platform takes it: in parts if long, buttons on the last."""
        parts = rendered.parts(self.transport.limits.max_length)
        buttons = [
            Button(option.text, self.transport.encode_button(rendered.step, option.key))
            for option in rendered.options
            if rendered.step is not None
        ]
        return [(part, buttons if number == len(parts) else []) for number, part in enumerate(parts, start=1)]

    async def _send_and_note(self, chat_id: str, key: ChatKey, delivery: Delivery, priority: int = REPLY) -> None:
        """Send, and note the ids for the quick exit. If the chat was wiped while these were on
        their way (a reply to an earlier message, still being paced), delete them at once.

        An answer a turn kept (``delivery.told``) is written down part by part as it goes out,
        and forgotten with its last part; on a channel people fetch from, once they fetched it.
        If sending fails, the rest waits for the chat's next turn; if the person left, it is
        dropped."""
        wipes, exits = self._wipes.get(key, 0), self._exits.get(key, 0)
        told = delivery.told
        pieces = [piece for rendered in delivery.messages for piece in self._pieces(rendered)]
        out = told.skip if told is not None else 0
        sent: list[int] = []
        stopped = ""
        for text, buttons in pieces[out:]:
            if self._exits.get(key, 0) != exits:
                stopped = "left"  # a quick exit is waiting to clear the chat: the rest would only show
                break
            try:
                sent.append(await self.send_paced(chat_id, text, buttons, priority))
            except TransportError as error:
                log.error("sending failed: %s", type(error.__cause__ or error).__name__)
                stopped = "failed"
                break
            out += 1
            if told is not None and not self.transport.limits.pull:
                await self._written_down(told, out, len(pieces))
        if told is not None:
            if delivery.wipe and self.transport.limits.pull:
                stopped = "left"  # the page is replaced: nothing on it will ever be fetched
            await self._after_sending(chat_id, key, told, stopped, out, len(pieces))
        if self._wipes.get(key, 0) != wipes and sent:
            await self.transport.delete(chat_id, sent)
            return
        if self.transport.limits.deletes:
            self.ledger.note(key, sent)

    async def _written_down(self, told: Told, out: int, total: int) -> None:
        """One more part of a kept answer is out: say how far it got, or forget it when whole."""
        crashpoints.reached(f"part_out:{told.step}")
        if out < total:
            await self.ports.conversations.answer_progress(told, out)
        else:
            await self.ports.conversations.answer_out(told)
        crashpoints.reached(f"part_recorded:{told.step}")

    async def _after_sending(self, chat_id: str, key: ChatKey, told: Told, stopped: str, out: int, total: int) -> None:
        conversations = self.ports.conversations
        if stopped == "left":
            await conversations.answer_dropped(told)
        elif stopped == "failed":
            await conversations.answer_waits(key, told, out)
        elif self.transport.limits.pull:
            self._unfetched.setdefault(chat_id, []).append(told)
        elif total <= told.skip:  # nothing left to send
            await conversations.answer_out(told)

    async def fetched(self, chat_id: str) -> None:
        """On a channel people fetch from: what was sent to this chat has now gone out (the page
        that holds it was written)."""
        for told in self.take_unfetched(chat_id):
            await self.gone_out(told)

    def take_unfetched(self, chat_id: str) -> list[Told]:
        """On a channel people fetch from: the kept answers sent to this chat and not yet
        fetched, for the adapter to say when they have gone out (:meth:`gone_out`)."""
        return self._unfetched.pop(chat_id, [])

    async def gone_out(self, told: Told) -> None:
        """A kept answer has wholly gone out: it is forgotten."""
        crashpoints.reached(f"part_out:{told.step}")
        await self.ports.conversations.answer_out(told)
        crashpoints.reached(f"part_recorded:{told.step}")

    def never_fetched(self, chat_id: str) -> None:
        """On a channel people fetch from: the person went before fetching what was sent (a web
        session forgotten): it waits, in storage, for them to come back."""
        conversations = self.ports.conversations
        for told in self._unfetched.pop(chat_id, []):
            conversations.answer_later(conversations.key(self.name, chat_id), told)

    async def send(self, chat_id: str, rendered: Rendered, strict: bool = False, priority: int = REPLY) -> list[int]:
        """One rendered message, in parts if long, buttons on the last. ``strict``: let a
        failure through (to the delivery worker); otherwise log it and stop."""
        ids: list[int] = []
        for text, buttons in self._pieces(rendered):
            try:
                ids.append(await self.send_paced(chat_id, text, buttons, priority))
            except TransportError as error:
                if strict:
                    raise
                log.error("sending failed: %s", type(error.__cause__ or error).__name__)
                return ids
        return ids

    async def send_paced(
        self,
        chat_id: str,
        text: str,
        buttons: list[Button],
        priority: int = REPLY,
        attempts: int = RETRY_AFTER_ATTEMPTS,
        staff_chat: bool = False,
    ) -> int:
        """Within the platform's limits; if it still says "retry after", wait as long as it asks
        and send again: a person's reply is never dropped for pacing. A staff chat is a group,
        with the platform's limit a minute for each group."""
        for attempt in range(1, attempts + 1):
            await self._pace(chat_id, priority, staff_chat)
            try:
                return await self.transport.send(chat_id, text, buttons)
            except RetryAfter as error:
                if attempt == attempts:
                    raise
                log.info("asked to wait %ss before sending", error.seconds)
                await asyncio.sleep(error.seconds)
        raise AssertionError("unreachable")

    def _divide(self) -> None:
        """Instances sharing a database share the bot's limits too: each sends at most its part of
        the whole, to all chats, to each group and to each chat (the sum never passes a limit,
        whichever instance a chat's messages leave from)."""
        share = max(1, self.ports.instances())
        if share == self._share:
            return
        if self._rates is None:
            self._rates = (self.pacer.refill, self.chat_limit)
        self._share = share
        whole, (per_chat, burst) = self._rates
        self.pacer.refill = whole / share
        for group in self._groups.values():
            group.refill = max(1.0, self.transport.limits.group_per_minute - 1) / 60.0 / share
        self.chat_limit = (per_chat / share, max(1.0, burst / share))
        for bucket in self._chats.values():
            bucket.refill, bucket.capacity = self.chat_limit
        log.info("sending limits shared by %d instance(s)", share)

    async def _pace(self, chat_id: str, priority: int, staff_chat: bool) -> None:
        """Wait until a message to this chat may leave, and count it as leaving now."""
        self._divide()
        if staff_chat:
            limit = self._groups.get(chat_id)
            if limit is None:
                per_minute = self.transport.limits.group_per_minute
                # A burst of one, then an even trickle: never the group's limit in any minute.
                limit = self._groups[chat_id] = Pacer(max(1.0, per_minute - 1) / self._share, 60.0, burst=1)
            await limit.reserve()
            try:
                await self.pacer.wait(priority)
            except BaseException:
                limit.release()
                raise
            limit.leaving()
            return
        chat = self._chat_rate(chat_id)
        delay = chat.delay()
        if delay:
            await asyncio.sleep(delay)
        await self.pacer.wait(priority)
        chat.spend()

    def _chat_rate(self, chat_id: str) -> TokenBucket:
        bucket = self._chats.get(chat_id)
        if bucket is None:
            bucket = self._chats[chat_id] = TokenBucket(*self.chat_limit)
        self._chats.move_to_end(chat_id)
        while len(self._chats) > 10_000:  # a chat unheard of for that long has a full bucket anyway
            self._chats.popitem(last=False)
        return bucket

    async def relay(self, chat_id: str, event: Relayed) -> None:
        """A message from staff reaches the person: through the engine, so their place is kept."""
        delivery = await self.ports.conversations.handle(self.name, chat_id, event)
        key = self.ports.conversations.key(self.name, chat_id)
        try:
            async with self._in_order(chat_id):
                for rendered in delivery.messages:
                    self.ledger.note(key, await self.send(chat_id, rendered, strict=True))
        except Unreachable as error:
            raise GiveUp("the person cannot be reached") from error
        except TransportError as error:
            raise retry_for(error) from error

    # ------------------------------------------------------------------ groups
    async def group(self, chat_id: str, addressed: bool) -> None:
        """No flow in groups, nothing stored: one short line, at most hourly per group, and only
        when the bot is addressed (a command, a mention, or a reply to the bot)."""
        if not addressed or not self._may_notice(chat_id):
            return
        try:
            await self.send_paced(chat_id, self.ports.group_notice(), [], STAFF, attempts=1)
        except TransportError as error:
            log.info("group notice failed: %s", type(error).__name__)

    def _may_notice(self, chat_id: str) -> bool:
        now = time.monotonic()
        last = self._group_notices.get(chat_id)
        if last is not None and now - last < GROUP_NOTICE_EVERY:
            return False
        self._group_notices[chat_id] = now
        self._group_notices.move_to_end(chat_id)
        while len(self._group_notices) > 10_000:
            self._group_notices.popitem(last=False)
        return True

    # ------------------------------------------------------------------ staff chats
    async def staff(self, chat_id: str, user_id: int | None, text: str, update_id: int | None = None) -> None:
        """Staff commands, accepted only in staff chats and only from the staff listed by id:
        anyone who joins the group can read it, but not act. Anything else is left alone.
        ``update_id``: a command handled again after a crash sends the person nothing twice."""
        typed = parse_typed(text)
        if not isinstance(typed, Command):
            return
        allowed = self.ports.staff_users
        if user_id is None or user_id not in allowed:
            if typed.name in STAFF_COMMANDS:
                await self.send_staff(self.ports.desk.refusal(bool(allowed), user_id), chat_id)
            return
        update = (self.name, update_id) if update_id is not None else None
        scope = frozenset(d.partition(":")[0] for d, chat in self.ports.staff_chats.items() if chat == chat_id)
        answer = await self.ports.desk.command(typed.name, typed.argument, scope, update)
        if answer is not None:
            await self.send_staff(answer, chat_id)

    async def send_staff(self, text: str, chat_id: str) -> list[int]:
        """Send to a staff chat; the ids of the messages sent. One attempt each: a "retry after"
        goes back to the delivery worker, which pauses that chat without holding up others."""
        return [
            await self.send_paced(chat_id, part, [], STAFF, attempts=1, staff_chat=True)
            for part in Rendered(text).parts(self.transport.limits.max_length)
        ]
