"""Random Telegram updates through the real aiogram dispatcher and adapter, answered through
aiogram's own client to the fake Bot API: nothing escapes, Telegram refuses nothing, and no id,
username or name reaches storage or the logs."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.channels.telegram.aiogram_adapter import TelegramChannel
from bot.core.app import App, create_app
from fakes.harness import settings_for
from fakes.telegram import BOT_USER, TOKEN, FakeTelegram
from storage import Keyring

CHATS = (9100000001, 9100000002)
GROUP = -1009100000003
NAMES = ("alex_private_name", "Alex")


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@dataclass
class Harness:
    loop: asyncio.AbstractEventLoop
    fake: FakeTelegram
    app: App
    channel: TelegramChannel
    bot: Bot
    dispatcher: Dispatcher
    data: Path
    logs: Collect
    ids: itertools.count[int]


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    loop = asyncio.new_event_loop()
    data = tmp_path_factory.mktemp("telegram-properties")
    logs = Collect()
    logging.getLogger().addHandler(logs)
    logging.getLogger().setLevel(logging.DEBUG)

    async def start() -> Harness:
        fake = FakeTelegram()
        await fake.start()
        for chat in CHATS:
            fake.chat(chat)
        fake.chat(GROUP, "supergroup")
        app = create_app(settings_for(fake, data, Keyring.new_key().decode()))
        await app.__aenter__()
        bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(fake.url)))
        channel = TelegramChannel(app.ports(), bot)
        return Harness(loop, fake, app, channel, bot, channel.dispatcher(), data, logs, itertools.count(1))

    running = loop.run_until_complete(start())
    yield running

    async def stop() -> None:
        await running.channel.core.close()
        await running.app.__aexit__(None, None, None)
        await running.bot.session.close()
        await running.fake.stop()

    loop.run_until_complete(stop())
    loop.close()
    logging.getLogger().removeHandler(logs)


@st.composite
def updates(draw: st.DrawFn) -> dict[str, Any]:
    chat = draw(st.sampled_from([*CHATS, GROUP]))
    kind = draw(st.sampled_from(["text", "text", "text", "command", "button", "sticker", "photo", "edit", "voice"]))
    text = draw(
        st.one_of(
            st.text(max_size=200),
            st.sampled_from(
                ["I've been raped", "he's not breathing", "1", "skip", "done", "Start", "1, 2", "x" * 4096]
            ),
        )
    )
    return {"chat": chat, "kind": kind, "text": text, "data": draw(st.text(max_size=70)), "repeat": draw(st.booleans())}


def raw_update(h: Harness, spec: dict[str, Any], update_id: int) -> dict[str, Any]:
    chat = h.fake.chat(spec["chat"])
    message_id = next(h.fake._message_ids[chat.id])
    user = {"id": abs(spec["chat"]) + 7, "is_bot": False, "first_name": "Alex", "username": "alex_private_name"}
    message: dict[str, Any] = {"message_id": message_id, "date": int(time.time()), "chat": chat.as_json(), "from": user}
    kind = spec["kind"]
    if kind == "button":
        buttons = [b for m in chat.messages.values() if m.from_bot for b in m.buttons]
        data = buttons[len(spec["text"]) % len(buttons)][1] if buttons and spec["repeat"] else spec["data"]
        h.fake._pending_callbacks.add(str(update_id))
        bot_message = {"message_id": max(chat.messages, default=1), "date": 0, "chat": chat.as_json(), "from": BOT_USER}
        query = {"id": str(update_id), "from": user, "chat_instance": "ci", "message": bot_message, "data": data}
        return {"update_id": update_id, "callback_query": query}
    from fakes.telegram import Sent

    chat.messages[message_id] = Sent(message_id, False, spec["text"])
    if kind == "command":
        message["text"] = "/" + (spec["text"].split() or ["start"])[0][:30]
    elif kind in ("text", "edit"):
        message["text"] = spec["text"] or "."
    elif kind == "sticker":
        message["sticker"] = {
            "file_id": "f",
            "file_unique_id": "u",
            "type": "regular",
            "width": 1,
            "height": 1,
            "is_animated": False,
            "is_video": False,
        }
    elif kind == "photo":
        message["photo"] = [{"file_id": "f", "file_unique_id": "u", "width": 1, "height": 1}]
    else:
        message["voice"] = {"file_id": "f", "file_unique_id": "u", "duration": 1}
    if kind == "edit":
        message["edit_date"] = int(time.time())
        return {"update_id": update_id, "edited_message": message}
    return {"update_id": update_id, "message": message}


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(st.lists(updates(), min_size=1, max_size=12))
def test_random_updates_never_crash_never_break_telegrams_rules_never_leak(
    harness: Harness, sequence: list[dict[str, Any]]
) -> None:
    async def run() -> None:
        fed: list[dict[str, Any]] = []
        for spec in sequence:
            update = raw_update(harness, spec, next(harness.ids))
            await harness.dispatcher.feed_raw_update(harness.bot, update)
            fed.append(update)
            if spec["repeat"] and fed:  # the same update delivered twice
                await harness.dispatcher.feed_raw_update(harness.bot, fed[-1])

    harness.fake.refusals.clear()
    harness.loop.run_until_complete(run())
    assert harness.fake.refusals == []
    blob = b"".join(p.read_bytes() for p in harness.data.iterdir() if p.is_file())
    for secret in (*[str(c).encode() for c in CHATS], str(abs(GROUP)).encode(), *[n.encode() for n in NAMES]):
        assert secret not in blob
    logged = "\n".join(harness.logs.lines)
    for written in (*[str(c) for c in CHATS], *NAMES, "raped", "breathing"):
        assert written not in logged
