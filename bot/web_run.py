"""``reachable web``: the chat as a web page on aiohttp, behind the charity's HTTPS proxy.

Plain forms that work without JavaScript (each POST answers with a redirect to the updated
page), a small script of our own when it is on, and the same channel core as every channel.
Private by construction: a random session cookie (``HttpOnly``, ``Secure``, ``SameSite=Strict``,
gone when the browser closes), a CSRF token on every form, strict headers, rate limits in
memory, and no address, user agent or words in any log.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from importlib import resources
from urllib.parse import urlsplit

import jinja2
from aiohttp import web

from bot import callbacks
from bot.app import App
from bot.channel import Channel
from bot.delivery import TokenBucket
from bot.errors import ConfigError
from bot.health import Health
from bot.serving import require_telegram_for_staff, serve
from bot.settings import Settings
from bot.web import CHANNEL, TOKEN, Session, Sessions, WebTransport
from flows.events import Command, Resume, parse_typed

log = logging.getLogger("reachable.web")
COOKIE = "__Host-reachable"
MAX_TEXT = 4000  # characters the message box takes (a Telegram message holds 4,096)
MAX_BODY = 64 * 1024
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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


class WebChat:
    def __init__(self, app: App) -> None:
        self.app = app
        self.settings = app.settings
        self.sessions = Sessions(app.keyring.session_ids, on_drop=lambda chat: self.core.never_fetched(chat))
        conversations = app.conversations
        self.transport = WebTransport(self.sessions, lambda chat: conversations.locale(CHANNEL, chat))
        self.core = Channel(self.transport, replace(app.ports(), staff_chats={}))  # staff are on Telegram
        self.everyone = TokenBucket(rate=200, burst=400)
        self.per_session = (1.0, 10.0)  # posts a second from one session, and its burst
        self._limits: dict[str, TokenBucket] = {}
        self.headers = headers_for(self.settings.web_exit_url)
        environment = jinja2.Environment(
            loader=jinja2.PackageLoader("bot", "templates"), autoescape=True, undefined=jinja2.StrictUndefined
        )
        self.page = environment.get_template("chat.html")

    # ------------------------------------------------------------------ the aiohttp app
    def application(self) -> web.Application:
        application = web.Application(client_max_size=MAX_BODY, middlewares=[self.secure])
        application.router.add_get("/", self.show)
        application.router.add_post("/say", self.say)
        application.router.add_post("/choose", self.choose)
        application.router.add_post("/exit", self.leave)
        application.router.add_get("/static/{name}", self.static)
        Health(self.app).add_to(application)
        return application

    @web.middleware
    async def secure(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as error:  # redirects and refusals are raised
            error.headers.update(self.headers)
            raise
        if not response.prepared:  # a page already written carries them already
            response.headers.update(self.headers)
        return response

    # ------------------------------------------------------------------ pages
    def render(self, session: Session | None, ended: bool = False) -> web.Response:
        lang = self.app.conversations.locale(CHANNEL, session.chat_id) if session else "en"
        responses = self.app.responses
        options = session.options if session else ()
        shown = session.shown if session else []
        current = next((s.number for s in reversed(shown) if not s.mine), None)
        html = self.page.render(
            lang=lang,
            t=lambda message_id: responses.text(lang, message_id, CHANNEL),
            shown=shown,
            current=current,
            options=options,
            csrf=session.csrf if session else "",
            exit_url=self.settings.web_exit_url,
            ended=ended,
            max_text=MAX_TEXT,
        )
        response = web.Response(text=html, content_type="text/html", charset="utf-8")
        if session is not None:
            response.set_cookie(COOKIE, session.token, path="/", secure=True, httponly=True, samesite="Strict")
        return response

    async def show(self, request: web.Request) -> web.StreamResponse:
        session = await self.session_of(request)
        if session is None:
            if not self.everyone.take():
                raise self.slow_down(None)
            session = self.sessions.new()
            await self.core.private(session.chat_id, Command("start"))
        if session.left:  # coming back to a quick exit a crash interrupted: it is carried out
            raise self.gone(session)
        page = self.render(session)
        if request.method != "GET":
            return page
        # What the page holds has gone out once it is written, not before: a crash until then
        # leaves a kept answer (a new report's code) in storage, for this cookie to find again.
        page.headers.update(self.headers)
        await page.prepare(request)
        await page.write_eof()
        await self.core.fetched(session.chat_id)
        return page

    async def session_of(self, request: web.Request) -> Session | None:
        """The session the cookie names. One this process does not know (it restarted, or forgot
        an idle session) is made anew if its conversation is still stored, a draft or something
        it was never shown, and the person is shown where they are."""
        token = request.cookies.get(COOKIE)
        session = self.sessions.get(token)
        if session is not None or token is None or not TOKEN.fullmatch(token):
            return session
        if not self.everyone.take():
            raise self.slow_down(None)
        chat_id, _ = self.sessions.ids(token)
        if not await self.app.conversations.stored(CHANNEL, chat_id):
            return None
        session = self.sessions.revive(token)
        await self.core.private(session.chat_id, Resume())
        return session

    def slow_down(self, session: Session | None) -> web.HTTPTooManyRequests:
        lang = self.app.conversations.locale(CHANNEL, session.chat_id) if session else "en"
        text = self.app.responses.text(lang, "web.slow_down", CHANNEL)
        return web.HTTPTooManyRequests(text=text, headers={"Retry-After": "5"})

    async def posted(self, request: web.Request, limited: bool = True) -> tuple[Session, dict[str, str]]:
        """The session a form belongs to, once its CSRF token and (if ``limited``) the rate
        limits allow it."""
        session = await self.session_of(request)
        form = {k: str(v) for k, v in (await request.post()).items()}
        origin = request.headers.get("Origin")
        # Under "Referrer-Policy: no-referrer" browsers send "Origin: null" with forms; the
        # CSRF token and the SameSite=Strict cookie still hold.
        if origin not in (None, "null") and urlsplit(origin).netloc != request.host:
            raise web.HTTPForbidden(text="This form came from another site.")
        if session is None:
            raise web.HTTPForbidden(text=self.app.responses.text("en", "web.ended", CHANNEL))
        if not hmac.compare_digest(form.get("csrf", ""), session.csrf):
            raise web.HTTPForbidden(text="This form is out of date: reload the page.")
        if not limited:
            return session, form
        limit = self._limits.setdefault(session.token, TokenBucket(*self.per_session))
        if len(self._limits) > 2 * len(self.sessions) + 100:
            self._limits = {t: b for t, b in self._limits.items() if self.sessions.get(t) is not None}
        if not limit.take() or not self.everyone.take():
            raise self.slow_down(session)
        return session, form

    def onward(self, session: Session) -> web.HTTPSeeOther:
        if session.left:  # "Leave now" from the conversation's own options
            return self.gone(session)
        latest = session.shown[-1].number if session.shown else 0
        return web.HTTPSeeOther(f"/#m{latest}")

    def gone(self, session: Session | None) -> web.HTTPSeeOther:
        """Forget the session; send the browser to the neutral site, its cookie cleared."""
        if session is not None:
            self.sessions.drop(session)
            self._limits.pop(session.token, None)
        response = web.HTTPSeeOther(self.settings.web_exit_url)
        response.del_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="Strict")
        response.headers["Clear-Site-Data"] = '"cache", "cookies", "storage"'
        return response

    async def say(self, request: web.Request) -> web.StreamResponse:
        session, form = await self.posted(request)
        text = form.get("text", "")[:MAX_TEXT]
        if text.strip():
            lang = self.app.conversations.locale(CHANNEL, session.chat_id)
            session.show(text, lang, mine=True)
            await self.core.private(session.chat_id, parse_typed(text))
        raise self.onward(session)

    async def choose(self, request: web.Request) -> web.StreamResponse:
        session, form = await self.posted(request)
        data = form.get("choice", "")
        label = session.label_of(data)
        if label is not None:
            session.show(label, self.app.conversations.locale(CHANNEL, session.chat_id), mine=True)
        await self.core.private(session.chat_id, callbacks.decode(data))
        raise self.onward(session)

    async def leave(self, request: web.Request) -> web.StreamResponse:
        """Leave now: the conversation ends as /exit ends it, the session is forgotten, and the
        browser is sent to a neutral site with the cookie (and this site's data) cleared."""
        session: Session | None = None
        with contextlib.suppress(web.HTTPException):  # leaving always works; a forged form ends nothing
            session, _ = await self.posted(request, limited=False)
            await self.core.private(session.chat_id, Command("exit"))
        raise self.gone(session)

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        kinds = {"chat.css": "text/css", "chat.js": "text/javascript"}
        if name not in kinds:
            raise web.HTTPNotFound()
        body = resources.files("bot").joinpath("web_static", name).read_text(encoding="utf-8")
        return web.Response(text=body, content_type=kinds[name], charset="utf-8")


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
