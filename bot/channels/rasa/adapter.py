"""Rasa channels (WhatsApp, SMS, web widgets) through a rasa-sdk action server: translation only.

Rasa runs one custom action, ``action_reachable``, for every message. The action hands the
message to the channel core (``sms`` for text messages and WhatsApp through Twilio, which have
shorter wordings; ``rasa`` for the others) and returns what the core sent, as
``utter_message`` calls: with buttons whose payloads come back as the next message, or, on a
short channel (SMS and WhatsApp through Twilio), as one text whose options are numbered lines.

A chat is Rasa's input channel and sender id together (``twilio:whatsapp:+447…``), so a sender
id typed into another channel reaches another conversation. Where the client picks the sender id
(``rest``, ``callback``, ``socketio``) that id is the only key to the conversation: one that does
not look like a random secret gets a conversation that lasts one message.

A message for a person outside an action call (a support worker's reply) goes through Rasa's
HTTP API: ``trigger_intent`` with a one-time secret makes Rasa run the action again, which hands
it over, on channels where Rasa can push to the person. Elsewhere (``rest``, ``socketio``: Rasa
answers only the request in hand) staff messages are held until the person checks with their code.
What a turn kept until it has gone out (``bot/core/answers.py``) counts as out once the action call's
answer holding it is written to Rasa (``bot/channels/rasa/run.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import json
import re
import secrets
import weakref
from collections.abc import AsyncIterator, Sequence
from contextvars import ContextVar
from typing import Any, Protocol

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from bot.channels.rasa.sms import one_text
from bot.core import callbacks
from bot.core.answers import Told
from bot.core.channel import Channel
from bot.core.transport import Button, ChatInfo, Limits, TransportError
from flows.events import Event, Hint, Text, Unsupported, parse_typed

CHANNEL = "rasa"
SMS = "sms"  # text messages and WhatsApp through Twilio: the same Rasa, shorter wordings
ACTION = "action_reachable"
BUTTON_INTENT = "reachable_button"  # a pressed button: "/reachable_button{"data": "..."}"
BUTTON_ENTITY = "data"
DELIVER_INTENT = "reachable_deliver"  # triggered through Rasa's API: hand over what waits
DELIVER_ENTITY = "reachable_nonce"  # the one-time secret that trigger carries
# Kept answers handed to Rasa in the action call being answered: (core, chat, answer), per call.
HANDED: ContextVar[list[tuple[Channel, str, Told]]] = ContextVar("reachable_rasa_handed")
# SMS carries up to 1,600 characters a message through Twilio; other channels allow more.
RASA = Limits(max_length=1600, per_second=1000, group_per_minute=1000, deletes=False, pull=True)

# Rasa input channels whose sender id the platform sets (a phone number, a page-scoped id):
# nobody else can write as that sender, provided Rasa's webhook for it is reachable only by the
# platform (see README, "Rasa").
PROVEN = frozenset({"twilio", "facebook", "telegram", "slack", "botframework"})
# Of those and the others, the ones where Rasa can send to the person unasked.
PUSHES = PROVEN | {"callback"}
# Channels whose output Rasa also collects into the trigger's answer although it was pushed.
COLLECTS_TOO = frozenset({"callback"})
# Short channels: one reply is one text, options as numbered lines (bot/channels/rasa/sms.py).
SHORT = frozenset({"twilio"})
# A sender id the client picked is a key only when it looks like a random secret (a UUID, or
# 22 or more URL-safe characters: 128 bits and over if random).
RANDOM_LOOKING = re.compile(r"[0-9A-Za-z_-]{22,128}|[0-9a-fA-F-]{36}")
# Characters Rasa 3.6 takes literally in a path (it does not decode percent-escapes).
PATH_SAFE = re.compile(r"[0-9A-Za-z._~!$&'()*+,;=:@-]{1,256}")

Message = dict[str, Any]


def chat_for(input_channel: str | None, sender_id: str) -> str:
    """Our chat id for a Rasa conversation: its input channel and sender id, or a chat of its
    own for one message where a client-picked sender id could be guessed."""
    channel = input_channel if input_channel and input_channel.replace("_", "").isalnum() else "unknown"
    if channel not in PROVEN and not RANDOM_LOOKING.fullmatch(sender_id):
        return f"{channel}:once-{secrets.token_hex(16)}"
    return f"{channel}:{sender_id}"


def parts_of(chat_id: str) -> tuple[str, str]:
    """(input channel, sender id) of a chat id made by :func:`chat_for`."""
    channel, _, sender = chat_id.partition(":")
    return channel, sender


def pushes_to(chat_id: str) -> bool:
    """Whether Rasa can send to this chat unasked (a staff reply, a code owed after a restart)."""
    channel, sender = parts_of(chat_id)
    return channel in PUSHES and not sender.startswith("once-") and PATH_SAFE.fullmatch(sender) is not None


class RasaAPI(Protocol):
    async def trigger(self, sender_id: str, nonce: str) -> list[Message]:
        """Ask Rasa to run the action for ``sender_id`` now, answering on their latest channel;
        the messages Rasa collected instead of sending (on channels it cannot push to)."""


class RasaTransport:
    """Collects what the core sends during an action call; anything else goes through Rasa's API."""

    limits = RASA

    def __init__(self, api: RasaAPI | None, channel: str = CHANNEL) -> None:
        self.api = api
        self.channel = channel
        self._open: dict[str, list[Message]] = {}
        self._waiting: dict[str, tuple[str, list[Message]]] = {}  # by nonce: (chat, messages)
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

    def take_waiting(self, chat_id: str, nonce: object) -> list[Message]:
        """What waits for this chat, if ``nonce`` is the secret its trigger carried (a person
        typing the intent's name gets nothing)."""
        if not isinstance(nonce, str):
            return []
        for waiting, (chat, messages) in list(self._waiting.items()):
            if chat == chat_id and hmac.compare_digest(waiting.encode(), nonce.encode()):
                del self._waiting[waiting]
                return messages
        return []

    def reaches_unasked(self, chat_id: str) -> bool:
        return pushes_to(chat_id)

    async def send(self, chat_id: str, text: str, buttons: Sequence[Button] = ()) -> int:
        message = {"text": text, "buttons": [{"title": b.text, "payload": b.data} for b in buttons]}
        collected = self._open.get(chat_id)
        if collected is not None:
            collected.append(message)
            return next(self._ids)
        if self.api is None:
            raise TransportError("REACHABLE_RASA_URL is not set")
        if not pushes_to(chat_id):
            raise TransportError("Rasa cannot send to this channel unasked")
        channel, sender = parts_of(chat_id)
        nonce = secrets.token_urlsafe(24)  # each send its own: two at once never take each other's
        self._waiting[nonce] = (chat_id, [message])
        try:
            collected_instead = await self.api.trigger(sender, nonce)
        finally:
            left = self._waiting.pop(nonce, None)
        if left is not None:  # Rasa answered but never ran the action: its rules do not route to it
            raise TransportError("Rasa did not run action_reachable")
        if collected_instead and channel not in COLLECTS_TOO:
            raise TransportError("Rasa collected the message instead of sending it")
        return next(self._ids)

    async def delete(self, chat_id: str, message_ids: Sequence[int]) -> None:
        """Rasa's channels cannot delete messages (``RASA.deletes`` is False)."""

    async def answer_button(self, query_id: str) -> None:
        """A pressed button arrives as a message: nothing to answer."""

    async def chat_info(self, chat_id: str) -> ChatInfo:
        return ChatInfo(public_name=None)

    def encode_button(self, step: str, option: str) -> str:
        data = json.dumps({BUTTON_ENTITY: callbacks.encode(step, option)}, separators=(",", ":"))
        return f"/{BUTTON_INTENT}{data}"


