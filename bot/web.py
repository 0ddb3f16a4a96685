"""The web chat's adapter: what the channel core sends is shown in the person's browser session.

A page has no push: what the core sends during a request is on the page it returns; anything
sent later for a person still on the page waits in their session for the next page (the
script asks every few seconds). Sessions live in memory only, never on disk. A session's chat
id comes from its cookie's random token through a key (``Keyring.session_ids``): after a
restart the same cookie finds the same conversation, and what it was never shown.
"""

from __future__ import annotations

import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bot import callbacks
from bot.transport import Button, ChatInfo, Limits, TransportError

CHANNEL = "web"
# One page holds a whole message; nothing on a web page can be deleted by the bot.
WEB = Limits(max_length=100_000, per_second=1_000_000, group_per_minute=1_000_000, deletes=False, pull=True)
IDLE_SECONDS = 2 * 3600  # a session nobody used for this long is forgotten
MAX_SESSIONS = 10_000
MAX_SHOWN = 400  # messages a page keeps; older ones drop off
TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")  # what secrets.token_urlsafe(32) makes


@dataclass(frozen=True, slots=True)
class Shown:
    """One message on the page: the bot's (with the options it offered) or the person's own."""

    number: int
    mine: bool
    text: str
    lang: str
    options: tuple[Button, ...] = ()


@dataclass
class Session:
    """A browser session: a random cookie token, a chat id of its own, a CSRF token, and the
    conversation as shown, all in memory."""

    token: str
    chat_id: str
    csrf: str
    shown: list[Shown] = field(default_factory=list)
    last_seen: float = field(default_factory=time.monotonic)
    left: bool = False  # the person chose to leave: the page is replaced, the session forgotten
    _numbers: int = 0

    def show(self, text: str, lang: str, mine: bool = False, options: Sequence[Button] = ()) -> Shown:
        self._numbers += 1
        item = Shown(self._numbers, mine, text, lang, tuple(options))
        self.shown.append(item)
        del self.shown[:-MAX_SHOWN]
        return item

    @property
    def options(self) -> tuple[Button, ...]:
        """The buttons of the latest message from the bot, if it has any."""
        latest = next((s for s in reversed(self.shown) if not s.mine), None)
        return latest.options if latest is not None else ()

    def label_of(self, data: str) -> str | None:
        return next((b.text for b in self.options if b.data == data), None)


class Sessions:
    """Every live session, bounded in number and idle time; nothing is written anywhere.
    ``ids``: a session's chat id and CSRF token from its cookie's token. ``on_drop``: told the
    chat id of every session forgotten."""

    def __init__(
        self,
        ids: Callable[[str], tuple[str, str]],
        idle: float = IDLE_SECONDS,
        limit: int = MAX_SESSIONS,
        on_drop: Callable[[str], None] | None = None,
    ) -> None:
        self.ids = ids
        self.idle = idle
        self.limit = limit
        self.on_drop = on_drop
        self._by_token: OrderedDict[str, Session] = OrderedDict()
        self._by_chat: dict[str, Session] = {}

    def new(self) -> Session:
        return self.revive(secrets.token_urlsafe(32))

    def revive(self, token: str) -> Session:
        """The session a cookie names, made anew (the server restarted, or forgot it)."""
        chat_id, csrf = self.ids(token)
        session = Session(token, chat_id, csrf)
        self._by_token[session.token] = session
        self._by_chat[session.chat_id] = session
        while len(self._by_token) > self.limit:
            self.drop(next(iter(self._by_token.values())))
        return session

    def get(self, token: str | None) -> Session | None:
        session = self._by_token.get(token or "")
        if session is None:
            return None
        if time.monotonic() - session.last_seen > self.idle:
            self.drop(session)
            return None
        session.last_seen = time.monotonic()
        self._by_token.move_to_end(session.token)
        return session

    def by_chat(self, chat_id: str) -> Session | None:
        session = self._by_chat.get(chat_id)
        if session is None or time.monotonic() - session.last_seen > self.idle:
            return None
        return session

    def drop(self, session: Session) -> None:
        self._by_token.pop(session.token, None)
        self._by_chat.pop(session.chat_id, None)
        session.shown.clear()
        if self.on_drop is not None:
            self.on_drop(session.chat_id)

    def __len__(self) -> int:
        return len(self._by_token)


class WebTransport:
    channel = CHANNEL
    limits = WEB

    def __init__(self, sessions: Sessions, language: Callable[[str], str]) -> None:
        self.sessions = sessions
        self.language = language  # the conversation's language now, for the lang attribute
        self._ids = 0

    async def send(self, chat_id: str, text: str, buttons: Sequence[Button] = ()) -> int:
        session = self.sessions.by_chat(chat_id)
        if session is None:
            raise TransportError("the person has left the page")
        self._ids += 1
        session.show(text, self.language(chat_id), options=buttons)
        return self._ids

    async def delete(self, chat_id: str, message_ids: Sequence[int]) -> None:
        """A quick exit: the page is replaced by a neutral site and the session forgotten."""
        session = self.sessions.by_chat(chat_id)
        if session is not None:
            session.left = True

    async def answer_button(self, query_id: str) -> None:
        """A pressed button is a form post: nothing to answer."""

    def reaches_unasked(self, chat_id: str) -> bool:
        """A page shows only what it fetches: staff messages wait for the person's code."""
        return False

    async def chat_info(self, chat_id: str) -> ChatInfo:
        return ChatInfo(public_name=None)

    def encode_button(self, step: str, option: str) -> str:
        return callbacks.encode(step, option)
