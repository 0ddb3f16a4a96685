"""The staff inbox on aiohttp: cases sent to the signed-in person's team, each case's consented
summary, acknowledge / reply (seen before it is sent) / close through the same staff desk as the
Telegram staff chat, and for admins the quarter's figures. No JavaScript anywhere.

Accounts come from `reachable staff add` (bot/core/signin.py: Argon2id password, TOTP, lockout).
A session is a random token in a ``__Host-`` cookie (Secure, HttpOnly, SameSite=Strict), kept
server-side only as its hash, with an idle and an absolute timeout, and a new one at every
sign-in (no fixation). Every form carries a CSRF token (before sign-in, one bound to a cookie of
its own) and a POST from another origin is refused. Opening a case, and every action and every
refusal, is in the staff audit; case content never reaches a log."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jinja2
from aiohttp import web

from bot.core.app import App
from bot.core.quarterly import Labels, months_of, quarter_of, tables
from bot.core.serving import serve
from bot.core.signin import SCOPES, SignIn
from flows.codes import canonical_reference
from storage import CodeHasher
from storage.accounts import SESSION_ABSOLUTE, StaffAccount, StaffSession

log = logging.getLogger("reachable.inbox")
COOKIE = "__Host-reachable-staff"
PRE = "__Host-reachable-staff-signin"  # binds the sign-in form's CSRF token before a session
IDLE = 30 * 60  # a session unused this long ends
MAX_BODY = 16 * 1024
STATUSES = {
    "new": ("queued", "sent", "kept"),
    "acknowledged": ("acknowledged",),
    "replied": ("replied",),
    "closed": ("closed",),
    "withdrawn": (),  # gone: only the notice that a copy should be deleted is left
}
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True, slots=True)
class Signed:
    session: StaffSession
    account: StaffAccount
    scope: frozenset[str]


class Inbox:
    def __init__(self, app: App, clock: Callable[[], float] = time.time) -> None:
        self.app = app
        self.store = app.store
        self.desk = app.desk
        self.clock = clock
        self.signin = SignIn(app.store, CodeHasher(), clock)
        folder = resources.files("bot.ops.inbox") / "templates"
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(folder)), autoescape=True, undefined=jinja2.StrictUndefined
        )

    def t(self, message_id: str, **variables: object) -> str:
        text = self.app.responses.text("en", message_id)
        return text.format_map({k: str(v) for k, v in variables.items()}) if variables else text

    def scope(self, account: StaffAccount) -> frozenset[str]:
        extra = frozenset({account.role}) if account.role in self.app.settings.extra_recipients else frozenset()
        found = SCOPES.get(account.role, extra)
        if self.app.settings.soit_via_support and "support" in found:
            found |= {"soit"}  # the support team passes SOIT reports on: they reach its inbox
        return found

    # ------------------------------------------------------------------ the application
    def application(self) -> web.Application:
        application = web.Application(middlewares=[self._guard], client_max_size=MAX_BODY)
        application.add_routes(
            [
                web.get("/", self.home),
                web.get("/login", self.login_page),
                web.post("/login", self.login),
                web.post("/logout", self.logout),
                web.get("/cases", self.cases),
                web.get(r"/cases/{reference}", self.case),
                web.post(r"/cases/{reference}/{action:preview|reply|ack|close}", self.act),
                web.get("/figures", self.figures),
                web.get("/static/inbox.css", self.css),
            ]
        )
        return application

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Strict headers on everything; a POST from another site is refused before any form."""
        if request.method == "POST" and not self._same_origin(request):
            response: web.StreamResponse = web.Response(status=403, text=self.t("inbox.forbidden"))
        else:
            try:
                response = await handler(request)
            except web.HTTPException as error:
                error.headers.update(HEADERS)
                raise
        response.headers.update(HEADERS)
        return response

    @staticmethod
    def _same_origin(request: web.Request) -> bool:
        """What the browser says of where a form came from: Sec-Fetch-Site where it sends it
        (with no referrer sent, Origin is "null" even from our own page), else Origin."""
        site = request.headers.get("Sec-Fetch-Site")
        if site is not None:
            return site in ("same-origin", "none")
        origin = request.headers.get("Origin")
        return origin is None or origin.split("://", 1)[-1] == request.host

    def render(self, template: str, http_status: int = 200, **values: Any) -> web.Response:
        values.setdefault("account", None)
        values.setdefault("notice", "")
        html = self.env.get_template(template).render(t=self.t, **values)
        return web.Response(text=html, status=http_status, content_type="text/html", charset="utf-8")

    # ------------------------------------------------------------------ sessions
    async def signed(self, request: web.Request) -> Signed | None:
        token = request.cookies.get(COOKIE)
        if not token:
            return None
        session = await self.store.session(_hash(token))
        if session is None:
            return None
        now = int(self.clock())
        if now - session.started > SESSION_ABSOLUTE or now - session.seen > IDLE:
            await self.store.end_session(session.token)
            return None
        account = await self.store.account(session.name)
        if account is None:
            return None
        await self.store.touch_session(session.token, now)
        return Signed(session, account, self.scope(account))

    async def _require(self, request: web.Request) -> Signed:
        signed = await self.signed(request)
        if signed is None:
            raise web.HTTPSeeOther("/login")
        return signed

    @staticmethod
    def _csrf_ok(form: Mapping[str, Any], expected: str) -> bool:
        given = str(form.get("csrf", ""))
        return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())

    # ------------------------------------------------------------------ signing in and out
    async def home(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPSeeOther("/cases")

    async def login_page(self, request: web.Request, error: str = "", status: int = 200) -> web.StreamResponse:
        pre = secrets.token_urlsafe(32)
        response = self.render("login.html", status, title=self.t("inbox.login.title"), csrf=pre, error=error)
        response.set_cookie(PRE, pre, path="/", secure=True, httponly=True, samesite="Strict")
        return response

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        if not self._csrf_ok(form, request.cookies.get(PRE, "")):
            return web.Response(status=403, text=self.t("inbox.forbidden"))
        name, password, code = (str(form.get(k, "")) for k in ("name", "password", "code"))
        account = await self.signin.attempt(name[:200], password[:1000], code[:20]) if name and password else None
        if account is None:
            return await self.login_page(request, self.t("inbox.login.failed"), status=401)
        token, now = secrets.token_urlsafe(32), int(self.clock())
        # A fresh session at every sign-in: a token planted before it is worth nothing.
        await self.store.start_session(StaffSession(_hash(token), account.name, now, now, secrets.token_urlsafe(32)))
        response = web.Response(status=303, headers={"Location": "/cases"})
        response.set_cookie(COOKIE, token, path="/", secure=True, httponly=True, samesite="Strict")
        response.del_cookie(PRE, path="/", secure=True, httponly=True, samesite="Strict")
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        signed = await self._require(request)
        if not self._csrf_ok(await request.post(), signed.session.csrf):
            return web.Response(status=403, text=self.t("inbox.forbidden"))
        await self.store.end_session(signed.session.token)
        await self.store.staff_audit(signed.account.name, "signed_out")
        response = web.Response(status=303, headers={"Location": "/login"})
        response.del_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="Strict")
        return response

    # ------------------------------------------------------------------ cases
    async def cases(self, request: web.Request) -> web.StreamResponse:
        signed = await self._require(request)
        status = request.query.get("status", "new")
        wanted = STATUSES.get(status, STATUSES["new"])
        scope = sorted(signed.scope)
        found = [c for c in await self.store.cases(scope) if c.status in wanted]
        rows = [
            {"reference": c.reference, "what": self._what(c.summary), "status": self._status(c.status), "link": True}
            for c in found
        ]
        if status == "withdrawn":
            withdrawn = self.t("inbox.withdrawn")
            rows = [
                {"reference": r, "what": "", "status": withdrawn, "link": False}
                for r in await self.store.withdrawn_for(scope)
            ]
        failed = [
            self.t("inbox.failed.line", reference=r, where=self.desk.where(d), attempts=a)
            for r, d, a in await self.store.failed_for(scope)
        ]
        return self.render(
            "cases.html",
            title=self.t("inbox.cases"),
            account=signed.account,
            csrf=signed.session.csrf,
            statuses=[(key, self.t(f"inbox.status.{key}")) for key in STATUSES],
            status=status if status in STATUSES else "new",
            caption=self.t(f"inbox.status.{status if status in STATUSES else 'new'}"),
            cases=rows,
            failed=failed,
        )

    def _what(self, summary: Mapping[str, Any]) -> str:
        what = summary.get("what", ())
        return ", ".join(self.desk.harm(str(w)) for w in what) if isinstance(what, tuple) else ""

    def _status(self, status: str) -> str:
        """A report's status as the inbox groups it."""
        key = next((k for k, values in STATUSES.items() if status in values), "new")
        return self.t(f"inbox.status.{key}")

    async def _case(self, request: web.Request, signed: Signed) -> str:
        """The case's reference, if the signed-in account may act on it (403 and audited if not)."""
        reference = canonical_reference(request.match_info["reference"])
        report = await self.store.get_report(reference) if reference else None
        if reference is None or report is None:
            raise web.HTTPNotFound(text=self.t("inbox.not_found"))
        if report.send_to not in signed.scope:
            await self.store.staff_audit(signed.account.name, "refused", reference)
            log.info("a case outside the account's scope was asked for: refused")
            raise web.HTTPForbidden(text=self.t("inbox.forbidden"))
        return reference

    async def case(self, request: web.Request, notice: str = "") -> web.StreamResponse:
        signed = await self._require(request)
        reference = await self._case(request, signed)
        report = await self.store.get_report(reference)
        if report is None:
            raise web.HTTPNotFound(text=self.t("inbox.not_found"))
        await self.store.staff_audit(signed.account.name, "opened", reference)
        return self.render(
            "case.html",
            title=self.t("inbox.case", reference=reference),
            account=signed.account,
            csrf=signed.session.csrf,
            notice=notice,
            reference=reference,
            status=self._status(report.status),
            summary=self.desk.summary_text(report),
            thread=[
                {"who": self.t(f"inbox.thread.{who}"), "text": text, "day": dt.datetime.fromtimestamp(day, dt.UTC)}
                for who, text, day in await self.store.thread(reference)
            ],
            open=report.status != "closed",
            once=secrets.randbits(62),
            can_reply=report.allow_reply and await self.store.relay_chat(reference) is not None,
        )

    async def act(self, request: web.Request) -> web.StreamResponse:
        signed = await self._require(request)
        form = await request.post()
        if not self._csrf_ok(form, signed.session.csrf):
            return web.Response(status=403, text=self.t("inbox.forbidden"))
        reference = await self._case(request, signed)
        action = request.match_info["action"]
        text = " ".join(str(form.get("text", "")).split(" ")).strip()[:4000]
        if action == "preview":
            if not text:
                return await self.case(request, self.t("inbox.reply.empty"))
            return self.render(
                "preview.html",
                title=self.t("inbox.preview.title", reference=reference),
                account=signed.account,
                csrf=signed.session.csrf,
                reference=reference,
                text=text,
                once=secrets.randbits(62),
            )
        if action == "reply" and not text:
            return await self.case(request, self.t("inbox.reply.empty"))
        argument = f"{reference} {text}" if action == "reply" else reference
        once = str(form.get("once", ""))
        # The same form sent twice (Back and send again, a double click) acts once.
        update = ("inbox", int(once)) if once.isdecimal() and len(once) < 20 else None
        repeat = update is not None and await self.store.seen(*update)
        told = await self.desk.command(action, argument, signed.scope, update)
        if not repeat:
            await self.store.staff_audit(signed.account.name, action, reference)
        return await self.case(request, told or "")

    # ------------------------------------------------------------------ figures
    async def figures(self, request: web.Request) -> web.StreamResponse:
        from bot.ops import figures

        signed = await self._require(request)
        if signed.account.role != "admin":
            await self.store.staff_audit(signed.account.name, "refused_figures")
            raise web.HTTPForbidden(text=self.t("inbox.forbidden"))
        quarter = quarter_of(self.clock())
        months = months_of(quarter)
        labels = Labels(self.app.responses)
        body = figures.export(
            self.app.settings.service_name,
            quarter,
            tables(await self.store.tallies(months), quarter),
            labels,
            provisional=True,  # the quarter so far
        )
        return web.Response(text=figures.page(body, labels), content_type="text/html", charset="utf-8")

    async def css(self, request: web.Request) -> web.StreamResponse:
        css = (resources.files("bot.ops.inbox") / "static" / "inbox.css").read_text(encoding="utf-8")
        return web.Response(text=css, content_type="text/css")


@asynccontextmanager
async def serving_inbox(app: App) -> AsyncIterator[Inbox]:
    inbox = Inbox(app)
    async with serve(inbox.application(), app.settings.staff_web_listen, "REACHABLE_STAFF_WEB_LISTEN") as where:
        log.info("staff inbox listening on %s", where)
        yield inbox
