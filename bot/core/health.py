"""`GET /healthz` for reverse proxies, process supervisors and uptime monitors.

It says only whether the bot is healthy and, if not, which part is failing: no secrets and no
counts that would reveal how many people write. Unhealthy when the database does not answer,
when the Bot API has failed for a while (polling), or when the delivery queue is stuck.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # imported when served: polling Telegram without it needs no HTTP server
    from aiohttp import web

from bot.core.app import App

log = logging.getLogger("reachable.health")
FAILING_FOR = 120.0  # seconds of Bot API failures before it counts
STUCK_FOR = 600.0  # seconds the outbox may have something due without a round


class Watched(Protocol):
    """A source of updates that says since when it has been failing (Telegram's long polling)."""

    @property
    def failing_since(self) -> float | None: ...


class Health:
    def __init__(self, app: App, polling: Watched | None = None) -> None:
        self.app = app
        self.polling = polling

    async def problems(self) -> list[str]:
        found = []
        try:
            await self.app.store.ping()
        except Exception as error:
            log.warning("health: database failed (%s)", type(error).__name__)
            found.append("database")
        failing = self.polling.failing_since if self.polling is not None else None
        if failing is not None and time.monotonic() - failing > FAILING_FOR:
            found.append("telegram")
        if self.app.delivery.stuck_for() > STUCK_FOR:
            found.append("delivery")
        return found

    async def handle(self, request: web.Request) -> web.Response:
        from aiohttp import web

        problems = await self.problems()
        body = {"status": "unhealthy", "failing": problems} if problems else {"status": "ok"}
        return web.json_response(body, status=503 if problems else 200, headers={"Cache-Control": "no-store"})

    def add_to(self, web_app: web.Application) -> None:
        web_app.router.add_get("/healthz", self.handle)
