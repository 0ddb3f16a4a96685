"""`reachable spread`: each chat's requests reach the same instance while it answers; when it
stops, only its chats move. Real HTTP: two small servers stand for the instances."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from bot.core.serving import serve
from bot.ops.spread import Spreader, chat_of, order_for
from fakes.harness import free_port

SECRET = {"X-Telegram-Bot-Api-Secret-Token": "s3cret-0123456789"}


def update(chat: int, button: bool = False) -> dict[str, object]:
    message = {"message_id": 1, "chat": {"id": chat, "type": "private"}, "text": "hi"}
    if button:
        return {"update_id": chat, "callback_query": {"id": "7", "from": {"id": chat}, "message": message}}
    return {"update_id": chat, "message": message}


def test_the_chat_is_read_from_a_message_a_button_and_a_rasa_action_call() -> None:
    assert chat_of(json.dumps(update(42)).encode()) == "telegram:42"
    assert chat_of(json.dumps(update(42, button=True)).encode()) == "telegram:42"
    rasa = {"next_action": "action_reachable", "tracker": {"sender_id": "+447700900123"}}
    assert chat_of(json.dumps(rasa).encode()) == "rasa:+447700900123"
    assert chat_of(b"not json") is None


def test_an_instance_leaving_moves_only_its_own_chats() -> None:
    three, two = ["http://a", "http://b", "http://c"], ["http://a", "http://b"]
    chats = [f"telegram:{n}" for n in range(2000)]
    before = {chat: order_for(chat, three)[0] for chat in chats}
    after = {chat: order_for(chat, two)[0] for chat in chats}
    assert {before[c] for c in chats} == set(three), "every instance takes some chats"
    moved = [c for c in chats if before[c] != after[c]]
    assert moved and all(before[c] == "http://c" for c in moved)


@pytest.fixture
async def instances() -> AsyncIterator[tuple[list[str], dict[str, list[tuple[str, object]]], list[web.AppRunner]]]:
    seen: dict[str, list[tuple[str, object]]] = {}
    runners, addresses = [], []
    for name in ("one", "two"):
        seen[name] = []

        async def take(request: web.Request, name: str = name) -> web.Response:
            seen[name].append((request.headers.get("X-Telegram-Bot-Api-Secret-Token", ""), await request.json()))
            return web.json_response({"ok": True})

        async def healthy(request: web.Request) -> web.Response:
            return web.json_response({"status": "ok"})

        app = web.Application()
        app.router.add_post("/telegram", take)
        app.router.add_get("/healthz", healthy)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        addresses.append(f"http://127.0.0.1:{port}")
    yield addresses, seen, runners
    for runner in runners:
        await runner.cleanup()


async def test_each_chat_reaches_one_instance_and_a_stopped_ones_chats_reach_the_other(
    instances: tuple[list[str], dict[str, list[tuple[str, object]]], list[web.AppRunner]],
) -> None:
    addresses, seen, runners = instances
    async with (
        serve(Spreader(addresses).application(), f"127.0.0.1:{free_port()}", "spread") as where,
        aiohttp.ClientSession() as http,
    ):
        for _ in range(3):
            for chat in range(1, 21):
                async with http.post(f"http://{where}/telegram", json=update(chat), headers=SECRET) as answer:
                    assert answer.status == 200
        by_chat = {name: {u["message"]["chat"]["id"] for _, u in got} for name, got in seen.items()}  # type: ignore[index]
        assert by_chat["one"] and by_chat["two"] and not by_chat["one"] & by_chat["two"]
        assert all(secret == SECRET["X-Telegram-Bot-Api-Secret-Token"] for got in seen.values() for secret, _ in got)

        await runners[0].cleanup()  # the first instance stops
        seen["two"].clear()
        for chat in range(1, 21):
            async with http.post(f"http://{where}/telegram", json=update(chat), headers=SECRET) as answer:
                assert answer.status == 200
        assert {u["message"]["chat"]["id"] for _, u in seen["two"]} == set(range(1, 21))  # type: ignore[index]
