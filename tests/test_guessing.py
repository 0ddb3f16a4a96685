"""Wrong secret codes in bulk cannot hold up keeping a report: the worst case, 1,000 web
sessions each sending a wrong code that shares a kept report's tag (so each could cost a slow
Argon2 verification), while a person keeps their report."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from bot.core.delivery import TokenBucket
from fakes.harness import web_chat_served
from fakes.web import WebPerson
from fakes.web_load import CODE, Watched, guess_while_a_person_keeps
from storage import Keyring, crypto

GUESSERS = 1000


async def test_a_thousand_wrong_codes_sharing_a_tag_do_not_hold_up_keeping_a_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(crypto, "TAG_BYTES", 1)  # so that codes sharing a tag are quick to find here
    key = Keyring.new_key().decode()
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client:
        async with web_chat_served(tmp_path / "data", key) as (app, base, chat):
            chat.everyone_new = TokenBucket(1e6, 1e6)
            guessed = await guess_while_a_person_keeps(app, base, client, GUESSERS)
        # stopped, with wrong codes still queued
        answers = [a for a in await asyncio.gather(*guessed.guessing, return_exceptions=True) if isinstance(a, str)]
    pool = app.store._hashing
    assert CODE.findall(guessed.said), "the person was given their code"
    assert guessed.watched.waiting_at_keep[-1] > 0, "their code was made while wrong codes still waited their turn"
    assert guessed.waiting > 0 and pool.stopped and pool.waiting() == 0, "stopped, nothing left queued"
    assert not any(guessed.kept in a for a in answers)


async def test_wrong_codes_are_limited_per_chat_and_for_everyone(tmp_path: Path) -> None:
    key = Keyring.new_key().decode()
    async with web_chat_served(tmp_path / "data", key) as (app, base, _chat):
        watched = Watched(app.store.hasher, app.store._hashing)
        app.store.hasher = watched
        person, other = WebPerson(base), WebPerson(base)

        def told(someone: WebPerson, words: str) -> bool:
            return any(words in item.text for item in someone.page.items[-2:])

        try:
            await person.open()
            await other.open()
            for n in range(5):
                await person.say(f"/check 7K2P-QX9D-M4TA-000{n}")
                assert told(person, "No report matches that code")
            await person.say("/check 7K2P-QX9D-M4TA-0009")
            assert told(person, "Too many codes were tried"), "the sixth wrong code: wait"
            await other.say("/check 7K2P-QX9D-M4TA-0010")
            assert told(other, "No report matches"), "someone else still checks theirs"
            app.conversations.codes._overall = (0.0, time.monotonic())  # everyone's wrong codes used up
            await other.say("/check 7K2P-QX9D-M4TA-0011")
            assert told(other, "Too many codes were tried")
        finally:
            await person.close()
            await other.close()
