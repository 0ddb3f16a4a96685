"""The web chat under a surge, for `make bench`: many people at once over real HTTP (each with
their own cookie, the page's CSRF token, and their own address as the proxy gives it), against
`reachable web` in a process of its own with its limits as shipped, and against a bare aiohttp
app answering the same forms from memory (bench/bare_web.py) in the same run.

Half the people post forms as a browser without JavaScript does (the 303 followed by hand, then
the page), typing every answer; the other half as chat.js does: fetch follows the redirect, an
answer that is an option's number is a tap on that option's button (posted to /choose), and
the page is asked for every 10 seconds unless a message is on its way. A message's time runs
from posting it until the next page is read.

Capacity is given two ways: messages a second with everyone answering the moment their page is
back, and messages a second for each second of the server's CPU. The first is what this 2-core
machine shows with the people's side on the same cores (a fast server is held back by it); the
second is the server's own cost, and its ratio is the fair one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp

from bench.common import FLOW, Latencies, Server, cpu_seconds, machine_times, rss_mb, started, stolen_share
from fakes.harness import MODEL_CACHE, free_port
from storage import Keyring

PEOPLE = 1000
OPENING = 45.0  # new chats a second: within the web chat's own limit for everyone at once (50)
PAUSE = (2.0, 10.0)  # seconds a person takes to read a reply and answer it
CAPACITY_PEOPLE = 600  # for capacity, people answer the moment the page is back...
CAPACITY_FLOW = FLOW[:9]  # ...so each sends no more than the burst one chat may send at once (10)
POLL = 10.0  # seconds between chat.js's requests for the page
CSRF = re.compile(r'name="csrf" value="([^"]*)"')
OPTION = re.compile(r'name="choice" value="([^"]*)"><span class="num">(\d+)\.</span>')
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
        command = [sys.executable, "-m", "bench.serve_web"]  # `reachable web`, its pauses noted
    else:
        command = [sys.executable, "-m", "bench.bare_web", listen]
    notes = kind == "reachable"
    async with started(f"{kind} web chat", command, environ, f"http://{listen}/healthz", notes) as server:
        yield server


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
        self.statuses: Counter[int] = Counter()  # of each page read after opening or a message
        self.polled: Counter[int] = Counter()  # of chat.js's requests for the page
        self.sending = False

    async def _read(self, answer: aiohttp.ClientResponse) -> None:
        self.statuses[answer.status] += 1
        self.page = await answer.text()
        found = CSRF.search(self.page)
        self.csrf = found.group(1) if found else self.csrf

    async def open(self) -> None:
        async with self.client.get(self.base + "/") as answer:
            await self._read(answer)

    async def say(self, text: str) -> float:
        """Post ``text`` (with JavaScript, a tap on the option it is the number of); seconds until
        the next page was read."""
        started = time.perf_counter()
        options = {number: value for value, number in OPTION.findall(self.page)} if self.js else {}
        if text in options:
            path, form = "/choose", {"csrf": self.csrf, "choice": options[text]}
        else:
            path, form = "/say", {"csrf": self.csrf, "text": text}
        self.sending = True
        try:
            async with self.client.post(self.base + path, data=form, allow_redirects=self.js) as answer:
                if answer.status != 303:
                    await self._read(answer)
                    return time.perf_counter() - started
                where = answer.headers.get("Location", "/").partition("#")[0]
            async with self.client.get(self.base + where) as answer:
                await self._read(answer)
            return time.perf_counter() - started
        finally:
            self.sending = False

    async def polling(self) -> None:
        while True:
            await asyncio.sleep(POLL)
            if self.sending:
                continue
            try:
                async with self.client.get(self.base + "/") as answer:
                    await answer.read()
                    self.polled[answer.status] += 1
            except aiohttp.ClientError:
                self.polled[0] += 1  # counted as failed

    async def close(self) -> None:
        await self.client.close()


@dataclass
class Surge:
    answers: Latencies = field(default_factory=Latencies)  # every message but the last ("keep")
    beside_keeps: Latencies = field(default_factory=Latencies)  # those of them sent while a keep was waiting
    keeping: int = 0  # keeps waiting now
    keep: Latencies = field(default_factory=Latencies)
    statuses: Counter[int] = field(default_factory=Counter)  # of the pages read after opening or a message
    polled: Counter[int] = field(default_factory=Counter)  # of chat.js's requests for the page (0: failed)
    finished: int = 0  # people whose last page holds their report's code
    idle_mib: float = 0.0  # the server before anyone came
    opened_mib: float = 0.0  # with everyone's chat open
    done_mib: float = 0.0  # with everyone's whole conversation held
    stolen: float = 0.0  # the share of the machine's CPU time its host took for others meanwhile


@dataclass
class Capacity:
    per_second: float  # messages a second, the people's side on the same cores
    cpu_ms: float  # the server's CPU milliseconds a message
    statuses: Counter[int]  # of the pages read after each message

    @property
    def per_cpu_second(self) -> float:
        """Messages for each second of the server's CPU: what one core would carry."""
        return 1000 / self.cpu_ms


