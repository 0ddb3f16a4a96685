"""The inbox: every update is kept (encrypted, without names) from the moment Telegram is told
it was received until it is handled, so a stop or crash in between loses nothing, and nothing of
it is left in the files once handled."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from fakes.harness import polling_bot, settings_for
from fakes.telegram import FakeTelegram
from storage import Keyring
from storage.inbox import INBOX_FILE, SQLiteInbox

CHAT = 7_300_400_500
IN_DANGER = 7_300_400_999


def files_of(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file())


async def test_an_update_confirmed_but_not_handled_before_a_crash_is_answered_at_the_next_start(
    fake: FakeTelegram, tmp_path: Path
) -> None:
    key = Keyring.new_key().decode()
    settings = settings_for(fake, tmp_path / "data", key)
    update_id = await fake.user_sends(CHAT, "/start")
    # The bot read it and told Telegram so, then died before answering: Telegram will not send
    # it again; only the inbox has it.
    inbox = SQLiteInbox(settings.data_dir / INBOX_FILE, Keyring([key.encode()]))
    await inbox.open()
    await inbox.receive([(update_id, fake.history[update_id])])
    await inbox.close()
    fake.updates.clear()
    async with polling_bot(settings):
        texts = await fake.wait_until_spoken(CHAT, 1)
        assert "not anonymous" in texts[0]
        await asyncio.sleep(0.3)
        await fake.user_sends(CHAT, "/menu")  # and it goes on from there, nothing handled twice
        texts = await fake.wait_until_spoken(CHAT, 2)
    await inbox.open()
    assert await inbox.unhandled() == []
    await inbox.close()


async def test_a_turn_kept_before_a_crash_whose_reply_never_left_gets_its_question_again(
    fake: FakeTelegram, tmp_path: Path
) -> None:
    key = Keyring.new_key().decode()
    settings = settings_for(fake, tmp_path / "data", key)
    async with polling_bot(settings):
        await fake.user_sends(CHAT, "/report")
        await fake.wait_until_spoken(CHAT, 1)
        await asyncio.sleep(0.3)
        tapped = await fake.user_taps(CHAT, "Start")
        question = (await fake.wait_until_spoken(CHAT, 2))[-1]
        await asyncio.sleep(0.3)
    assert question.startswith("What happened?")
    # As if the bot died after keeping the turn but before its reply left: the update is still
    # in the inbox, and Telegram will not send it again.
    inbox = SQLiteInbox(settings.data_dir / INBOX_FILE, Keyring([key.encode()]))
    await inbox.open()
    await inbox.receive([(tapped, fake.history[tapped])])
    await inbox.close()
    fake.updates.clear()
    spoken = len(fake.bot_texts(CHAT))
    async with polling_bot(settings):
        texts = await fake.wait_until_spoken(CHAT, spoken + 1)
        await asyncio.sleep(0.5)
        assert fake.bot_texts(CHAT)[spoken:] == [question], "asked again, once, and the turn not taken twice"
        await fake.user_taps(CHAT, "Robbery or theft")  # and it goes on from that question
        await fake.wait_until_spoken(CHAT, spoken + 2)
    assert texts[-1] == question


async def test_the_inbox_keeps_no_name_and_no_plain_word_and_forgets_what_is_handled(tmp_path: Path) -> None:
    keyring = Keyring([Keyring.new_key()])
    inbox = SQLiteInbox(tmp_path / INBOX_FILE, keyring)
    await inbox.open()
    person = {"id": 42, "is_bot": False, "first_name": "Alexander", "last_name": "Private", "username": "alex_p"}
    chat = {"id": 42, "type": "private", **person}
    message = {"message_id": 1, "date": 0, "chat": chat, "from": person, "text": "Marker-Delta hurt me"}
    update = {"update_id": 9, "message": message}
    await inbox.receive([(9, update)])
    [(update_id, kept)] = await inbox.unhandled()
    assert update_id == 9 and kept["message"]["text"] == "Marker-Delta hurt me"
    assert kept["message"]["from"] == {"id": 42, "is_bot": False, "first_name": "-"}
    assert b"Marker-Delta" not in files_of(tmp_path) and b"Alexander" not in files_of(tmp_path)
    await inbox.handled([9])
    assert await inbox.unhandled() == []
    await inbox.close()
    opened = list(keyring.tokens_in(files_of(tmp_path)))
    assert not [p for p in opened if b"Marker-Delta" in p], "a handled update is gone, not just unlisted"


async def test_an_emergency_behind_hundreds_of_people_waiting_for_replies_is_read_and_answered_first(
    fake: FakeTelegram, tmp_path: Path
) -> None:
    """Telegram hands out 100 updates at a time from the oldest unconfirmed one, and lets a bot
    send about 30 messages a second: 300 people waiting must not keep the 301st message unread."""
    fake.enforce_flood_limits()
    settings = settings_for(fake, tmp_path / "data", Keyring.new_key().decode())
    async with polling_bot(settings):
        for n in range(300):
            await fake.user_sends(CHAT + n, "/start")
        await asyncio.sleep(1.0)  # they are being answered, 30 a second
        await fake.user_sends(IN_DANGER, "my mate has gone blue and wont respond")
        texts = await fake.wait_until_spoken(IN_DANGER, 1, timeout=30)
        waiting = sum(1 for n in range(300) if not fake.bot_texts(CHAT + n))
        for _ in range(300):  # and then everyone else, in turn
            if all(fake.bot_texts(CHAT + n) for n in range(300)):
                break
            await asyncio.sleep(0.1)
        unanswered = [n for n in range(300) if not fake.bot_texts(CHAT + n)]
    assert "call 999 now" in texts[0]
    assert unanswered == []
    assert waiting > 100, f"help went out after all but {waiting} of the 300 who wrote before"
    assert fake.too_many == 0, f"never past Telegram's limits: {fake.too_many_by}"


async def test_a_message_with_a_link_is_kept_and_answered_and_the_bot_goes_on(
    fake: FakeTelegram, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: aiogram's placeholders for what Telegram left out could not be written to the
    inbox, and the first message with a link preview stopped the bot."""
    settings = settings_for(fake, tmp_path / "data", Keyring.new_key().decode())
    message = fake._message(
        fake.chat(CHAT), CHAT, "en", text="see https://example.org", link_preview_options={"is_disabled": True}
    )
    await fake.push({"message": message})
    async with polling_bot(settings):
        first = await fake.wait_until_spoken(CHAT, 1)
        await fake.user_sends(CHAT, "/start")
        texts = await fake.wait_until_spoken(CHAT, len(first) + 1)
    assert len(texts) > len(first)  # both answered: the bot is still reading
    assert not [r for r in caplog.records if "cannot be kept" in r.getMessage()]  # and kept against a crash
