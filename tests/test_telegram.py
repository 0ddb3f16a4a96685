"""The whole conversation on Telegram, through aiogram's own client and a fake Bot API on 127.0.0.1."""

from __future__ import annotations

import asyncio
import re
import signal
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.core import callbacks, crashpoints
from bot.core.app import App
from bot.core.settings import Settings
from fakes.harness import Person, Running, polling_bot, settings_for, start_bot_process
from fakes.telegram import FakeTelegram
from flows import Engine
from storage import Keyring

CHAT = 7351002211
CODE = re.compile(r"Secret code: ([0-9A-Z]{4}(?:-[0-9A-Z]{4}){3})")


@pytest.fixture
def settings(fake: FakeTelegram, tmp_path: Path) -> Settings:
    return settings_for(fake, tmp_path / "data", Keyring.new_key().decode())


@pytest.fixture
async def running(settings: Settings) -> AsyncIterator[Running]:
    async with polling_bot(settings) as bot:
        yield bot


@pytest.fixture
def app(running: Running) -> App:
    return running.app


@pytest.fixture
def person(fake: FakeTelegram, app: App) -> Person:
    return Person(fake, CHAT)


def rows(settings: Settings, table: str) -> int:
    with sqlite3.connect(settings.data_dir / "reachable.sqlite3") as db:
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


async def answer_report(person: Person, account: str = "He took my phone and my cards.") -> None:
    await person.says("/report")
    await person.taps("Start")
    await person.taps("Sexual assault or rape")
    await person.taps("Robbery or theft")
    await person.taps("Done")
    await person.says("Today")
    await person.taps("In London")
    await person.says("hackney")
    await person.taps("Skip")
    await person.says(account)
    for _ in range(3):
        await person.taps("Skip")


async def test_the_2am_test_on_telegram(person: Person, fake: FakeTelegram) -> None:
    await person.says("/start")
    replies = await person.says("I've been raped")
    assert len(replies) == 1
    assert "999" in replies[0] and "020 3299 6900" in replies[0]
    assert "arrest" not in replies[0].lower()
    assert {"I need help now", "Who can help", "Tell you what happened"} <= set(person.buttons)
    assert fake.refusals == []


async def test_deep_links_open_the_matching_flow(person: Person) -> None:
    assert (await person.says("/start advice"))[-1].startswith("Choose a topic.")
    assert (await person.says("/start report"))[-1].startswith("Before you start:")


async def test_the_command_menu_is_registered_on_start(fake: FakeTelegram, app: App) -> None:
    names = [c["command"] for c in fake.commands[""]]
    assert names[:3] == ["start", "help", "emergency"] and "exit" in names


async def test_a_full_report_is_kept_with_a_code(person: Person, fake: FakeTelegram, settings: Settings) -> None:
    await answer_report(person)
    assert "• In your words: He took my phone and my cards." in person.screen
    await person.taps("Yes, it's right")
    replies = await person.taps("Yes, keep it")
    code = CODE.search("\n".join(replies))
    assert code is not None
    assert rows(settings, "reports") == 1
    assert rows(settings, "drafts") == 0
    assert "Done. The report is erased." in (await person.says(f"/delete {code.group(1)}"))[0]
    assert rows(settings, "reports") == 0
    assert fake.refusals == []


async def test_a_declined_report_leaves_nothing(person: Person, settings: Settings) -> None:
    await answer_report(person)
    await person.taps("Yes, it's right")
    await person.taps("No, don't keep it")
    assert rows(settings, "reports") == 0
    assert rows(settings, "drafts") == 0


