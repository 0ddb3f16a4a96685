"""Wrong secret codes in bulk cannot hold up keeping a report: the worst case, 1,000 web
sessions each sending a wrong code that shares a kept report's tag (so each could cost a slow
Argon2 verification), while a person keeps their report."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.delivery import TokenBucket
from fakes.harness import web_chat_served
from fakes.web import WebPerson, read
from flows.codes import ALPHABET
from storage import Keyring, crypto

CODE = re.compile(r"Secret code: ([0-9A-Z]{4}(?:-[0-9A-Z]{4}){3})")
GUESSERS = 1000


class Watched:
    """The store's code hasher, noting how many verifications were still waiting each time a
    new report's code began to be hashed."""

    def __init__(self, hasher: Any, pool: Any) -> None:
        self.hasher, self.pool = hasher, pool
        self.waiting_at_keep: list[int] = []
        self.verified = 0
        self.loop = asyncio.get_running_loop()
        self.begun = asyncio.Event()  # twenty verifications done: the queue is full of them

    def hash(self, code: str) -> str:
        self.waiting_at_keep.append(self.pool.waiting())
        return str(self.hasher.hash(code))

    def verify(self, hashed: str, code: str) -> bool:
        self.verified += 1
        if self.verified == 20:
            self.loop.call_soon_threadsafe(self.begun.set)
        return bool(self.hasher.verify(hashed, code))


def codes_sharing_a_tag(secret: bytes, code: str, count: int) -> list[str]:
    """Wrong codes whose tag is ``code``'s (found with the store's secret: the worst case)."""
    wanted, n = crypto.code_tag(secret, code), 0
    found: list[str] = []
    while len(found) < count:
        n += 1
        chars = "".join(ALPHABET[(n >> (5 * i)) % 32] for i in range(16))
        guess = "-".join(chars[i : i + 4] for i in range(0, 16, 4))
        if guess != code and crypto.code_tag(secret, guess) == wanted:
            found.append(guess)
    return found


async def keep_up_to_the_last_tap(person: WebPerson) -> None:
    await person.say("/report")
    for label in ("Start", "Robbery or theft", "Done", *["Skip"] * 7, "Yes, it's right"):
        await person.tap(label)


async def test_a_thousand_wrong_codes_sharing_a_tag_do_not_hold_up_keeping_a_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(crypto, "TAG_BYTES", 1)  # so that codes sharing a tag are quick to find here
    key = Keyring.new_key().decode()
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client:
        async with web_chat_served(tmp_path / "data", key) as (app, base, chat):
            chat.everyone_new = TokenBucket(1e6, 1e6)
            first, person = WebPerson(base), WebPerson(base)
            try:
                await first.open()
                await keep_up_to_the_last_tap(first)
                await first.tap("Yes, keep it")  # nobody to send it to here: kept at once
                kept = CODE.findall("\n".join(i.text for i in first.page.items))[-1]
                store = app.store
                watched = Watched(store.hasher, store._hashing)
                store.hasher = watched
                guesses = codes_sharing_a_tag(store._tag_secret, kept, GUESSERS)
                await person.open()
                await keep_up_to_the_last_tap(person)

                async def guess(code: str) -> str:
                    async with client.get(f"{base}/") as answer:
                        cookie = answer.cookies["__Host-reachable"].value
                        page = read(await answer.text())
                    headers = {"Cookie": f"__Host-reachable={cookie}"}
                    data = {"csrf": page.csrf, "text": f"/check {code}"}
                    async with client.post(f"{base}/say", data=data, headers=headers) as answer:
                        return await answer.text()

                guessing = [asyncio.create_task(guess(code)) for code in guesses]
                await watched.begun.wait()
                started = time.perf_counter()
                await person.tap("Yes, keep it")
                took = time.perf_counter() - started
                mine = "\n".join(i.text for i in person.page.items)
                waiting = store._hashing.waiting()
            finally:
                await first.close()
                await person.close()
            closing = time.perf_counter()  # stopping now, with wrong codes still queued
        closed = time.perf_counter() - closing
        answers = [a for a in await asyncio.gather(*guessing, return_exceptions=True) if isinstance(a, str)]
    assert CODE.findall(mine), "the person was given their code"
    assert watched.waiting_at_keep[-1] > 0, "their code was made while wrong codes still waited their turn"
    assert waiting > 0 and store._hashing.stopped and store._hashing.waiting() == 0, "stopped, nothing left queued"
    assert not any(kept in a for a in answers)
    print(
        f"\nguessing: keep took {took * 1000:.0f} ms with {watched.waiting_at_keep[-1]} verifications waiting; "
        f"{watched.verified} verified; stopped in {closed:.1f} s with {waiting} waiting"
    )


async def test_wrong_codes_are_limited_per_chat_and_for_everyone(tmp_path: Path) -> None:
    key = Keyring.new_key().decode()
    async with web_chat_served(tmp_path / "data", key) as (app, base, _chat):
        watched = Watched(app.store.hasher, app.store._hashing)
        app.store.hasher = watched
        person, other = WebPerson(base), WebPerson(base)
        try:
            await person.open()
            await other.open()
            for n in range(5):
                await person.say(f"/check 7K2P-QX9D-M4TA-000{n}")
                assert "No report matches that code" in person.page.items[-1].text or any(
                    "No report matches" in i.text for i in person.page.items[-2:]
                )
            await person.say("/check 7K2P-QX9D-M4TA-0009")
            assert any("Too many codes were tried" in i.text for i in person.page.items[-2:]), "the sixth: wait"
            await other.say("/check 7K2P-QX9D-M4TA-0010")
            assert any("No report matches" in i.text for i in other.page.items[-2:]), "someone else still checks"
            app.conversations.codes._overall = (0.0, time.monotonic())  # everyone's wrong codes used up
            await other.say("/check 7K2P-QX9D-M4TA-0011")
            assert any("Too many codes were tried" in i.text for i in other.page.items[-2:])
        finally:
            await person.close()
            await other.close()
