"""The web chat under a surge, for `make bench`: many people at once over real HTTP (each with
their own cookie, the page's CSRF token, and their own address as the proxy gives it), against
`reachable web` in a process of its own with its limits as shipped, and against a bare aiohttp
app answering the same forms from memory (bench/bare_web.py) in the same run.

Half the people post forms as a browser without JavaScript does (the 303 followed by hand, then
the page); the other half as chat.js does (fetch follows the redirect) and ask for the page every
10 seconds as it does. A message's time runs from posting it until the next page is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp

from bench.common import FLOW, Latencies, Server, cpu_seconds, rss_mb
from fakes.harness import MODEL_CACHE, free_port
from storage import Keyring

PEOPLE = 1000
OPENING = 45.0  # new chats a second: within the web chat's own limit for everyone at once (50)
OPENING_BURST = 150  # new chats at once: within the web chat's burst for everyone (200)
PAUSE = (2.0, 10.0)  # seconds a person takes to read a reply and answer it
CAPACITY_PEOPLE = 200  # for capacity, people answer the moment the page is back...
CAPACITY_FLOW = FLOW[:9]  # ...so each sends no more than the burst one chat may send at once (10)
POLL = 10.0  # seconds between chat.js's requests for the page
CSRF = re.compile(r'name="csrf" value="([^"]*)"')
CODE = "Secret code:"


@contextlib.asynccontextmanager
async def served(kind: str) -> AsyncIterator[Server]:
    """``kind`` "reachable": `reachable web` with its data in a new folder (no Telegram token, so
    the web chat alone); "bare": bench/bare_web.py."""
    listen = f"127.0.0.1:{free_port()}"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("REACHABLE_")}
    if kind == "reachable":
        environ |= {
            "REACHABLE_DATA_DIR": tempfile.mkdtemp(prefix="reachable-surge-"),
            "REACHABLE_CACHE_DIR": str(MODEL_CACHE),
            "REACHABLE_ENCRYPTION_KEY": Keyring.new_key().decode(),
            "REACHABLE_WEB_LISTEN": listen,
            "REACHABLE_WEB_EXIT_URL": "https://example.org/",
            "REACHABLE_WEB_CLIENT_ADDRESS_HEADER": "X-Forwarded-For",
        }
        command = [sys.executable, "-m", "bot", "web"]
    else:
        command = [sys.executable, "-m", "bench.bare_web", listen]
    process = await asyncio.create_subprocess_exec(*command, env=environ, stderr=subprocess.DEVNULL)
    base = f"http://{listen}"
    try:
        async with aiohttp.ClientSession() as probe:
            while True:
                if process.returncode is not None:
                    raise RuntimeError(f"the {kind} web chat did not start")
                with contextlib.suppress(aiohttp.ClientError):
                    async with probe.get(base + "/healthz") as answer:
                        if answer.status == 200:
                            break
                await asyncio.sleep(0.05)
        yield Server(base, process.pid)
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()


class Person:
    def __init__(self, server: Server, number: int, connector: aiohttp.BaseConnector, js: bool) -> None:
        self.base = server.base
        self.js = js
        jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=[self.base])
        address = f"10.{number >> 16 & 255}.{number >> 8 & 255}.{number & 255}"
        self.client = aiohttp.ClientSession(
            connector=connector, connector_owner=False, cookie_jar=jar, headers={"X-Forwarded-For": address}
        )
        self.csrf = ""
        self.page = ""
        self.statuses: Counter[int] = Counter()

    async def _read(self, answer: aiohttp.ClientResponse) -> None:
        self.statuses[answer.status] += 1
        self.page = await answer.text()
        found = CSRF.search(self.page)
        self.csrf = found.group(1) if found else self.csrf

    async def open(self) -> None:
        async with self.client.get(self.base + "/") as answer:
            await self._read(answer)

    async def say(self, text: str) -> float:
        """Post ``text``; seconds until the next page was read."""
        started = time.perf_counter()
        form = {"csrf": self.csrf, "text": text}
        async with self.client.post(self.base + "/say", data=form, allow_redirects=self.js) as answer:
            if answer.status != 303:
                await self._read(answer)
                return time.perf_counter() - started
            where = answer.headers.get("Location", "/").partition("#")[0]
        async with self.client.get(self.base + where) as answer:
            await self._read(answer)
        return time.perf_counter() - started

    async def polling(self) -> None:
        while True:
            await asyncio.sleep(POLL)
            with contextlib.suppress(aiohttp.ClientError):
                async with self.client.get(self.base + "/") as answer:
                    await answer.read()

    async def close(self) -> None:
        await self.client.close()


@dataclass
class Surge:
    answers: Latencies = field(default_factory=Latencies)  # every message but the last ("keep")
    keep: Latencies = field(default_factory=Latencies)
    statuses: Counter[int] = field(default_factory=Counter)
    finished: int = 0  # people whose last page holds their report's code
    idle_mib: float = 0.0  # the server before anyone came
    opened_mib: float = 0.0  # with everyone's chat open
    done_mib: float = 0.0  # with everyone's whole conversation held


async def capacity(server: Server) -> tuple[float, float]:
    """Messages a second with CAPACITY_PEOPLE answering the moment their page is back, and the
    server's CPU milliseconds a message (what this machine's two cores, shared with the people's
    side, do not hide)."""
    connector = aiohttp.TCPConnector(limit=0)
    people = [Person(server, n, connector, js=n % 2 == 1) for n in range(CAPACITY_PEOPLE)]
    try:
        await asyncio.gather(*(person.open() for person in people[:OPENING_BURST]))
        await asyncio.gather(*(person.open() for person in people[OPENING_BURST:]))

        async def answering(person: Person) -> None:
            for text in CAPACITY_FLOW:
                await person.say(text)

        started, cpu = time.perf_counter(), cpu_seconds(server.pid)
        await asyncio.gather(*(answering(person) for person in people))
        messages = CAPACITY_PEOPLE * len(CAPACITY_FLOW)
        return messages / (time.perf_counter() - started), (cpu_seconds(server.pid) - cpu) * 1000 / messages
    finally:
        await asyncio.gather(*(person.close() for person in people))
        await connector.close()


async def surge(server: Server, people: int = PEOPLE) -> Surge:
    """``people`` arriving at OPENING a second; each, once everyone has arrived, answers every
    question of the report, taking PAUSE seconds over each, and keeps it."""
    result = Surge(idle_mib=rss_mb(server.pid))
    connector = aiohttp.TCPConnector(limit=0)
    crowd = [Person(server, 1000 + n, connector, js=n % 2 == 1) for n in range(people)]
    shuffle = random.Random(7)  # noqa: S311 - how long people take to answer, repeatable
    polls: list[asyncio.Task[None]] = []
    try:
        for person in crowd:
            started = time.perf_counter()
            await person.open()
            if person.js:
                polls.append(asyncio.create_task(person.polling()))
            await asyncio.sleep(max(0.0, 1 / OPENING - (time.perf_counter() - started)))
        result.opened_mib = rss_mb(server.pid)

        async def answering(person: Person) -> None:
            for step, text in enumerate(FLOW):
                await asyncio.sleep(shuffle.uniform(*PAUSE))
                took = await person.say(text)
                (result.keep if step == len(FLOW) - 1 else result.answers).values.append(took)
            result.finished += CODE in person.page

        await asyncio.gather(*(answering(person) for person in crowd))
        result.done_mib = rss_mb(server.pid)
    finally:
        for poll in polls:
            poll.cancel()
        await asyncio.gather(*polls, return_exceptions=True)
        for person in crowd:
            result.statuses.update(person.statuses)
        await asyncio.gather(*(person.close() for person in crowd))
        await connector.close()
    return result


async def warm(server: Server) -> None:
    """One person through the whole report first: the model loaded, the first page rendered."""
    connector = aiohttp.TCPConnector(limit=0)
    person = Person(server, 0, connector, js=False)
    try:
        await person.open()
        for text in FLOW:
            await person.say(text)
    finally:
        await person.close()
        await connector.close()


async def compare(people: int = PEOPLE) -> tuple[str, dict[str, float]]:
    """The lines `make bench` prints, and the figures its machine-readable line carries."""
    runs: dict[str, tuple[tuple[float, float], Surge]] = {}
    for kind in ("reachable", "bare"):
        async with served(kind) as server:
            await warm(server)
            most = await capacity(server)
        async with served(kind) as server:
            await warm(server)
            runs[kind] = most, await surge(server, people)
    ((mine, mine_ms), crowd), ((bare, bare_ms), bare_crowd) = runs["reachable"], runs["bare"]
    per_thousand = 1000 / people
    lines = [
        "Web chat, real HTTP (cookies, CSRF; half without JavaScript, half as chat.js), `reachable web` in its own "
        "process with its limits as shipped, against a bare aiohttp app answering the same forms from memory:",
        f"  capacity, {CAPACITY_PEOPLE} people answering at once: Reachable {mine:.0f} messages/s, bare {bare:.0f}/s "
        f"(ratio {mine / bare:.2f}, target >= 0.5); the server's CPU a message: Reachable {mine_ms:.2f} ms, "
        f"bare {bare_ms:.2f} ms",
        f"  {people} people arriving at {OPENING:.0f} a second, then answering every question ({PAUSE[0]:.0f}-"
        f"{PAUSE[1]:.0f} s over each) and keeping the report:",
        f"    Reachable, answers: {crowd.answers.line()} (target p99 <= 100 ms)",
        f"    Reachable, 'keep' until the page shows the code: {crowd.keep.line()}; "
        f"{crowd.finished} of {people} given their code",
        f"    bare app, answers:  {bare_crowd.answers.line()}",
        f"    answers' statuses: Reachable {dict(sorted(crowd.statuses.items()))}, bare "
        f"{dict(sorted(bare_crowd.statuses.items()))}",
        f"  memory per 1,000 open sessions: Reachable +{(crowd.opened_mib - crowd.idle_mib) * per_thousand:.1f} MiB "
        f"opened, +{(crowd.done_mib - crowd.idle_mib) * per_thousand:.1f} MiB with the whole conversation "
        f"({crowd.idle_mib:.0f} -> {crowd.done_mib:.0f} MiB); bare +"
        f"{(bare_crowd.done_mib - bare_crowd.idle_mib) * per_thousand:.1f} MiB",
    ]
    figures = {
        "web_ratio": mine / bare,
        "web_p50_ms": crowd.answers.p50_ms(),
        "web_p99_ms": crowd.answers.p99_ms(),
        "web_mib_per_1000": (crowd.done_mib - crowd.idle_mib) * per_thousand,
    }
    return "\n".join(lines), figures


async def main() -> None:
    people = int(sys.argv[1]) if len(sys.argv) > 1 else PEOPLE
    text, _ = await compare(people)
    print(text)


if __name__ == "__main__":
    asyncio.run(main())
