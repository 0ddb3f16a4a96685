"""Two hard moments for the web chat, as scenarios the tests check for behaviour and
`make bench` times: one client making sessions as fast as it can (in a process of its own) while a
person goes on with their conversation; and a thousand sessions sending wrong codes that share a
kept report's tag while a person keeps their report."""

from __future__ import annotations

import asyncio
import json
import os
import re
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from fakes.web import WebPerson, read
from flows.codes import ALPHABET
from storage import crypto

CODE = re.compile(r"Secret code: ([0-9A-Z]{4}(?:-[0-9A-Z]{4}){3})")
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
TURNS = ("/services", "/advice", "/report", "Start", "Robbery or theft", "Done", "This week")


def resident() -> int:
    """This process's resident memory now, in bytes (Linux)."""
    with open(f"/proc/{os.getpid()}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass
class Flooded:
    counts: dict[str, int]  # the flooder's answers by status
    statuses: set[int] = field(default_factory=set)  # the person's
    took: list[float] = field(default_factory=list)  # seconds for each of the person's messages
    answered: int = 0  # the person's messages that got a reply from the bot
    grown: int = 0  # bytes this process grew by

    @property
    def p99(self) -> float:
        return statistics.quantiles(self.took, n=100)[98] if len(self.took) > 1 else self.took[0]


async def flood_while_a_person_talks(base: str, seconds: float) -> Flooded:
    """A person who opened the chat before the flood sends a message about once a second."""
    person = WebPerson(base)
    try:
        await person.open()
        before = resident()
        flooder = await asyncio.create_subprocess_exec(
            sys.executable, "-c", FLOODER, base, str(seconds), stdout=asyncio.subprocess.PIPE
        )
        result = Flooded({})
        ends = time.monotonic() + seconds - 2
        while time.monotonic() < ends:
            words = TURNS[len(result.took) % len(TURNS)]
            started = time.perf_counter()
            if any(label == words for label, _ in person.page.buttons):
                await person.tap(words)
            else:
                await person.say(words)
            result.took.append(time.perf_counter() - started)
            result.statuses.add(person.status)
            result.answered += bool(person.page.items) and person.page.items[-1].mine is False
            await asyncio.sleep(1.0)  # a person, not a script: about a message a second
        out, _ = await flooder.communicate()
        result.counts = json.loads(out)
        result.grown = resident() - before
        return result
    finally:
        await person.close()


class Watched:
    """A store's code hasher, noting how many verifications were still waiting each time a new
    report's code began to be hashed."""

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


async def up_to_keeping(person: WebPerson) -> None:
    """A report answered up to "Shall we keep this summary?"."""
    await person.say("/report")
    for label in ("Start", "Robbery or theft", "Done", *["Skip"] * 7, "Yes, it's right"):
        await person.tap(label)


@dataclass
class Guessed:
    kept: str  # the code of the report guessed at
    said: str  # what the person keeping theirs was shown
    took: float  # seconds from "Yes, keep it" to the page with their code
    waiting: int  # verifications still waiting then
    watched: Watched
    guessing: list[asyncio.Task[str]]  # each guesser's answer page


async def guess_while_a_person_keeps(app: Any, base: str, client: aiohttp.ClientSession, guessers: int) -> Guessed:
    """Keeps one report, then ``guessers`` new sessions each send a wrong code sharing its tag
    while a person keeps theirs. The guesses are left running (``guessing``). Needs the tag
    short enough to find such codes quickly (``crypto.TAG_BYTES``) and the chat's limits on new
    sessions lifted."""
    first, person = WebPerson(base), WebPerson(base)
    try:
        await first.open()
        await up_to_keeping(first)
        await first.tap("Yes, keep it")  # nobody to send it to here: kept at once
        kept = CODE.findall("\n".join(i.text for i in first.page.items))[-1]
        store = app.store
        watched = Watched(store.hasher, store._hashing)
        store.hasher = watched
        guesses = codes_sharing_a_tag(store._tag_secret, kept, guessers)
        await person.open()
        await up_to_keeping(person)

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
        said = "\n".join(i.text for i in person.page.items)
        return Guessed(kept, said, took, store._hashing.waiting(), watched, guessing)
    finally:
        await first.close()
        await person.close()