async def opened(
    server: Server, people: int, first: int = 0, polls: list[asyncio.Task[None]] | None = None
) -> tuple[list[Person], aiohttp.TCPConnector]:
    """``people`` with their chat open, arriving at OPENING a second. With ``polls``, each page
    with JavaScript asks for itself every POLL seconds from when it opened, as chat.js's timer
    does: the pages opened over many seconds, so they ask at different moments, not all at once."""
    connector = aiohttp.TCPConnector(limit=0)
    crowd = [Person(server, first + n, connector, js=n % 2 == 1) for n in range(people)]
    for person in crowd:
        started = time.perf_counter()
        await person.open()
        if polls is not None and person.js:
            polls.append(asyncio.create_task(person.polling()))
        await asyncio.sleep(max(0.0, 1 / OPENING - (time.perf_counter() - started)))
    return crowd, connector


async def capacity(server: Server, first: int = 0) -> Capacity:
    """CAPACITY_PEOPLE with their chat open, then all answering at once, each the moment their
    page is back; ``first`` numbers their addresses (each address may open only so many chats)."""
    people, connector = await opened(server, CAPACITY_PEOPLE, first)
    try:

        async def answering(person: Person) -> None:
            for text in CAPACITY_FLOW:
                await person.say(text)

        statuses = sum((person.statuses for person in people), Counter[int]())
        started, cpu = time.perf_counter(), cpu_seconds(server.pid)
        await asyncio.gather(*(answering(person) for person in people))
        elapsed, cpu = time.perf_counter() - started, cpu_seconds(server.pid) - cpu
        after = sum((person.statuses for person in people), Counter[int]()) - statuses
        handled = after[200]  # a refusal (busy, too fast) is not a message handled
        return Capacity(handled / elapsed, cpu * 1000 / max(1, handled), after)
    finally:
        await asyncio.gather(*(person.close() for person in people))
        await connector.close()


