"""Rasa channels (WhatsApp, SMS, web widgets) through a rasa-sdk action server: translation only.

Rasa runs one custom action, ``action_reachable``, for every message. The action hands the
message to the channel core (channel ``rasa``, chat = the tracker's ``sender_id``) and returns
what the core sent, as ``utter_message`` calls with buttons whose payloads come back as the next
message. A message for a person outside an action call (a support worker's reply) goes through
Rasa's HTTP API: ``trigger_intent`` makes Rasa run the action again, which hands it over. What a
turn kept until it has gone out (``bot/answers.py``) counts as out once the action call's answer
holding it is written to Rasa (``bot/rasa_run.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import weakref
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from contextvars import ContextVar
from typing import Any, Protocol

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from bot import callbacks
from bot.answers import Told
from bot.channel import Channel
from bot.transport import Button, ChatInfo, Limits, TransportError
from flows.events import Event, Hint, Text, Unsupported, parse_typed

CHANNEL = "rasa"
ACTION = "action_reachable"
BUTTON_INTENT = "reachable_button"  # a pressed button: "/reachable_button{"data": "..."}"
DELIVER_INTENT = "reachable_deliver"  # triggered through Rasa's API: hand over what waits
# SMS carries up to 1,600 characters a message through Twilio; other channels allow more.
# Kept answers handed to Rasa in the action call being answered: (chat, answer), set per call.
HANDED: ContextVar[list[tuple[str, Told]]] = ContextVar("reachable_rasa_handed")
RASA = Limits(max_length=1600, per_second=1000, group_per_minute=1000, deletes=False, pull=True)

Message = dict[str, Any]


class RasaAPI(Protocol):
    async def trigger(self, sender_id: str) -> None:
        """Ask Rasa to run the action for ``sender_id`` now, answering on their latest channel."""


class RasaTransport:
    """Collects what the core sends during an action call; anything else goes through Rasa's API."""

    channel = CHANNEL
    limits = RASA

    def __init__(self, api: RasaAPI | None) -> None:
        self.api = api
        self._open: dict[str, list[Message]] = {}
        self._waiting: defaultdict[str, list[Message]] = defaultdict(list)
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._ids = itertools.count(1)

    @contextlib.asynccontextmanager
    async def collecting(self, chat_id: str) -> AsyncIterator[list[Message]]:
        """One action call at a time per person: what the core sends meanwhile is the answer."""
        lock = self._locks.setdefault(chat_id, asyncio.Lock())
        async with lock:
            collected = self._open[chat_id] = []
            try:
                yield collected
            finally:
                del self._open[chat_id]

    def take_waiting(self, chat_id: str) -> list[Message]:
        return self._waiting.pop(chat_id, [])

    async def send(self, chat_id: str, text: str, buttons: Sequence[Button] = ()) -> int:
        message = {"text": text, "buttons": [{"title": b.text, "payload": b.data} for b in buttons]}
        collected = self._open.get(chat_id)
        if collected is not None:
            collected.append(message)
            return next(self._ids)
        if self.api is None:
            raise TransportError("REACHABLE_RASA_URL is not set")
        self._waiting[chat_id].append(message)
        try:
            await self.api.trigger(chat_id)
        finally:
            left = self._waiting.pop(chat_id, [])
        if left:  # Rasa answered but never ran the action: its rules do not route to it
            raise TransportError("Rasa did not run action_reachable")
        return next(self._ids)

    async def delete(self, chat_id: str, message_ids: Sequence[int]) -> None:
        """Rasa's channels cannot delete messages (``RASA.deletes`` is False)."""

    async def answer_button(self, query_id: str) -> None:
        """A pressed button arrives as a message: nothing to answer."""

    async def chat_info(self, chat_id: str) -> ChatInfo:
        return ChatInfo(public_name=None)

    def encode_button(self, step: str, option: str) -> str:
        return f"/{BUTTON_INTENT}" + json.dumps({"data": callbacks.encode(step, option)}, separators=(",", ":"))


def event_for(latest: dict[str, Any]) -> Event:
    """What the person did, from the tracker's latest message: a button, a command or text
    (with Rasa's intent and confidence as a hint), or something that is not text."""
    text = latest.get("text")
    if not isinstance(text, str) or not text.strip():
        return Unsupported(kind="message")
    if text.startswith(f"/{BUTTON_INTENT}"):
        try:
            data = json.loads(text.removeprefix(f"/{BUTTON_INTENT}")).get("data")
        except (ValueError, AttributeError):
            data = None
        return callbacks.decode(data if isinstance(data, str) else None)
    typed = parse_typed(text)
    intent = latest.get("intent")
    if isinstance(typed, Text) and isinstance(intent, dict):
        name, confidence = intent.get("name"), intent.get("confidence")
        if isinstance(name, str) and isinstance(confidence, int | float):
            return Text(typed.text, Hint(name, float(confidence)))
    return typed


def update_id(latest: dict[str, Any]) -> int | None:
    """Rasa's id for the message (random hex), as a number: a call sent twice is handled once."""
    message_id = latest.get("message_id")
    if isinstance(message_id, str) and 8 <= len(message_id) <= 64:
        with contextlib.suppress(ValueError):
            return int(message_id[:15], 16)
    return None


class ReachableAction(Action):  # type: ignore[misc]  # rasa-sdk is untyped
    def __init__(self, core: Channel, transport: RasaTransport) -> None:
        self.core = core
        self.transport = transport

    def name(self) -> str:
        return ACTION

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        chat = str(tracker.sender_id)
        latest: dict[str, Any] = tracker.latest_message or {}
        intent = latest.get("intent")
        intent = intent if isinstance(intent, dict) else {}
        async with self.transport.collecting(chat) as collected:
            if intent.get("name") == DELIVER_INTENT:
                collected.extend(self.transport.take_waiting(chat))
            else:
                await self.core.private(chat, event_for(latest), update_id=update_id(latest))
            # What a turn kept until it has gone out (a new report's code) goes in this call's
            # answer: it is forgotten once that answer is written (see rasa_run), not before. If
            # this process dies meanwhile, the person gets it with the answer to their next message.
            handed = HANDED.get(None)
            for told in self.core.take_unfetched(chat):
                if handed is not None:
                    handed.append((chat, told))
                else:
                    await self.core.gone_out(told)
        for message in collected:
            dispatcher.utter_message(text=message["text"], buttons=message["buttons"])
        return []
