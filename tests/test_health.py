"""`GET /healthz`: healthy says only "ok"; a failing database, a Bot API failing for a while, or
a stuck outbox make it 503 naming the part, never a count."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp
import pytest

from bot.channels.telegram.polling import DurablePolling
from bot.core import health
from bot.core.health import Health
from bot.core.transport import TransportError
from fakes.harness import free_port, settings_for, start_bot_process, web_chat
from fakes.telegram import FakeTelegram
from storage import Keyring
from storage.inbox import MemoryInbox


async def get(url: str) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as session:
        for _ in range(150):
            try:
                async with session.get(url) as answer:
                    return answer.status, await answer.json()
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)
    raise AssertionError(f"nothing answered at {url}")


async def test_the_web_chat_answers_healthz_and_names_a_failing_database(tmp_path: Path) -> None:
    async with web_chat(tmp_path / "data", Keyring.new_key().decode()) as (app, base):
        assert await get(f"{base}/healthz") == (200, {"status": "ok"})
        await app.store.close()  # the database stops answering
        assert await get(f"{base}/healthz") == (503, {"status": "unhealthy", "failing": ["database"]})


@pytest.mark.parametrize("framework", ["ptb", "aiogram"])
async def test_polling_serves_healthz_where_told(fake: FakeTelegram, tmp_path: Path, framework: str) -> None:
    port = free_port()
    settings = settings_for(
        fake,
        tmp_path / "data",
        Keyring.new_key().decode(),
        REACHABLE_HEALTH_LISTEN=f"127.0.0.1:{port}",
        REACHABLE_FRAMEWORK=framework,
    )
    process = await start_bot_process(settings)
    try:
        assert await get(f"http://127.0.0.1:{port}/healthz") == (200, {"status": "ok"})
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 20) == 0


async def test_a_bot_api_failing_for_a_while_makes_it_unhealthy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health, "FAILING_FOR", 0.3)

    async def unreachable(offset: int | None, wait: int) -> list[tuple[int, object]]:
        raise TransportError("Telegram cannot be reached")

    async with web_chat(tmp_path / "data", Keyring.new_key().decode()) as (app, _):
        polling: DurablePolling[object] = DurablePolling(
            unreachable, lambda update: asyncio.sleep(0), MemoryInbox(), lambda u: {}, lambda r: r, timeout=1
        )
        running = asyncio.create_task(polling.run())
        checks = Health(app, polling)
        try:
            assert await checks.problems() == []  # one failure is not yet a problem
            await asyncio.sleep(0.6)
            assert await checks.problems() == ["telegram"]
        finally:
            polling.stop()
            await running


async def test_a_stuck_outbox_makes_it_unhealthy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with web_chat(tmp_path / "data", Keyring.new_key().decode()) as (app, _):
        checks = Health(app)
        assert await checks.problems() == []
        await app.delivery.stop()  # the worker stops making rounds...
        await app.store.enqueue("ABCD-EFGH", "nowhere:chat", "summary", {})  # ...while something is due
        monkeypatch.setattr(health, "STUCK_FOR", 0.2)
        await asyncio.sleep(0.4)
        assert await checks.problems() == ["delivery"]