async def surge(server: Server, people: int = PEOPLE) -> Surge:
    """``people`` arriving at OPENING a second; each, once everyone has arrived, answers every
    question of the report, taking PAUSE seconds over each, and keeps it."""
    result = Surge(idle_mib=rss_mb(server.pid))
    machine = machine_times()
    polls: list[asyncio.Task[None]] = []
    crowd, connector = await opened(server, people, first=10_000, polls=polls)
    shuffle = random.Random(7)  # noqa: S311 - how long people take to answer: not a secret
    try:
        result.opened_mib = rss_mb(server.pid)

        async def answering(person: Person) -> None:
            for step, text in enumerate(FLOW):
                await asyncio.sleep(shuffle.uniform(*PAUSE))
                if step == len(FLOW) - 1:
                    result.keeping += 1
                    try:
                        result.keep.values.append(await person.say(text))
                    finally:
                        result.keeping -= 1
                    continue
                beside = result.keeping > 0
                took = await person.say(text)
                result.answers.values.append(took)
                if beside:
                    result.beside_keeps.values.append(took)
            result.finished += CODE in person.page

        await asyncio.gather(*(answering(person) for person in crowd))
        result.done_mib = rss_mb(server.pid)
        result.stolen = stolen_share(machine, machine_times())
    finally:
        for poll in polls:
            poll.cancel()
        await asyncio.gather(*polls, return_exceptions=True)
        for person in crowd:
            result.statuses.update(person.statuses)
            result.polled.update(person.polled)
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
    runs: dict[str, tuple[Capacity, Surge]] = {}
    for kind in ("reachable", "bare"):
        async with served(kind) as server:
            await warm(server)
            most = await capacity(server)
        async with served(kind) as server:
            await warm(server)
            runs[kind] = most, await surge(server, people)
        if kind == "reachable":
            pause = server.pause
    (mine, crowd), (bare, bare_crowd) = runs["reachable"], runs["bare"]
    per_thousand = 1000 / people
    lines = [
        "Web chat, real HTTP (cookies, CSRF; half without JavaScript, half as chat.js), `reachable web` in its own "
        "process with its limits as shipped, against a bare aiohttp app answering the same forms from memory:",
        f"  capacity, {CAPACITY_PEOPLE} people answering at once, the people's side on the same cores: Reachable "
        f"{mine.per_second:.0f} messages/s, bare {bare.per_second:.0f}/s; pages after a message: Reachable "
        f"{dict(mine.statuses)}, bare {dict(bare.statuses)}",
        f"  the server's CPU a message: Reachable {mine.cpu_ms:.2f} ms, bare {bare.cpu_ms:.2f} ms: messages for "
        f"each CPU second {mine.per_cpu_second:.0f} against {bare.per_cpu_second:.0f} "
        f"(ratio {mine.per_cpu_second / bare.per_cpu_second:.2f}, target >= 0.5)",
        f"  {people} people arriving at {OPENING:.0f} a second, then answering every question ({PAUSE[0]:.0f}-"
        f"{PAUSE[1]:.0f} s over each) and keeping the report:",
        f"    Reachable, answers: {crowd.answers.line()} (target p99 <= 100 ms)",
        f"      of them sent while someone's 'keep' was waiting: {crowd.beside_keeps.line()}",
        f"      the server's longest garbage-collection pause meanwhile: {pause * 1000:.0f} ms; the machine's "
        f"CPU time taken by its host for others: {crowd.stolen:.0%} (bare app's surge: {bare_crowd.stolen:.0%})",
        f"    Reachable, 'keep' until the page shows the code: {crowd.keep.line()}; "
        f"{crowd.finished} of {people} given their code",
        f"    bare app, answers:  {bare_crowd.answers.line()}",
        f"    pages read after opening or a message: Reachable {dict(sorted(crowd.statuses.items()))}, bare "
        f"{dict(sorted(bare_crowd.statuses.items()))}; chat.js's requests for the page (0: failed): Reachable "
        f"{dict(sorted(crowd.polled.items()))}, bare {dict(sorted(bare_crowd.polled.items()))}",
        f"  memory per 1,000 open conversations: Reachable +{(crowd.opened_mib - crowd.idle_mib) * per_thousand:.1f} "
        f"MiB opened, +{(crowd.done_mib - crowd.idle_mib) * per_thousand:.1f} MiB with 12 messages each "
        f"({crowd.idle_mib:.0f} -> {crowd.done_mib:.0f} MiB); bare +"
        f"{(bare_crowd.done_mib - bare_crowd.idle_mib) * per_thousand:.1f} MiB",
    ]
    figures = {
        "web_ratio": mine.per_cpu_second / bare.per_cpu_second,
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
