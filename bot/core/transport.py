"""What an adapter gives the channel core: a way to send, delete and answer, and its limits.

Exceptions an adapter raises, translated from its framework's::

    TransportError        sending failed; worth trying again later
    ├── RetryAfter        the platform asked us to wait ``seconds`` (Telegram's 429)
    └── Unreachable       this chat can never be reached (the person blocked the bot)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class TransportError(Exception):
    """Sending failed in a way worth trying again later."""


class RetryAfter(TransportError):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"retry after {seconds}")
        self.seconds = seconds


class Unreachable(TransportError):
    """This chat can never be reached: the person blocked the bot, or the chat is gone."""


@dataclass(frozen=True, slots=True)
class ChatRef:
    """A chat on a channel, as the rest of the bot knows it (never a name or a username)."""

    channel: str
    chat_id: str

    def __str__(self) -> str:
        return f"{self.channel}:{self.chat_id}"

    @classmethod
    def parse(cls, text: str) -> ChatRef | None:
        channel, _, chat_id = text.partition(":")
        return cls(channel, chat_id) if channel and chat_id else None


@dataclass(frozen=True, slots=True)
class Button:
    text: str
    data: str


@dataclass(frozen=True, slots=True)
class Limits:
    """A platform's limits: the longest message, and how fast the bot may send."""

    max_length: int
    per_second: float  # messages a second, all chats together
    group_per_minute: float  # messages a minute to one group chat
    deletes: bool = True  # whether the bot can delete its messages (the quick exit clears the chat)
    # What the bot sends waits for the person to fetch it (a web page, a Rasa action's answer):
    # it has gone out only once the adapter says it was fetched.
    pull: bool = False
    chat_per_second: float = 1_000_000  # messages a second to one private chat, on average
    chat_burst: float = 1_000_000  # how many of those may go at once


# Telegram: about 30 messages a second in all, 20 a minute to one group, and about one a second
# to one chat, short bursts allowed.
TELEGRAM = Limits(max_length=4096, per_second=30, group_per_minute=20, chat_per_second=1, chat_burst=20)
UNLIMITED = Limits(max_length=1_000_000, per_second=1_000_000, group_per_minute=1_000_000)


@dataclass(frozen=True, slots=True)
class ChatInfo:
    public_name: str | None  # a public @username: anyone can find and join the chat


class Transport(Protocol):
    channel: str
    limits: Limits

    async def send(self, chat_id: str, text: str, buttons: Sequence[Button] = ()) -> int:
        """Send one message (at most ``limits.max_length`` long); its message id."""

    async def delete(self, chat_id: str, message_ids: Sequence[int]) -> None:
        """Delete messages of a chat, as far as the platform allows; never raises for the rest."""

    async def answer_button(self, query_id: str) -> None:
        """Stop a pressed button's spinner (once per press)."""

    async def chat_info(self, chat_id: str) -> ChatInfo:
        """What the platform says of a chat (staff chats are checked at start-up)."""

    def encode_button(self, step: str, option: str) -> str:
        """A button's data: what comes back when it is pressed."""
