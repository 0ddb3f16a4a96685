"""HTTPS in front of the bot, as Caddy or nginx would be: TLS with a certificate made for the
test, one path passed on to the bot's listen address, 404 for any other path and 502 when
nothing answers behind it."""

from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp
from aiohttp import web

from fakes.tls import make_certificate


class TLSProxy:
    def __init__(self, folder: Path, port: int, path: str, upstream: str) -> None:
        self.cert, self.key = make_certificate(folder, "proxy")
        self.port, self.path, self.upstream = port, path, upstream
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}{self.path}"

    async def _pass_on(self, request: web.Request) -> web.Response:
        if request.path != self.path:
            return web.Response(status=404)
        headers = {k: v for k, v in request.headers.items() if k.lower().startswith("x-telegram")}
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.post(self.upstream + self.path, data=await request.read(), headers=headers) as answer,
            ):
                return web.Response(status=answer.status, body=await answer.read())
        except aiohttp.ClientConnectionError:
            return web.Response(status=502)

    async def start(self) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._pass_on)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=context).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
