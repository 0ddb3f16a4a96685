"""The conversation service with real storage: what reaches the disk and the logs, and what
happens when storage fails."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.core.app import App, create_app
from bot.core.guards import FloodGuard
from bot.core.settings import Settings
from flows.events import Choice, Command, Text
from storage import ChatKey, Keyring, NewReport, SQLiteStore, StorageError

SENTENCE = "Marigold-3318 was at the sauna"
CHAT = 99887766554


@pytest.fixture
def key() -> str:
    return Keyring.new_key().decode()


@pytest.fixture
async def app(tmp_path: Path, key: str) -> AsyncIterator[App]:
    settings = Settings.from_environ({"REACHABLE_DATA_DIR": str(tmp_path), "REACHABLE_ENCRYPTION_KEY": key})
    async with create_app(settings) as running:
        # These tests answer faster than any person: the flood limit is tested in test_flood.py.
        running.conversations.flood = FloodGuard(burst=10_000)
        yield running


async def say(app: App, *events: Text | Command | Choice | str) -> str:
    said: list[str] = []
    for event in events:
        if isinstance(event, str):
            from flows.events import parse_typed

            event = parse_typed(event)
        delivery = await app.conversations.handle("test", CHAT, event)
        said.extend(m.text for m in delivery.messages)
    return "\n".join(said)


async def fill_report(app: App) -> None:
    await say(app, "/report", "1", "1", "done", "skip", "skip", "skip", SENTENCE, "skip", "skip", "skip")


async def test_retention_is_enforced_when_the_app_starts(tmp_path: Path, key: str) -> None:
    past = time.time() - 91 * 86400
    async with SQLiteStore(tmp_path / "reachable.sqlite3", Keyring([key.encode()]), clock=lambda: past) as store:
        await store.add_report(
            NewReport("OLD0-0001", "7K2P-QX9D-M4TA-8BWE", {"account": "old"}, ("assault",), True, None, False, 1)
        )
    settings = Settings.from_environ({"REACHABLE_DATA_DIR": str(tmp_path), "REACHABLE_ENCRYPTION_KEY": key})
    async with create_app(settings) as app:
        assert await app.store.get_report("OLD0-0001") is None
        assert sum((await app.store.counts()).values()) == 1


async def test_exit_and_cancel_remove_the_stored_draft(app: App) -> None:
    key = app.conversations.key("test", CHAT)
    await fill_report(app)
    assert await app.store.load_draft(key) is not None
    delivery = await app.conversations.handle("test", CHAT, Command("exit"))
    assert delivery.wipe
    assert await app.store.load_draft(key) is None
    await fill_report(app)
    await say(app, "/cancel")
    assert await app.store.load_draft(key) is None


async def test_nobody_who_only_reads_the_menu_leaves_a_row(app: App) -> None:
    await say(app, "/start", "2", "3", "/services", "/emergency")
    assert await app.store.load_draft(app.conversations.key("test", CHAT)) is None


async def test_logs_carry_no_text_and_no_chat_id(app: App, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await fill_report(app)
    await say(app, "1", "1", "I've been raped", "/delete 7K2P-QX9D-M4TA-8BWE")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "turn event=" in logged
    assert SENTENCE not in logged and "Marigold" not in logged
    assert str(CHAT) not in logged
    assert "raped" not in logged and "7K2P" not in logged


class FailingStore(SQLiteStore):
    """Storing a report fails (a full disk); drafts still work."""

    async def commit_turn(self, key: ChatKey | None, **writes: Any) -> bool:
        if writes.get("report") is not None:
            raise StorageError("disk full")
        return await super().commit_turn(key, **writes)


async def test_when_storing_fails_no_code_is_shown_and_the_answers_are_kept(tmp_path: Path, key: str) -> None:
    settings = Settings.from_environ({"REACHABLE_DATA_DIR": str(tmp_path), "REACHABLE_ENCRYPTION_KEY": key})
    failing = FailingStore(tmp_path / "reachable.sqlite3", Keyring([key.encode()]))
    async with create_app(settings, store=failing) as app:
        await fill_report(app)
        await say(app, "1")
        said = await say(app, "1")
        assert "something went wrong on our side" in said
        assert "Secret code" not in said
        assert "Shall we keep this summary?" in said
        state = await app.store.load_draft(app.conversations.key("test", CHAT))
        assert state is not None and SENTENCE.encode() in state


async def test_a_redelivered_update_is_handled_once(app: App) -> None:
    await fill_report(app)
    await say(app, "1")
    first = await app.conversations.handle("test", CHAT, Text("1"), update_id=500)
    again = await app.conversations.handle("test", CHAT, Text("1"), update_id=500)
    assert "Secret code" in "\n".join(m.text for m in first.messages)
    assert again.duplicate and again.messages == ()
    assert [k for k, _ in await app.store.audit_kinds()] == ["report_stored"]


async def test_telegram_language_picks_the_starting_language_only_when_available(app: App) -> None:
    delivery = await app.conversations.handle("test", 1, Command("start"), locale_hint="xx-YY")
    assert "not anonymous" in delivery.messages[0].text


async def test_a_report_erased_elsewhere_meanwhile_is_said_to_be_gone_not_erased(app: App) -> None:
    """Regression: erasing and later choices are written with the turn; a report found gone at
    that moment writes nothing, and the person is told it is gone."""
    await fill_report(app)
    said = await say(app, "1", "1")
    code = said.split("Secret code: ")[1].split()[0]
    assert "What would you like to do with your report?" in await say(app, f"/check {code}")
    elsewhere = await app.conversations.handle("test", CHAT + 1, Command("delete", code))
    assert "The report is erased." in elsewhere.messages[0].text
    said = await say(app, "Erase my report")
    assert "That report is no longer here" in said and "The report is erased." not in said
    assert [k for k, _ in await app.store.audit_kinds()].count("report_withdrawn") == 1
