"""The inbox: every update is kept (encrypted, without names) from the moment Telegram is told
it was received until it is handled, so a stop or crash in between loses nothing, and nothing of
it is left in the files once handled."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.channels.telegram.polling import Intake
from bot.channels.telegram.serving import SECRET_HEADER, webhook_receiver
from bot.core.serving import serve
from bot.core.settings import Settings
from fakes.harness import free_port, polling_bot, settings_for
from fakes.telegram import FakeTelegram
from storage import Keyring, StorageError
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


async def test_a_turn_kept_and_answered_that_the_inbox_hands_back_gets_nothing_more(
    fake: FakeTelegram, tmp_path: Path
) -> None:
    """Its answer went out (and was forgotten): it is not said again, and nothing is taken twice.
    An answer that never went out is sent from storage (tests/test_crash.py)."""
    key = Keyring.new_key().decode()
    settings = settings_for(fake, tmp_path / "data", key)
    [tapped], question = await report_started(fake, settings)
    inbox = SQLiteInbox(settings.data_dir / INBOX_FILE, Keyring([key.encode()]))
    await inbox.open()
    await inbox.receive([(tapped, fake.history[tapped])])
    await inbox.close()
    fake.updates.clear()
    spoken = len(fake.bot_texts(CHAT))
    async with polling_bot(settings):
        await fake.settle(1.0)
        assert fake.bot_texts(CHAT)[spoken:] == [], "answered once"
        await fake.user_taps(CHAT, "Robbery or theft")  # and it goes on from that question
        texts = await fake.wait_until_spoken(CHAT, spoken + 2)
    assert texts[spoken].startswith("Noted.") and texts[spoken + 1].startswith(question.split("?")[0])


async def report_started(fake: FakeTelegram, settings: Settings) -> tuple[list[int], str]:
    """A person starts a report; the updates of their two turns, and the question they are at."""
    async with polling_bot(settings):
        await fake.user_sends(CHAT, "/report")
        await fake.wait_until_spoken(CHAT, 1)
        await asyncio.sleep(0.3)
        started = await fake.user_taps(CHAT, "Start")
        question = (await fake.wait_until_spoken(CHAT, 2))[-1]
        await asyncio.sleep(0.3)
    assert question.startswith("What happened?")
    return [started], question


async def after_a_crash_telegram_sends_again(fake: FakeTelegram, settings: Settings, updates: list[int]) -> list[str]:
    """As if the bot kept and answered these turns and died before confirming them, and before
    the inbox's copy was on disk: Telegram sends them again. What the bot says at the next
    start, once it has read them."""
    fake.updates.clear()
    fake.updates.extend(fake.history[u] for u in updates)
    before = max(fake.chat(CHAT).messages, default=0)
    async with polling_bot(settings):
        for _ in range(600):  # until read (and confirmed): then it had its chance to answer
            if not fake.updates:
                break
            await asyncio.sleep(0.05)
        await fake.settle(1.0)
        return [m.text or "" for i, m in fake.chat(CHAT).messages.items() if i > before and m.from_bot]


async def test_turns_kept_and_answered_that_telegram_sends_again_get_nothing_more(
    fake: FakeTelegram, tmp_path: Path
) -> None:
    settings = settings_for(fake, tmp_path / "data", Keyring.new_key().decode())
    updates, _ = await report_started(fake, settings)
    async with polling_bot(settings):
        updates.append(await fake.user_taps(CHAT, "Robbery or theft"))  # a choice: the question stays
        await fake.wait_until_spoken(CHAT, 3)
        await asyncio.sleep(0.3)
    assert await after_a_crash_telegram_sends_again(fake, settings, updates) == []


async def test_emergency_help_already_given_is_not_repeated_when_telegram_sends_it_again(
    fake: FakeTelegram, tmp_path: Path
) -> None:
    settings = settings_for(fake, tmp_path / "data", Keyring.new_key().decode())
    await report_started(fake, settings)
    async with polling_bot(settings):
        emergency = await fake.user_sends(CHAT, "my mate has gone blue and wont respond")
        await fake.wait_until_spoken(CHAT, 3)
        await asyncio.sleep(0.3)
    assert await after_a_crash_telegram_sends_again(fake, settings, [emergency]) == []
    assert sum("call 999 now" in text for text in fake.bot_texts(CHAT)) == 1


async def test_a_quick_exit_carried_out_and_sent_again_leaves_the_chat_as_it_was(
    fake: FakeTelegram, tmp_path: Path
) -> None:
    settings = settings_for(fake, tmp_path / "data", Keyring.new_key().decode())
    await report_started(fake, settings)
    async with polling_bot(settings):
        left = await fake.user_sends(CHAT, "/exit")
        await fake.wait_for_bot(CHAT)
        await asyncio.sleep(0.3)
    assert await after_a_crash_telegram_sends_again(fake, settings, [left]) == []
    assert fake.bot_texts(CHAT) == ["Done."], "the chat shows nothing else"


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


class DiskFullOnce(SQLiteInbox):
    """The inbox's file on a disk that is full for the first write only."""

    full = True

    async def receive(self, updates: Sequence[tuple[int, dict[str, Any]]]) -> None:
        if self.full:
            self.full = False
            raise StorageError("inbox: disk full")
        await super().receive(updates)


async def test_a_webhook_update_sent_again_while_handled_is_answered_200_only_once_kept(tmp_path: Path) -> None:
    inbox = DiskFullOnce(tmp_path / INBOX_FILE, Keyring([Keyring.new_key()]))
    await inbox.open()
    handled: list[dict[str, Any]] = []
    turn_may_end = asyncio.Event()

    async def handle(update: dict[str, Any]) -> None:  # a long turn: a report being kept
        handled.append(update)
        await turn_may_end.wait()

    intake = Intake(handle, inbox, raw=lambda u: u, parse=lambda raw: raw)
    await intake.resume()
    site = web.Application()
    site.router.add_post("/hook", webhook_receiver(intake, "s3cret"))
    update = {"update_id": 41, "message": {"message_id": 1, "date": 0, "chat": {"id": CHAT, "type": "private"}}}
    listen = f"127.0.0.1:{free_port()}"
    async with serve(site, listen, "REACHABLE_WEBHOOK_LISTEN") as where, aiohttp.ClientSession() as http:
        url = f"http://{where}/hook"
        secret = {SECRET_HEADER: "s3cret"}
        async with http.post(url, json=update, headers=secret) as first:
            assert first.status == 503, "not kept: Telegram must send it again"
        async with http.post(url, json=update, headers=secret) as again:  # while the first is still being handled
            assert again.status == 200
        assert [u for u, _ in await inbox.unhandled()] == [41], "kept before Telegram was told"
        turn_may_end.set()
        await intake.close()
    assert len(handled) == 1, "handled once"
    assert await inbox.unhandled() == []
    await inbox.close()
