"""The aiogram bot reads the Bot API's answers with pydantic types it makes once, not again after
every garbage collection (each made anew held the event loop for 4-5 ms; `make bench` counts it)."""

from __future__ import annotations

import gc
from collections import Counter
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.methods import GetUpdates, SendMessage
from pydantic._internal import _generics

from bot.channels.telegram.aiogram_run import ResponseTypesKept

ANSWERS = {
    GetUpdates: '{"ok": true, "result": []}',
    SendMessage: '{"ok": true, "result": {"message_id": 7, "date": 0, "chat": {"id": 1, "type": "private"}}}',
}


def types_made_over_three_rounds(session: AiohttpSession, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    made: Counter[str] = Counter()
    build = _generics.create_generic_submodel

    def counted(name: str, *args: Any) -> Any:
        made[name] += 1
        return build(name, *args)

    monkeypatch.setattr(_generics, "create_generic_submodel", counted)
    bot = Bot("123456:" + "A" * 35, session=session)
    for _ in range(3):
        updates = session.check_response(bot, GetUpdates(), 200, ANSWERS[GetUpdates])
        sent = session.check_response(bot, SendMessage(chat_id=1, text="hello"), 200, ANSWERS[SendMessage])
        assert updates.result == [] and sent.result is not None and sent.result.message_id == 7
        del updates, sent
        gc.collect()  # what a full collection does between two calls in a running bot
    return made


def test_each_kind_of_answer_is_read_with_a_type_made_at_most_once(monkeypatch: pytest.MonkeyPatch) -> None:
    made = types_made_over_three_rounds(ResponseTypesKept(), monkeypatch)
    assert made["Response[list[Update]]"] <= 1 and made["Response[Message]"] <= 1, dict(made)


def test_aiogram_alone_makes_them_again_after_each_collection(monkeypatch: pytest.MonkeyPatch) -> None:
    """Why the session above exists: if aiogram or pydantic come to keep them, it can go."""
    made = types_made_over_three_rounds(AiohttpSession(), monkeypatch)
    assert made["Response[list[Update]]"] >= 2, dict(made)