async def test_two_answers_typed_at_once_are_read_in_the_order_they_were_sent(
    running: Running, person: Person, fake: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone typing fast sends their next answer before the bot has replied to the last, while
    the disk is slow to write the first: the second waits its turn, not read as the answer to the
    question before."""
    store = running.app.conversations.store
    commit_turn = store.commit_turn

    async def on_a_busy_disk(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0.3)
        return await commit_turn(*args, **kwargs)

    monkeypatch.setattr(store, "commit_turn", on_a_busy_disk)
    await person.says("/report")
    await person.taps("Start")
    assert (await person.says("1, 2"))[-1] == "When did it happen?"
    before = len(fake.bot_texts(CHAT))
    await fake.user_sends(CHAT, "1")  # today
    await fake.user_sends(CHAT, "2")  # somewhere else
    replies = (await fake.wait_until_spoken(CHAT, before + 2, timeout=20))[before:]
    assert replies[0] == "Where did it happen?"
    assert replies[1].startswith("Were any drugs or drink involved?")


async def test_exit_mid_report_deletes_every_message_of_both_sides(person: Person, fake: FakeTelegram) -> None:
    await person.says("/start")
    await person.says("/report")
    await person.taps("Start")
    await person.says("1")
    assert len(fake.chat(CHAT).messages) > 6
    await person.says("/exit")
    left = list(fake.chat(CHAT).messages.values())
    assert [(m.from_bot, m.text) for m in left] == [(True, "Done.")]
    replies = await person.says("hello")
    assert "not anonymous" in replies[0]  # starts fresh
    assert fake.refusals == []


async def test_a_quick_exit_is_committed_only_once_every_message_it_deletes_is_written_down(
    running: Running, person: Person, fake: FakeTelegram, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the process dies the instant a quick exit is committed, the restart must still find
    every message to delete: their ids are in the database by then, not waiting for a batch."""
    monkeypatch.setattr(running.core.ledger, "every", 3600)  # no batch comes meanwhile
    await person.says("/report")
    await person.taps("Start")
    await person.says("1")
    await fake.settle(0.2)
    shown = len(fake.chat(CHAT).messages)
    written_when_committed: list[int] = []
    crashpoints.arm("after_commit:exit", lambda: written_when_committed.append(rows(settings, "chat_messages")))
    try:
        await person.says("/exit")
    finally:
        crashpoints.disarm()
    assert written_when_committed == [shown]
    assert [m.text for m in fake.chat(CHAT).messages.values()] == ["Done."]


async def test_leave_now_button_works_like_exit(person: Person, fake: FakeTelegram) -> None:
    await person.says("/report")
    await person.taps("Leave now")
    assert [m.text for m in fake.chat(CHAT).messages.values()] == ["Done."]


async def test_report_in_a_group_gets_one_private_chat_line_and_runs_nothing(
    fake: FakeTelegram, app: App, settings: Settings
) -> None:
    group = -100200300
    fake.chat(group, "supergroup")
    await fake.user_sends(group, "/report", kind="supergroup", user_id=55)
    texts = await fake.wait_for_bot(group, 1)
    assert texts == [app.responses.text("en", "group.private_only")]
    await fake.user_sends(group, "/report", kind="supergroup", user_id=56)
    await fake.user_sends(group, "hello everyone", kind="supergroup", user_id=56)
    await fake.settle(0.5)
    assert len(fake.bot_texts(group)) == 1
    assert rows(settings, "drafts") == 0 and rows(settings, "chat_messages") == 0


async def test_stickers_photos_and_voice_mid_report_get_a_gentle_reask(person: Person, fake: FakeTelegram) -> None:
    await person.says("/report")
    await person.taps("Start")
    await person.taps("Done")
    for kind in ("sticker", "photo", "voice", "location"):
        replies = await person.sends(kind)
        assert "I can only read text" in replies[0]
        assert replies[-1] == "When did it happen?"
    assert fake.refusals == []


async def test_forged_and_stale_buttons_get_the_current_question(person: Person, fake: FakeTelegram) -> None:
    await person.says("/report")
    await person.taps("Start")
    for data in ("1|report.when|today", "2|x|y", "garbage", "1|report.what|../../etc", "1||"):
        replies = await person.taps_data(data)
        assert "That button is out of date" in replies[0]
        assert replies[-1].startswith("What happened?")
    assert fake.answered_callbacks and fake.refusals == []


@pytest.mark.parametrize("step", ["report.intro", "menu"])
async def test_a_redelivered_update_is_handled_once(
    person: Person, fake: FakeTelegram, running: Running, step: str
) -> None:
    await person.says("/report" if step == "report.intro" else "/start")
    label = "Start" if step == "report.intro" else "Advice and staying safer"
    update_id = await fake.user_taps(CHAT, label)
    await fake.wait_for_bot(CHAT, 1)
    await fake.settle()
    spoken = len(fake.bot_texts(CHAT))
    await running.feed(fake.history[update_id])
    await fake.settle(0.5)
    assert len(fake.bot_texts(CHAT)) == spoken


async def test_edited_messages_are_ignored(person: Person, fake: FakeTelegram) -> None:
    await person.says("/start")
    spoken = len(fake.bot_texts(CHAT))
    await fake.user_edits(CHAT, 1, "I've been raped")
    await fake.settle(0.5)
    assert len(fake.bot_texts(CHAT)) == spoken
    assert "What would you like to do?" in (await person.says("/help"))[-1]


async def test_telegram_ids_and_names_never_reach_storage_or_logs(
    person: Person, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    await answer_report(person, account="Ocelot-2209 at the party")
    await person.taps("Yes, it's right")
    await person.taps("Yes, keep it")
    blob = b"".join(p.read_bytes() for p in settings.data_dir.iterdir())
    for stored in (str(CHAT).encode(), b"alex_private_name", b"Ocelot-2209"):
        assert stored not in blob
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for written in (str(CHAT), "alex_private_name", "Alex", "Ocelot"):
        assert written not in logged


def test_every_button_fits_in_telegrams_64_bytes(engine: Engine) -> None:
    for step in engine.steps.values():
        keys = [o.key for o in step.options] + ["skip", "done", "leave", "back"]
        keys += [q.key for q in engine.steps.questions()] if step.dynamic else []
        for key in keys:
            assert callbacks.decode(callbacks.encode(step.key, key)).option == key


@pytest.mark.parametrize("framework", ["aiogram", "ptb"])
async def test_webhook_is_served_on_the_url_path_refuses_updates_without_the_secret_and_answers_with_it(
    fake: FakeTelegram, tmp_path: Path, unused_tcp_port: int, framework: str
) -> None:
    settings = settings_for(
        fake,
        tmp_path / "data",
        Keyring.new_key().decode(),
        REACHABLE_WEBHOOK_LISTEN=f"127.0.0.1:{unused_tcp_port}",
        REACHABLE_WEBHOOK_SECRET="s3cret-header-value-0123456789",
        REACHABLE_WEBHOOK_URL="https://example.invalid/hooks/reachable-tg",
    )
    process = await start_bot_process(settings, "--webhook", "--framework", framework)
    # Regression: the bot listened on /telegram whatever the URL said, and every update was lost.
    url = f"http://127.0.0.1:{unused_tcp_port}/hooks/reachable-tg"
    fake.chat(CHAT)
    update_id = await fake.user_sends(CHAT, "/start")
    update = fake.history[update_id]
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                try:
                    async with session.post(url, json=update) as response:
                        status = response.status
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            assert status == 401
            wrong = {"X-Telegram-Bot-Api-Secret-Token": "guess"}
            async with session.post(url, json=update, headers=wrong) as response:
                assert response.status == 401
            await fake.settle(0.5)
            assert fake.bot_texts(CHAT) == []
            right = {"X-Telegram-Bot-Api-Secret-Token": "s3cret-header-value-0123456789"}
            async with session.post(url, data=b"not an update", headers=right) as response:
                assert response.status == 400
            async with session.post(url, json=update, headers=right) as response:
                assert response.status == 200  # kept in the inbox, answered at once, then handled
            texts = await fake.wait_until_spoken(CHAT, 2)
        assert "not anonymous" in texts[0]
        assert fake.webhook["url"] == "https://example.invalid/hooks/reachable-tg"
        assert fake.webhook["secret_token"] == "s3cret-header-value-0123456789"
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 20) == 0


async def test_killed_mid_report_the_bot_continues_at_the_same_question(fake: FakeTelegram, tmp_path: Path) -> None:
    settings = settings_for(fake, tmp_path / "data", Keyring.new_key().decode())
    person = Person(fake, CHAT)
    process = await start_bot_process(settings)
    try:
        await person.says("/report")
        await person.taps("Start")
        await person.taps("Violence")
        await person.taps("Done")
        assert person.screen.endswith("When did it happen?")
        process.send_signal(signal.SIGKILL)
        await process.wait()
        process = await start_bot_process(settings)
        replies = await person.taps("This week")
        assert replies[-1] == "Where did it happen?"
        for _ in range(6):
            await person.taps("Skip")
        assert "• What happened: Violence" in person.screen and "• When: This week" in person.screen
        assert fake.refusals == []
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 20) == 0  # a clean shutdown
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 20)


async def test_a_reply_that_telegram_rate_limits_is_sent_after_the_wait_not_dropped(
    person: Person, fake: FakeTelegram
) -> None:
    from fakes.telegram import Params, too_many_requests

    limited = [True]

    async def once(method: str, params: Params) -> object:
        if method == "sendMessage" and limited[0]:
            limited[0] = False
            return too_many_requests(1)
        return None

    fake.fault = once  # type: ignore[assignment]
    replies = await person.says("/services")
    assert replies[0].startswith("These services can help.")
    assert not limited[0]
