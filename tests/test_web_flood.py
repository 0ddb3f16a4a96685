"""The web chat when someone floods it: one client making sessions as fast as it can, in a
process of its own, while a person goes on with their conversation; and memory, measured."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from bot.transport import Button
from bot.web import MAX_SESSIONS, MEMORY_BOUND, Sessions
from fakes.harness import web_chat_served
from fakes.web import WebPerson
from storage import Keyring

FLOODER = """
import asyncio, json, sys, time
import aiohttp

async def main(base: str, seconds: float) -> None:
    end = time.monotonic() + seconds
    counts: dict[str, int] = {}

    async def loop() -> None:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client:
            while time.monotonic() < end:
                try:
                    async with client.get(base + "/") as answer:
                        await answer.read()
                        counts[str(answer.status)] = counts.get(str(answer.status), 0) + 1
                except aiohttp.ClientError:
                    counts["failed"] = counts.get("failed", 0) + 1

    await asyncio.gather(*(loop() for _ in range(8)))
    print(json.dumps(counts))

asyncio.run(main(sys.argv[1], float(sys.argv[2])))
"""
SECONDS = 30.0


def resident() -> int:
    """This process's resident memory now, in bytes."""
    with open(f"/proc/{os.getpid()}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads /proc")
async def test_a_client_making_sessions_for_30_seconds_never_ends_a_persons_chat(tmp_path: Path) -> None:
    key = Keyring.new_key().decode()
    async with web_chat_served(tmp_path / "data", key, real_rate_limits=True) as (_, base, chat):
        person = WebPerson(base)
        try:
            await person.open()
            before = resident()
            flooder = await asyncio.create_subprocess_exec(
                sys.executable, "-c", FLOODER, base, str(SECONDS), stdout=asyncio.subprocess.PIPE
            )
            said, took, statuses = 0, [], set()
            turns = ("/services", "/advice", "/report", "Start", "Robbery or theft", "Done", "This week")
            ends = time.monotonic() + SECONDS - 2
            while time.monotonic() < ends:
                words = turns[said % len(turns)]
                started = time.perf_counter()
                if person.page.buttons and any(label == words for label, _ in person.page.buttons):
                    await person.tap(words)
                else:
                    await person.say(words)
                took.append(time.perf_counter() - started)
                statuses.add(person.status)
                assert person.page.items[-1].mine is False, f"{words!r} was answered"
                said += 1
                await asyncio.sleep(1.0)  # a person, not a script: about a message a second
            out, _ = await flooder.communicate()
            counts = json.loads(out)
            grown = resident() - before
        finally:
            await person.close()
    assert statuses == {200}, "every message answered: never refused, never ended"
    assert said >= 15
    assert int(counts.get("200", 0)) <= 20 + SECONDS * 0.2 + 1, "the flooder got a few new chats, then waited"
    assert sum(counts.values()) > 500, "the flood really was one"
    assert len(chat.sessions) <= 30
    assert grown < MEMORY_BOUND
    p99 = statistics.quantiles(took, n=100)[98] if len(took) >= 2 else took[0]
    print(f"\nflood: {sum(counts.values())} requests {counts}; the person: {said} messages, p99 {p99 * 1000:.0f} ms")


def test_the_sessions_stay_within_their_memory_bound_when_all_are_full() -> None:
    keyring = Keyring([Keyring.new_key()])
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        sessions = Sessions(keyring.session_ids)
        options = [Button(f"Option number {n}", f"v1|report.what|option{n}") for n in range(8)]
        for n in range(MAX_SESSIONS + 200):
            session = sessions.new()
            if session is None:
                break
            sessions.using(session)
            for turn in range(3):  # each message a string of its own, as from the network
                session.show("😀" * 3999 + chr(0x1F600 + (n + turn) % 64), "en", mine=True)
                session.show(f"A long answer from the bot, turn {turn}. " * 60, "en", options=options)
            for turn in range(2):  # the worst case: the page as full as it can be, of emoji
                session.show("😀" * 1899 + chr(0x1F600 + (n + turn) % 64), "en", mine=True)
        used = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    assert len(sessions) == MAX_SESSIONS and sessions.new() is None, "full, and no one pushed out"
    assert used <= MEMORY_BOUND, f"{used / 2**20:.0f} MiB held, bound {MEMORY_BOUND / 2**20:.0f} MiB"
    print(f"\nweb sessions, all {MAX_SESSIONS} full: {used / 2**20:.0f} MiB (bound {MEMORY_BOUND / 2**20:.0f} MiB)")
