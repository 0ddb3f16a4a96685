"""``reachable web``: the chat as a web page on aiohttp, behind the charity's HTTPS proxy.

Plain forms that work without JavaScript (each POST answers with a redirect to the updated
page), a small script of our own when it is on, and the same channel core as every channel.
Private by construction: a random session cookie (``HttpOnly``, ``Secure``, ``SameSite=Strict``,
gone when the browser closes), a CSRF token on every form, strict headers, rate limits in
memory, and no address, user agent or words in any log.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import logging
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from importlib import resources
from urllib.parse import urlsplit

import jinja2
from aiohttp import web

from bot.channels.web.adapter import CHANNEL, TOKEN, Session, Sessions, WebTransport
from bot.channels.web.html import linked
from bot.core import callbacks
from bot.core.app import App
from bot.core.channel import Channel
from bot.core.delivery import TokenBucket
from bot.core.errors import ConfigError
from bot.core.health import Health
from bot.core.serving import require_telegram_for_staff, serve
from bot.core.settings import Settings
from flows.events import Command, Resume, parse_typed
from flows.replies import Reply

log = logging.getLogger("reachable.web")
COOKIE = "__Host-reachable"
# Set for a few minutes by "Leave now" without JavaScript: Back (or anything else) opening this
# address meanwhile is sent on to the neutral site again, never shown a chat. It names nobody.
LEFT = "__Host-left"
LEFT_SECONDS = 300
MAX_BODY = 64 * 1024
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# New chats: each address may start a few, then one every few seconds; everyone together a
# steady stream. A person's own messages are limited per chat, never by others' traffic.
PER_ADDRESS = (0.2, 20.0)  # new sessions a second from one address, and its burst
EVERYONE_NEW = (50.0, 200.0)
PER_SESSION = (1.0, 10.0)  # messages a second from one session, and its burst
ADDRESSES = 50_000  # addresses remembered (as keyed hashes, in memory), least recent forgotten
REFUSALS: dict[int, type[web.HTTPException]] = {
    403: web.HTTPForbidden,
    429: web.HTTPTooManyRequests,
    503: web.HTTPServiceUnavailable,
}


def headers_for(exit_url: str) -> dict[str, str]:
    exit_origin = "{0.scheme}://{0.netloc}".format(urlsplit(exit_url))
    return {
        # form-action names the exit site: without JavaScript, "Leave now" redirects there.
        "Content-Security-Policy": (
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
            f"form-action 'self' {exit_origin}; frame-ancestors 'none'; base-uri 'none'"
        ),
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
    }


class Addresses:
    """A token bucket per client address, for starting chats. Addresses are held only as keyed
    hashes under a key made at start and never written, and only the most recent are kept."""

    def __init__(self, rate: float, burst: float, limit: int = ADDRESSES) -> None:
        self.rate, self.burst, self.limit = rate, burst, limit
        self._key = secrets.token_bytes(32)
        self._buckets: OrderedDict[bytes, TokenBucket] = OrderedDict()

    def take(self, address: str) -> bool:
        name = hashlib.blake2b(address.encode(), key=self._key, digest_size=16).digest()
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = self._buckets[name] = TokenBucket(self.rate, self.burst)
            while len(self._buckets) > self.limit:
                self._buckets.popitem(last=False)
        self._buckets.move_to_end(name)
        return bucket.take()


class WebChat:
    def __init__(self, app: App) -> None:
        self.app = app
        self.settings = app.settings
        self.sessions = Sessions(app.keyring.session_ids, on_drop=lambda chat: self.core.never_fetched(chat))
        conversations = app.conversations
        self.transport = WebTransport(self.sessions, lambda chat: conversations.locale(CHANNEL, chat))
        self.core = Channel(self.transport, replace(app.ports(), staff_chats={}))  # staff are on Telegram
        self.addresses = Addresses(*PER_ADDRESS)
        self.everyone_new = TokenBucket(*EVERYONE_NEW)
        self.per_session = PER_SESSION
        self._buckets: dict[str, TokenBucket] = {}
        self.headers = headers_for(self.settings.web_exit_url)
        environment = jinja2.Environment(
            loader=jinja2.PackageLoader("bot.channels.web", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        # Only the page's own texts (the charity's, a few in each language) go through the
        # filter; a conversation's messages are made HTML once, as they are shown (html.py).
        environment.filters["linked"] = functools.lru_cache(maxsize=256)(linked)
        self._texts: dict[tuple[str, str], str] = {}
        self.page = environment.get_template("chat.html")
        self.leaving = environment.get_template("leaving.html")

    # ------------------------------------------------------------------ the aiohttp app
    def application(self) -> web.Application:
        application = web.Application(client_max_size=MAX_BODY, middlewares=[self.secure])
        application.router.add_get("/", self.show)
        application.router.add_post("/say", self.say)
        application.router.add_post("/choose", self.choose)
        application.router.add_post("/exit", self.leave)
        application.router.add_get("/left", self.left)
        application.router.add_get("/static/{name}", self.static)
        Health(self.app).add_to(application)
        return application

    @web.middleware
    async def secure(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as error:  # refusals (and aiohttp's own redirects) are raised
            error.headers.update(self.headers)
            raise
        if not response.prepared:  # a page already written carries them already
            response.headers.update(self.headers)
        return response

    # ------------------------------------------------------------------ pages
    def language(self, session: Session | None, request: web.Request | None = None) -> str:
        """The conversation's language; for someone without one yet, their browser's, if we have it."""
        if session is not None:
            return self.app.conversations.locale(CHANNEL, session.chat_id)
        locales = self.app.responses.locales
        for accepted in (request.headers.get("Accept-Language", "") if request else "").split(","):
            code = accepted.split(";")[0].strip().split("-")[0].casefold()
            if code in locales:
                return code
        return locales[0]

    def text(self, lang: str, message_id: str) -> str:
        """One of the page's own texts in ``lang``: made once, as the texts are fixed while running,
        unless it lists the services (who is open changes with the hour)."""
        found = self._texts.get((lang, message_id))
        if found is None:
            found = self.app.conversations.renderer.render(Reply(message_id), lang, CHANNEL).text
            if "{services}" not in self.app.responses.text(lang, message_id, CHANNEL):
                self._texts[lang, message_id] = found
        return found

    def render(
        self,
        session: Session | None,
        *,
        lang: str | None = None,
        state: str = "chat",
        error: str = "",
        draft: str = "",
        status: int = 200,
    ) -> web.Response:
        """The page: ``state`` is "chat", "ended" or "busy"; ``error`` is said beside the message
        box, which holds ``draft`` (what the person typed and we could not take)."""
        lang = lang or self.language(session)
        options = session.options if session else ()
        shown = session.shown if session else []
        current = next((s.number for s in reversed(shown) if not s.mine), None)
        html = self.page.render(
            lang=lang,
            t=lambda message_id: self.text(lang, message_id),
            shown=shown,
            current=current,
            options=options,
            csrf=session.csrf if session else "",
            exit_url=self.settings.web_exit_url,
            state=state,
            error=error,
            draft=draft,
        )
        response = web.Response(text=html, content_type="text/html", charset="utf-8", status=status)
        if session is not None:
            response.set_cookie(COOKIE, session.token, path="/", secure=True, httponly=True, samesite="Strict")
        return response

    async def show(self, request: web.Request) -> web.StreamResponse:
        if "new" in request.query:  # "Start a new chat": whatever "Leave now" set is let go
            response = see_other("/")
            response.del_cookie(LEFT, path="/", secure=True, httponly=True, samesite="Strict")
            return response
        if LEFT in request.cookies and COOKIE not in request.cookies:
            return self.neutral(request)
        session = await self.session_of(request)
        if session is None:
            session = self.sessions.new() if self.may_start(request) else None
            if session is None:
                return self.busy(request)
            await self.core.private(session.chat_id, Command("start"))
        if session.left:  # coming back to a quick exit a crash interrupted: it is carried out
            return self.gone(session, request)
        page = self.render(session)
        # What the page holds has gone out once it is written, not before: a crash until then
        # leaves a kept answer (a new report's code) in storage, for this cookie to find again.
        page.headers.update(self.headers)
        await page.prepare(request)
        await page.write_eof()
        await self.core.fetched(session.chat_id)
        return page

    def client(self, request: web.Request) -> str:
        """The client's address: from the proxy's header if one is configured, else the peer's."""
        header = self.settings.web_client_address_header
        if header:
            given = request.headers.get(header, "")
            return given.split(",")[-1].strip()
        return request.remote or ""

    def may_start(self, request: web.Request) -> bool:
        """Whether this client may start (or bring back) a session now."""
        return self.addresses.take(self.client(request)) and self.everyone_new.take()

    def busy(self, request: web.Request) -> web.Response:
        """No room for a new chat without ending someone else's, or this address is starting
        too many: say so, with what to do in danger, and when to come back."""
        log.info("web chat: a new session refused (busy)")
        response = self.render(None, lang=self.language(None, request), state="busy", status=503)
        response.headers["Retry-After"] = "60"
        return response

    async def session_of(self, request: web.Request) -> Session | None:
        """The session the cookie names. One this process does not know (it restarted, or forgot
        an idle session) is made anew if its conversation is still stored, a draft or something
        it was never shown, and the person is shown where they are."""
        token = request.cookies.get(COOKIE)
        session = self.sessions.get(token)
        if session is not None or token is None or not TOKEN.fullmatch(token):
            return session
        chat_id, _ = self.sessions.ids(token)
        if not await self.app.conversations.stored(CHANNEL, chat_id) or not self.may_start(request):
            return None
        session = self.sessions.revive(token)
        if session is not None:
            await self.core.private(session.chat_id, Resume())
        return session

    async def posted(self, request: web.Request, limited: bool = True) -> tuple[Session, dict[str, str]]:
        """The session a form belongs to, once its CSRF token and (if ``limited``) its own rate
        limit allow it. A form from a page whose session was let go (a fresh one, when the chat
        was full) brings it back: a chat someone is using is never ended by others."""
        session = await self.session_of(request)
        form = {k: str(v) for k, v in (await request.post()).items()}
        origin = request.headers.get("Origin")
        # Under "Referrer-Policy: no-referrer" browsers send "Origin: null" with forms; the
        # CSRF token and the SameSite=Strict cookie still hold.
        if origin not in (None, "null") and urlsplit(origin).netloc != request.host:
            raise web.HTTPForbidden(text=self.text(self.language(None, request), "web.other_site"))
        token = request.cookies.get(COOKIE, "")
        if (
            session is None
            and TOKEN.fullmatch(token)
            and hmac.compare_digest(form.get("csrf", ""), self.sessions.ids(token)[1])
        ):
            session = self.sessions.revive(token) if self.may_start(request) else None
            if session is None:
                raise self.refused(self.busy(request))
        if session is None:
            raise self.refused(self.render(None, lang=self.language(None, request), state="ended", status=403))
        if not hmac.compare_digest(form.get("csrf", ""), session.csrf):
            raise self.refused(self.render(session, error=self.text(self.language(session), "web.stale"), status=403))
        if limited:
            bucket = self._buckets.get(session.token)
            if bucket is None:
                bucket = self._buckets[session.token] = TokenBucket(*self.per_session)
                if len(self._buckets) > 2 * len(self.sessions) + 100:
                    self._buckets = {t: b for t, b in self._buckets.items() if self.sessions.get(t) is not None}
            if not bucket.take():
                page = self.render(session, error=self.text(self.language(session), "web.slow_down"), status=429)
                page.headers["Retry-After"] = "5"
                raise self.refused(page)
        self.sessions.using(session)
        return session, form

    def refused(self, page: web.Response) -> web.HTTPException:
        """A refusal that is still the whole page, its Leave-now control included."""
        kind = REFUSALS[page.status]
        headers = {k: v for k, v in page.headers.items() if k.lower() != "content-type"}
        return kind(text=page.text, content_type="text/html", headers=headers)

    def onward(self, session: Session, before: int) -> web.Response:
        """Back to the page, at the first message the bot said since ``before`` (so its first
        line, "call 999 now", is what is in view)."""
        if session.left:  # "Leave now" from the conversation's own options
            return self.gone(session, None)
        shown = session.shown  # built on each read: once
        new = [s.number for s in shown if s.number > before and not s.mine]
        latest = new[0] if new else (shown[-1].number if shown else 0)
        return see_other(f"/#m{latest}")

    def gone(self, session: Session | None, request: web.Request | None) -> web.Response:
        """Forget the session; on to our own neutral page (which sends the browser on to the
        neutral site), the cookie and this site's data cleared. Only for a request that carried
        our cookie (so came from our own page): a form posted from another site clears nothing."""
        if session is not None:
            self.sessions.drop(session)
            self._buckets.pop(session.token, None)
        response = see_other("/left")
        if session is not None or (request is not None and COOKIE in request.cookies):
            response.del_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="Strict")
            response.headers["Clear-Site-Data"] = '"cache", "cookies", "storage"'
        return response

    def neutral(self, request: web.Request) -> web.Response:
        """Our own page on the way out: nothing of the chat, sent on to the neutral site at once,
        and for a few minutes this address sends the browser there again (Back included)."""
        lang = self.language(None, request)
        html = self.leaving.render(lang=lang, exit_url=self.settings.web_exit_url, go_on=self.text(lang, "web.go_on"))
        response = web.Response(text=html, content_type="text/html", charset="utf-8")
        response.set_cookie(
            LEFT, "1", path="/", secure=True, httponly=True, samesite="Strict", max_age=str(LEFT_SECONDS)
        )
        return response

    async def left(self, request: web.Request) -> web.Response:
        return self.neutral(request)

    async def say(self, request: web.Request) -> web.StreamResponse:
        session, form = await self.posted(request)
        text = form.get("text", "")
        lang = self.language(session)
        if not text.strip():
            return self.render(session, error=self.text(lang, "web.empty"), status=400)
        before = session.numbers
        session.show(text, lang, mine=True)
        await self.core.private(session.chat_id, parse_typed(text))
        return self.onward(session, before)

    async def choose(self, request: web.Request) -> web.StreamResponse:
        session, form = await self.posted(request)
        data = form.get("choice", "")
        label = session.label_of(data)
        before = session.numbers
        if label is not None:
            session.show(label, self.language(session), mine=True)
        await self.core.private(session.chat_id, callbacks.decode(data))
        return self.onward(session, before)

    async def leave(self, request: web.Request) -> web.StreamResponse:
        """Leave now: the conversation ends as /exit ends it (only with the page's own token), the
        session is forgotten, and the browser goes to the neutral site with the cookie (and this
        site's data) cleared."""
        session: Session | None = None
        with contextlib.suppress(web.HTTPException):  # leaving always works; a forged form ends nothing
            session, _ = await self.posted(request, limited=False)
            await self.core.private(session.chat_id, Command("exit"))
        return self.gone(session, request)

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        kinds = {"chat.css": "text/css", "chat.js": "text/javascript"}
        if name not in kinds:
            raise web.HTTPNotFound()
        body = resources.files("bot.channels.web").joinpath("static", name).read_text(encoding="utf-8")
        return web.Response(text=body, content_type=kinds[name], charset="utf-8")


def see_other(location: str) -> web.Response:
    """A redirect (303: the browser asks for ``location`` with GET), returned rather than raised:
    aiohttp keeps a raised one with its traceback, whose frames hold the request in a cycle the
    younger garbage collections rarely free in time; every message a person sends ends with one."""
    return web.Response(status=303, headers={"Location": location})


@contextlib.asynccontextmanager
async def serving_web(app: App) -> AsyncIterator[WebChat]:
    """The web chat, listening on REACHABLE_WEB_LISTEN while inside."""
    chat = WebChat(app)
    chat.core.attach()
    async with serve(chat.application(), app.settings.web_listen, "REACHABLE_WEB_LISTEN") as where:
        log.info("web chat listening on %s", where)
        yield chat


def check_settings(settings: Settings) -> None:
    """Refuse a start where a promise to people on the web chat could not be kept."""
    require_telegram_for_staff(settings)
    exit_url = urlsplit(settings.web_exit_url)
    if exit_url.scheme not in ("https", "http") or not exit_url.netloc:
        raise ConfigError(f"REACHABLE_WEB_EXIT_URL must be a web address, not {settings.web_exit_url!r}")
