"""The web chat's yardstick for `make bench`: a bare aiohttp app answering the same forms from
memory, as simply as it can be done safely, in a process of its own.

python -m bench.bare_web 127.0.0.1:PORT

Each visitor gets a random session cookie and a CSRF token; a message posted with the token is
added to the conversation with the next of a fixed list of questions, and the browser is sent back
to the page (303), as Reachable's no-JavaScript path does. Nothing is kept, understood, encrypted,
rate-limited or rendered from a template; there is no quick exit, no language and no report.
"""

from __future__ import annotations

import hmac
import html
import secrets
import sys
from dataclasses import dataclass, field

from aiohttp import web

COOKIE = "__Host-bare"
QUESTIONS = [f"Question {n}: what happened next? Answer in your own words, or skip." for n in range(1, 30)]


@dataclass
class Visitor:
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    said: list[tuple[bool, str]] = field(default_factory=lambda: [(False, "Hello. How can we help?")])


VISITORS: dict[str, Visitor] = {}


def page(visitor: Visitor) -> str:
    items = "".join(
        f'<li class="{"mine" if mine else "bot"}"><p>{html.escape(text)}</p></li>' for mine, text in visitor.said
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Chat</title></head><body>'
        f"<ol>{items}</ol>"
        '<form method="post" action="/say">'
        f'<input type="hidden" name="csrf" value="{visitor.csrf}">'
        '<textarea name="text"></textarea><button>Send</button></form></body></html>'
    )


async def show(request: web.Request) -> web.Response:
    token = request.cookies.get(COOKIE, "")
    visitor = VISITORS.get(token)
    if visitor is None:
        token = secrets.token_urlsafe(24)
        visitor = VISITORS[token] = Visitor()
    response = web.Response(text=page(visitor), content_type="text/html")
    response.set_cookie(COOKIE, token, path="/", secure=True, httponly=True, samesite="Strict")
    return response


async def say(request: web.Request) -> web.Response:
    visitor = VISITORS.get(request.cookies.get(COOKIE, ""))
    form = await request.post()
    if visitor is None or not hmac.compare_digest(str(form.get("csrf", "")), visitor.csrf):
        raise web.HTTPForbidden()
    visitor.said.append((True, str(form.get("text", ""))))
    visitor.said.append((False, QUESTIONS[min(len(visitor.said) // 2, len(QUESTIONS) - 1)]))
    raise web.HTTPSeeOther("/")


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def main(listen: str) -> None:
    host, _, port = listen.rpartition(":")
    application = web.Application()
    application.router.add_get("/", show)
    application.router.add_post("/say", say)
    application.router.add_get("/healthz", healthz)
    web.run_app(application, host=host, port=int(port), access_log=None, print=None)


if __name__ == "__main__":
    main(sys.argv[1])
