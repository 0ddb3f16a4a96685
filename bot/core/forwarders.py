"""What the delivery worker sends through a channel: summaries and notices to a staff chat
(combined when they queue up, deleted there when a report is withdrawn), and staff messages to
a person on whichever channel they used; and the start-up check of staff chats."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bot.core.delivery import PartlySent, RetryLater
from bot.core.errors import ConfigError
from bot.core.staff import StaffDesk
from bot.core.transport import ChatRef, RetryAfter, TransportError
from flows.events import Relayed
from storage import Outgoing

if TYPE_CHECKING:
    from bot.core.channel import Channel

log = logging.getLogger("reachable.channel")
# What the bot sends staff about a report, remembered so a withdrawal can delete it there.
REMEMBERED = frozenset({"summary", "answer"})
COMBINED_SEPARATOR = "\n\n· · ·\n\n"


def retry_for(error: TransportError) -> RetryLater:
    if isinstance(error, RetryAfter):
        return RetryLater(after=error.seconds, reason="retry after")
    return RetryLater(reason=type(error.__cause__ or error).__name__)


async def check_staff_chats(channel: Channel) -> None:
    """At start-up: every staff chat must be one the bot can see, and private (a group with a
    public name can be found and joined by anyone)."""
    for chat_id in sorted(channel.staff_chat_ids):
        try:
            info = await channel.transport.chat_info(chat_id)
        except TransportError as error:
            raise ConfigError(
                f"the bot cannot see the staff chat {chat_id} ({type(error.__cause__ or error).__name__}): "
                "check the chat id and that the bot is a member"
            ) from error
        if info.public_name:
            raise ConfigError(
                f"the staff chat is public (@{info.public_name}): anyone could find it, join and read "
                "summaries. Make the group private (remove its public link), then start again"
            )
    if channel.staff_chat_ids and not channel.ports.staff_users:
        log.warning("no REACHABLE_STAFF_USER_IDS: staff commands in the staff chats will be refused")


class StaffChatForwarder:
    """Summaries and notices to one staff chat: within the platform's limit a minute per group
    and a second overall, waiting out any "retry after" for as long as asked."""

    def __init__(self, channel: Channel, destination: str, chat_id: str) -> None:
        self.channel = channel
        self.destination = destination
        self.chat_id = chat_id

    @property
    def desk(self) -> StaffDesk:
        return self.channel.ports.desk

    async def send(self, item: Outgoing) -> None:
        shared = False
        if item.kind == "withdrawn":
            shared = await self._delete_withdrawn(item.reference)
        text = await self.desk.compose(item, shared=shared)
        if text is None:
            return
        try:
            ids = await self.channel.send_staff(text.body, self.chat_id)
        except TransportError as error:
            raise retry_for(error) from error
        if item.kind in REMEMBERED:
            await self.channel.ports.store.remember_staff_messages([item.reference], int(self.chat_id), ids)

    async def send_combined(self, items: list[Outgoing]) -> None:
        """When summaries queue up, send as many as fit in each message, each still whole and
        with its own reference; a message that fails leaves its summaries queued."""
        bodies: list[tuple[Outgoing, str]] = []
        for item in items:
            text = await self.desk.compose(item)
            bodies.append((item, text.body if text else ""))
        limit = self.channel.transport.limits.max_length
        messages: list[list[tuple[Outgoing, str]]] = [[]]
        for item, body in bodies:
            current = messages[-1]
            size = sum(len(b) + len(COMBINED_SEPARATOR) for _, b in current) + len(body)
            if current and size > limit:
                messages.append([])
            messages[-1].append((item, body))
        sent: list[Outgoing] = []
        for message in messages:
            combined = COMBINED_SEPARATOR.join(body for _, body in message if body)
            if combined:
                try:
                    ids = await self.channel.send_staff(combined, self.chat_id)
                except TransportError as error:
                    raise PartlySent(sent, retry_for(error)) from error
                references = [item.reference for item, body in message if body]
                await self.channel.ports.store.remember_staff_messages(references, int(self.chat_id), ids)
            sent.extend(item for item, _ in message)

    async def _delete_withdrawn(self, reference: str) -> bool:
        """A report was withdrawn: delete the bot's staff-chat messages that hold only it (where
        the platform still allows). True when some message also holding other summaries stays."""
        found = await self.channel.ports.store.take_staff_messages(reference)
        by_chat: dict[str, list[int]] = {}
        for chat_id, message, shared in found:
            if not shared and str(chat_id) in self.channel.staff_chat_ids:
                by_chat.setdefault(str(chat_id), []).append(message)
        for staff_chat, messages in by_chat.items():
            await self.channel.transport.delete(staff_chat, messages)
        return any(shared for _, _, shared in found)


class PersonForwarder:
    """Messages from staff to a person, through whichever channel the person used."""

    destination = "person"

    def __init__(self) -> None:
        self.channels: dict[str, Channel] = {}

    async def send(self, item: Outgoing) -> None:
        chat = ChatRef.parse(str(item.data.get("chat", "")))
        channel = self.channels.get(chat.channel) if chat is not None else None
        if chat is None or channel is None:
            raise RetryLater(reason=f"no {chat.channel if chat else 'unknown'} channel running here")
        await channel.relay(chat.chat_id, Relayed(item.reference, item.kind, str(item.data.get("text", ""))))
