"""The fake Bot API refuses what Telegram refuses, so the bot's tests mean something."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest, TelegramUnauthorizedError
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from fakes.telegram import TOKEN, FakeTelegram


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    client = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(fake.url)))
    yield client
    await client.session.close()


async def test_text_over_4096_characters_is_refused(fake: FakeTelegram, bot: Bot) -> None:
    fake.chat(1)
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(1, "x" * 4097)
    assert (await bot.send_message(1, "x" * 4096)).message_id == 1


async def test_callback_data_over_64_bytes_is_refused(fake: FakeTelegram, bot: Bot) -> None:
    fake.chat(1)
    markup = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="b", callback_data="é" * 33)]])
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(1, "hi", reply_markup=markup)


async def test_deleting_a_message_that_does_not_exist_is_refused(fake: FakeTelegram, bot: Bot) -> None:
    fake.chat(1)
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(1, 99)
    assert await bot.delete_messages(1, [98, 99])  # the bulk call skips missing ones, as Telegram does


async def test_empty_text_unknown_chats_and_wrong_tokens_are_refused(fake: FakeTelegram, bot: Bot) -> None:
    fake.chat(1)
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(404, "hello")
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(1, "   ")
    stranger = Bot("999:wrong", session=AiohttpSession(api=TelegramAPIServer.from_base(fake.url)))
    with pytest.raises(TelegramUnauthorizedError):
        await stranger.get_me()
    await stranger.session.close()


async def test_unknown_methods_and_ill_typed_parameters_are_refused(fake: FakeTelegram, bot: Bot) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{fake.url}/bot{TOKEN}/sendTeleport", json={}) as response:
            assert response.status == 404
        async with session.post(f"{fake.url}/bot{TOKEN}/sendMessage", data={"chat_id": "abc", "text": "x"}) as response:
            assert response.status == 400
        async with session.post(f"{fake.url}/bot{TOKEN}/sendMessage", data={"text": "x"}) as response:
            assert response.status == 400
            assert "chat_id is empty" in (await response.json())["description"]
    assert ("sendTeleport", "Not Found") in fake.refusals
