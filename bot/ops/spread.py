"""`reachable spread`: in front of several instances, each chat's updates go to the same one.

Where someone stands in a menu, or on the first screen of a report, is held only in the memory of
the instance that answered them: nothing of someone who never starts a report is written
anywhere. So every update of a chat (a Telegram webhook POST, a Rasa action call) must reach the
instance that holds that chat. This proxy reads the chat from the request, picks an instance by
rendezvous hashing over those that answer, and forwards the request unchanged. When an instance
stops answering, only its chats move, to the next in each chat's order; drafts of reports are in
the shared database, so a report goes on where it was, and someone in a menu sees the menu again.
The chat is used in memory for the hash only: never logged, never kept."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

import aiohttp
from aiohttp import web

log = logging.getLogger("reachable.spread")
MAX_BODY = 4 * 1024 * 1024  # a Rasa action call carries the whole conversation
DOWN_FOR = 5.0  # seconds an instance that refused a connection is passed over before it is tried again
CHECK_EVERY = 5.0  # seconds between health checks of each instance
FORWARDED = ("content-type", "x-telegram-bot-api-secret-token", "authorization")


def chat_of(body: bytes) -> str | None:
    """The chat a request belongs to: a Telegram update's chat (or its sender, for a button
    under an inline message), or a Rasa action call's sender; None if it names none."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    tracker = data.get("tracker")
    if isinstance(tracker, dict) and tracker.get("sender_id") is not None:
        return f"rasa:{tracker['sender_id']}"
    if data.get("sender_id") is not None:
        return f"rasa:{data['sender_id']}"
    for kind, value in data.items():
        if kind == "update_id" or not isinstance(value, dict):
            continue
        found = _telegram_chat(value)
        if found is not None:
            return f"telegram:{found}"
    return None


def _telegram_chat(event: dict[str, Any]) -> Any:
    chat = event.get("chat")
    if isinstance(chat, dict) and "id" in chat:
        return chat["id"]
    message = event.get("message")
    if isinstance(message, dict) and isinstance(message.get("chat"), dict):
        return message["chat"].get("id")
    sender = event.get("from")
    return sender.get("id") if isinstance(sender, dict) else None


def order_for(chat: str, backends: Sequence[str]) -> list[str]:
    """Rendezvous hashing: each chat's own order of the instances; the first that answers takes
    it. An instance leaving or coming back moves only the chats it is first for."""
    return sorted(
        backends, key=lambda b: hashlib.blake2b(f"{b}\n{chat}".encode(), digest_size=8).digest(), reverse=True
    )


class Spreader:
    def __init__(self, backends: Sequence[str]) -> None:
        if not backends:
            raise ValueError("name at least one instance")
        self.backends = [b.rstrip("/") for b in backends]
        self.sent: list[int] = [0] * len(self.backends)  # requests each instance answered
        self._down: dict[str, float] = {}  # instance -> until when it is passed over
        self._session: aiohttp.ClientSession | None = None
        self._checking: asyncio.Task[None] | None = None

    def application(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post("/{path:.*}", self.forward)
        app.router.add_get("/healthz", self.health)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, app: web.Application) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120, connect=2))
        self._checking = asyncio.create_task(self._check_forever(), name="reachable-spread-check")

    async def _stop(self, app: web.Application) -> None:
        if self._checking is not None:
            self._checking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checking
        if self._session is not None:
            await self._session.close()

    def _up(self, backend: str) -> bool:
        return self._down.get(backend, 0.0) <= time.monotonic()

    async def _check_forever(self) -> None:
        assert self._session is not None
        while True:
            for backend in self.backends:
                try:
                    async with self._session.get(
                        backend + "/healthz", timeout=aiohttp.ClientTimeout(total=3)
                    ) as answer:
                        healthy = answer.status == 200
                except (aiohttp.ClientError, TimeoutError):
                    healthy = False
                if healthy:
                    self._down.pop(backend, None)
                elif self._up(backend):
                    log.warning("an instance does not answer its health check: passed over")
                    self._down[backend] = time.monotonic() + DOWN_FOR
            await asyncio.sleep(CHECK_EVERY)

    async def health(self, request: web.Request) -> web.Response:
        up = sum(self._up(b) for b in self.backends)
        return web.json_response({"status": "ok" if up else "unhealthy", "instances_up": up}, status=200 if up else 503)

    async def forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        chat = chat_of(body)
        candidates = order_for(chat or str(time.monotonic_ns()), self.backends)
        # Those passed over go last: if every instance is down, each is tried all the same.
        candidates.sort(key=lambda b: not self._up(b))
        headers = {k: v for k, v in request.headers.items() if k.lower() in FORWARDED}
        for backend in candidates:
            try:
                async with self._session.post(backend + request.path_qs, data=body, headers=headers) as answer:
                    self.sent[self.backends.index(backend)] += 1
                    return web.Response(
                        status=answer.status, body=await answer.read(), content_type=answer.content_type
                    )
            except aiohttp.ClientConnectorError:
                # Not listening: nothing reached it. Passed over for a while; the next in order.
                self._down[backend] = time.monotonic() + DOWN_FOR
                continue
            except (aiohttp.ClientError, TimeoutError):
                # It died holding the request: Telegram (or Rasa) sends it again, and the update
                # marks make a turn that was taken already harmless.
                self._down[backend] = time.monotonic() + DOWN_FOR
                return web.Response(status=502)
        return web.Response(status=502)