def event_for(latest: dict[str, Any]) -> Event:
    """What the person did, from the tracker's latest message: a button, a command or text
    (with Rasa's intent and confidence as a hint), or something that is not text."""
    text = latest.get("text")
    if not isinstance(text, str) or not text.strip():
        return Unsupported(kind="message")
    if text.startswith(f"/{BUTTON_INTENT}"):
        try:
            data = json.loads(text.removeprefix(f"/{BUTTON_INTENT}")).get(BUTTON_ENTITY)
        except (ValueError, AttributeError):
            data = None
        return callbacks.decode(data if isinstance(data, str) else None)
    typed = parse_typed(text)
    intent = latest.get("intent")
    if isinstance(typed, Text) and isinstance(intent, dict):
        name, confidence = intent.get("name"), intent.get("confidence")
        if isinstance(name, str) and isinstance(confidence, int | float) and name != DELIVER_INTENT:
            return Text(typed.text, Hint(name, float(confidence)))
    return typed


def entity(latest: dict[str, Any], name: str) -> object:
    for found in latest.get("entities") or ():
        if isinstance(found, dict) and found.get("entity") == name:
            return found.get("value")
    return None


def update_id(latest: dict[str, Any]) -> int | None:
    """Rasa's id for the message (random hex), as a number: a call sent twice is handled once."""
    message_id = latest.get("message_id")
    if isinstance(message_id, str) and 8 <= len(message_id) <= 64:
        with contextlib.suppress(ValueError):
            return int(message_id[:15], 16)
    return None


class ReachableAction(Action):  # type: ignore[misc]  # rasa-sdk is untyped
    """The one action: each message goes to the core for its kind of channel, text messages
    (``sms``, with shorter wordings) or the others (``rasa``)."""

    def __init__(self, cores: dict[str, tuple[Channel, RasaTransport]]) -> None:
        self.cores = cores

    def name(self) -> str:
        return ACTION

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        latest: dict[str, Any] = tracker.latest_message or {}
        input_channel = tracker.get_latest_input_channel()
        sender = str(tracker.sender_id)
        intent = latest.get("intent")
        intent = intent if isinstance(intent, dict) else {}
        nonce = entity(latest, DELIVER_ENTITY) if intent.get("name") == DELIVER_INTENT else None
        chat = f"{input_channel}:{sender}" if nonce is not None else chat_for(input_channel, sender)
        core, transport = self.cores[SMS if input_channel in SHORT else CHANNEL]
        async with transport.collecting(chat) as collected:
            if nonce is not None:
                collected.extend(transport.take_waiting(chat, nonce))
            else:
                await core.private(chat, event_for(latest), update_id=update_id(latest))
                delivery = core.ports.delivery
                if not pushes_to(chat) and await delivery.store.next_due_in() == 0:
                    # Staff messages the person has just released with their code can reach a
                    # chat Rasa cannot push to only now, in this answer; later ones wait again.
                    await delivery.run_once()
                    await core.ports.conversations.hold_again(core.name, chat)
            # What a turn kept until it has gone out (a new report's code) goes in this call's
            # answer: it is forgotten once that answer is written (see rasa_run), not before. If
            # this process dies meanwhile, the person gets it with the answer to their next message.
            handed = HANDED.get(None)
            for told in core.take_unfetched(chat):
                if handed is not None:
                    handed.append((core, chat, told))
                else:
                    await core.gone_out(told)
        if input_channel in SHORT:
            for text in one_text([(m["text"], [b["title"] for b in m["buttons"]]) for m in collected]):
                dispatcher.utter_message(text=text)
            return []
        for message in collected:
            dispatcher.utter_message(text=message["text"], buttons=message["buttons"])
        return []
