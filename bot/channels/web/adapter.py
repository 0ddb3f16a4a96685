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
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from markupsafe import Markup

from bot.channels.web.html import Html, message_html
from bot.core import callbacks
from bot.core.transport import Button, ChatInfo, Limits, TransportError

CHANNEL = "web"
# One page holds a whole message; nothing on a web page can be deleted by the bot.
WEB = Limits(max_length=100_000, per_second=1_000_000, group_per_minute=1_000_000, deletes=False, pull=True)
IDLE_SECONDS = 2 * 3600  # a session nobody used for this long is forgotten
MAX_SESSIONS = 5_000
# Memory, bounded by construction: a page keeps at most this much of its conversation, as HTML,
# in bytes as Python holds it (older messages drop off the page, never out of the conversation;
# the latest always stays: 4,000 emoji fit whole, and a message whose HTML alone would be more,
# such as thousands of quotation marks, each five characters as HTML, is shown shortened, "…").
SESSION_BYTES = 16 * 1024
SESSION_OVERHEAD = 1024  # a session's own objects, its tokens and its places in the tables
MEMORY_BOUND = MAX_SESSIONS * (SESSION_BYTES + SESSION_OVERHEAD)  # about 83 MiB, all sessions full
TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")  # what secrets.token_urlsafe(32) makes


class Shown(NamedTuple):
    """One message on the page: the bot's (with the options it offered) or the person's own,
    as HTML (``html.message_html``)."""

    number: int
    mine: bool
    html: Markup
    lang: str
    options: tuple[Button, ...] = ()


# A message as a session holds it: a plain tuple of numbers and strings (its HTML, and its
# options as plain pairs), which the garbage collector stops walking once it has seen it. A
# thousand open conversations hold tens of thousands of messages and options; as objects, every
# full collection walked them all, holding every page being answered for a tenth of a second.
Kept = tuple[int, bool, Html, str, tuple[tuple[str, str], ...]]


def _size(kept: Kept) -> int:
    _, _, html, _, options = kept
    return 160 + 64 * len(options) + sys.getsizeof(html) + sum(sys.getsizeof(t) + sys.getsizeof(d) for t, d in options)


def _shown(kept: Kept) -> Shown:
    number, mine, html, lang, options = kept
    safe = Markup(html)  # noqa: S704 - made by message_html as the message was shown: escaped, linked
    return Shown(number, mine, safe, lang, tuple(Button(t, d) for t, d in options))


@dataclass
class Session:
    """A browser session: a random cookie token, a chat id of its own, a CSRF token, and the
    conversation as shown, all in memory. ``posted``: the person has sent something (a page
    only loaded is a fresh session, the first to give way when memory is short)."""

    token: str
    chat_id: str
    csrf: str
    last_seen: float = field(default_factory=time.monotonic)
    left: bool = False  # the person chose to leave: the page is replaced, the session forgotten
    posted: bool = False
    size: int = 0
    _numbers: int = 0
    _kept: list[Kept] = field(default_factory=list)

    def show(self, text: str, lang: str, mine: bool = False, options: Sequence[Button] = ()) -> Shown:
        self._numbers += 1
        pairs = tuple((b.text, b.data) for b in options)
        kept: Kept = (self._numbers, mine, message_html(text, mine), lang, pairs)
        shortened = text[:SESSION_BYTES]  # each character is at least a byte of HTML
        while _size(kept) > SESSION_BYTES and shortened:
            shortened = shortened[: len(shortened) * 9 // 10]
            kept = (self._numbers, mine, message_html(shortened + "…", mine), lang, pairs)
        self._kept.append(kept)
        self.size += _size(kept)
        while self.size > SESSION_BYTES and len(self._kept) > 1:
            self.size -= _size(self._kept.pop(0))
        return _shown(kept)

    def clear(self) -> None:
        self._kept.clear()
        self.size = 0

    @property
    def shown(self) -> list[Shown]:
        """The conversation as the page shows it, oldest first."""
        return [_shown(kept) for kept in self._kept]

    @property
    def numbers(self) -> int:
        """How many messages this page has shown, ever (the next one's number less one)."""
        return self._numbers

    @property
    def options(self) -> tuple[Button, ...]:
        """The buttons of the latest message from the bot, if it has any."""
        latest = next((kept for kept in reversed(self._kept) if not kept[1]), None)
        return _shown(latest).options if latest is not None else ()

    def label_of(self, data: str) -> str | None:
        return next((b.text for b in self.options if b.data == data), None)


class Sessions:
    """Every live session, bounded in number and idle time (and so in memory: ``MEMORY_BOUND``);
    nothing is written anywhere.
    When full, the idle go first, then the oldest fresh ones (a page loaded, nothing sent: its
    next form revives it). A session someone is using is never pushed out by others: when
    there is no room, ``new`` returns None and the newcomer is asked to come back shortly.
    ``ids``: a session's chat id and CSRF token from its cookie's token. ``on_drop``: told the
    chat id of every session forgotten."""

    def __init__(
        self,
        ids: Callable[[str], tuple[str, str]],
        idle: float = IDLE_SECONDS,
        limit: int = MAX_SESSIONS,
        on_drop: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ids = ids
        self.idle = idle
        self.limit = limit
        self.on_drop = on_drop
        self.clock = clock
        # Least recently used first, in two tables: fresh (nothing sent yet) and in use.
        self._fresh: OrderedDict[str, Session] = OrderedDict()
        self._used: OrderedDict[str, Session] = OrderedDict()
        self._by_chat: dict[str, Session] = {}

    def new(self) -> Session | None:
        """A new session, or None if there is no room without pushing out someone's chat."""
        return self.revive(secrets.token_urlsafe(32))

    def revive(self, token: str) -> Session | None:
        """The session a cookie names, made anew (the server restarted, or forgot it); None if
        there is no room."""
        if not self._room():
            return None
        chat_id, csrf = self.ids(token)
        session = Session(token, chat_id, csrf, last_seen=self.clock())
        self._fresh[token] = session
        self._by_chat[chat_id] = session
        return session

    def _room(self) -> bool:
        if len(self) < self.limit:
            return True
        now = self.clock()
        for table in (self._fresh, self._used):
            while table and now - next(iter(table.values())).last_seen > self.idle:
                self.drop(next(iter(table.values())))
        if len(self) >= self.limit and self._fresh:
            self.drop(next(iter(self._fresh.values())))
        return len(self) < self.limit

    def get(self, token: str | None) -> Session | None:
        token = token or ""
        session = self._used.get(token) or self._fresh.get(token)
        if session is None:
            return None
        now = self.clock()
        if now - session.last_seen > self.idle:
            self.drop(session)
            return None
        session.last_seen = now
        (self._used if session.posted else self._fresh).move_to_end(token)
        return session

    def using(self, session: Session) -> None:
        """The person sent something: their session is in use, and stays until idle."""
        if not session.posted and self._fresh.pop(session.token, None) is not None:
            session.posted = True
            self._used[session.token] = session

    def by_chat(self, chat_id: str) -> Session | None:
        session = self._by_chat.get(chat_id)
        if session is None or self.clock() - session.last_seen > self.idle:
            return None
        return session

    def drop(self, session: Session) -> None:
        self._fresh.pop(session.token, None)
        self._used.pop(session.token, None)
        self._by_chat.pop(session.chat_id, None)
        session.clear()
        if self.on_drop is not None:
            self.on_drop(session.chat_id)

    def __len__(self) -> int:
        return len(self._fresh) + len(self._used)


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
