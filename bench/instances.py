"""Several instances behind one webhook address, on one PostgreSQL database: `make load-instances`
(1,000 people, two instances, one of them killed with SIGKILL mid-load), and a smaller run in
tests/test_instances.py.

Everything real but Telegram: a throwaway PostgreSQL cluster, two `reachable run --webhook`
processes, `reachable spread` in front of them (each chat to the same instance while it answers),
the fake answering 429 past Telegram's flood limits and POSTing each update again, later and
later, until an instance answers 2xx. Each person types the report flow, waiting for each reply,
and sends the summary to the staff chat. What is measured: everyone finished; every chat's
transcript the same as everyone else's (codes aside), so no turn was taken twice, lost or out
of order; each summary in the staff chat once; the 429s."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import signal
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench.common import Replies
from bench.load import FLOW, STAFF, SUMMARY
from bot.core.serving import serve
from bot.ops.spread import Spreader
from fakes.harness import free_port, settings_for, start_bot_process
from fakes.postgres import PostgresServer, running_server
from fakes.telegram import FakeTelegram
from storage import Keyring
from storage.base import BEAT

SECRET = "a-long-random-webhook-secret-0123456789"  # noqa: S105 - a test value
CODES = re.compile(r"\b[0-9A-Z]{4}(?:-[0-9A-Z]{4})+\b")
# Said only when keeping a report takes over a second: whether it is said depends on the load.
SOMETIMES = ("Making your secret code",)


@dataclass
class Outcome:
    people: int
    finished: int = 0
    stuck: list[int] = field(default_factory=list)
    transcripts: Counter[tuple[str, ...]] = field(default_factory=Counter)
    summaries: Counter[str] = field(default_factory=Counter)
    marked_repeats: int = 0  # staff messages marked as possibly sent before
    unmarked_twice: int = 0  # summaries shown to staff twice without that mark
    repeated: int = 0  # messages a person was shown twice
    too_many: int = 0
    too_many_by: Counter[str] = field(default_factory=Counter)  # which limit was passed
    webhook_posts: int = 0
    webhook_retries: int = 0
    by_instance: list[int] = field(default_factory=list)
    killed_at_s: float | None = None
    seconds: float = 0.0
    all_delivered_s: float | None = None

    @property
    def twice(self) -> int:
        return sum(n - 1 for n in self.summaries.values() if n > 1)

    def line(self) -> str:
        return (
            f"instances: people={self.people} finished={self.finished} stuck={len(self.stuck)} "
            f"transcripts={len(self.transcripts)} summaries={len(self.summaries)} twice={self.twice} "
            f"unmarked_twice={self.unmarked_twice} repeated={self.repeated} "
            f"too_many={self.too_many} retried_posts={self.webhook_retries} "
            f"killed_at_s={self.killed_at_s if self.killed_at_s is None else round(self.killed_at_s)} "
            f"seconds={self.seconds:.0f}"
        )


def transcript(fake: FakeTelegram, chat: int) -> tuple[str, ...]:
    """What the chat was shown, codes aside, each message once (a repeat is counted apart)."""
    texts = (CODES.sub("CODE", text) for text in fake.bot_texts(chat))
    return tuple(dict.fromkeys(text for text in texts if not text.startswith(SOMETIMES)))


async def _healthy(port: int, deadline: float) -> None:
    async with aiohttp.ClientSession() as http:
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"http://127.0.0.1:{port}/healthz") as answer:
                    if answer.status == 200:
                        return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the instance on port {port} did not start")
            await asyncio.sleep(0.2)


async def run(
    server: PostgresServer, folder: Path, people: int, *, instances: int = 2, kill_at: float | None = None,
    step_timeout: float = 600.0,
) -> Outcome:  # fmt: skip
    """``kill_at``: once this share of all messages has been answered, SIGKILL the first instance."""
    fake = FakeTelegram()
    await fake.start()
    fake.enforce_flood_limits()
    fake.chat(STAFF, "supergroup")
    ports = [free_port() for _ in range(instances)]
    spreader = Spreader([f"http://127.0.0.1:{port}" for port in ports])
    try:
        async with serve(spreader.application(), f"127.0.0.1:{free_port()}", "spread") as where:
            fake.deliver_to = f"http://{where}/telegram"
            return await _instances(fake, spreader, server.new_database(), folder, ports, people, kill_at, step_timeout)
    finally:
        await fake.stop()


async def _instances(
    fake: FakeTelegram, spreader: Spreader, url: str, folder: Path, ports: list[int], people: int,
    kill_at: float | None, step_timeout: float,
) -> Outcome:  # fmt: skip
    key = Keyring.new_key().decode()
    processes = []
    try:
        for number, port in enumerate(ports):
            settings = settings_for(
                fake, folder / f"instance-{number}", key,
                REACHABLE_DATABASE_URL=url,
                REACHABLE_STAFF_CHAT_ID=str(STAFF),
                REACHABLE_WEBHOOK_SECRET=SECRET,
                REACHABLE_WEBHOOK_URL="https://bot.example/telegram",
                REACHABLE_WEBHOOK_LISTEN=f"127.0.0.1:{port}",
            )  # fmt: skip
            processes.append(await start_bot_process(settings, "--webhook"))
        deadline = time.monotonic() + 120
        for port in ports:
            await _healthy(port, deadline)
        await asyncio.sleep(BEAT + 3)  # a heartbeat and more: each knows how many share the limits
        outcome = await _drive(fake, people, processes, kill_at, step_timeout)
        outcome.by_instance = list(spreader.sent)
        return outcome
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 30)
            if process.returncode is None:
                process.kill()


async def _drive(
    fake: FakeTelegram, people: int, processes: list[asyncio.subprocess.Process], kill_at: float | None,
    step_timeout: float,
) -> Outcome:  # fmt: skip
    outcome = Outcome(people)
    replies = Replies(fake)
    answered = 0
    total = people * len(FLOW)
    started = time.perf_counter()

    async def person(chat: int) -> None:
        nonlocal answered
        fake.chat(chat)
        for step, text in enumerate(FLOW):
            shown = set(transcript(fake, chat))
            answer = replies.expect(chat, tag=step)
            await fake.user_sends(chat, text)
            try:
                reply = await asyncio.wait_for(answer, step_timeout)
                # A message shown again (the one a crash can repeat: it left just before it was
                # written down as out) is read as a repeat, as a person would: the reply follows.
                while CODES.sub("CODE", reply) in shown:
                    outcome.repeated += 1
                    reply = await asyncio.wait_for(replies.expect(chat, tag=step), step_timeout)
            except TimeoutError:
                outcome.stuck.append(chat)
                return
            answered += 1
        outcome.finished += 1

    async def kill() -> None:
        # At a moment of its own (not just as a message arrives, which would be the instant a
        # message has left and is not yet written down as out, the one window a crash cannot close).
        while kill_at is not None and answered < kill_at * total:  # noqa: ASYNC110 - the people's progress
            await asyncio.sleep(0.137)
        if kill_at is not None:
            processes[0].send_signal(signal.SIGKILL)
            outcome.killed_at_s = time.perf_counter() - started

    killing = asyncio.create_task(kill())
    chats = [30_000 + n for n in range(people)]
    await asyncio.gather(*(person(chat) for chat in chats))
    killing.cancel()
    # Each person's summary reaches the staff chat: wait for all, then a little more for any twice.
    deadline = time.monotonic() + step_timeout
    while len({*found(fake)}) < outcome.finished and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.5)
    outcome.all_delivered_s = time.perf_counter() - started
    await asyncio.sleep(3)
    outcome.seconds = time.perf_counter() - started
    outcome.summaries = Counter(found(fake))
    staff = fake.bot_texts(STAFF)
    outcome.marked_repeats = sum(text.startswith("Possible repeat") for text in staff)
    unmarked = Counter(
        m.group(1) for text in staff if not text.startswith("Possible repeat") for m in SUMMARY.finditer(text)
    )
    outcome.unmarked_twice = sum(n - 1 for n in unmarked.values() if n > 1)
    outcome.transcripts = Counter(transcript(fake, chat) for chat in chats if chat not in outcome.stuck)
    outcome.too_many = fake.too_many
    outcome.too_many_by = Counter(fake.too_many_by)
    outcome.webhook_posts, outcome.webhook_retries = fake.webhook_posts, fake.webhook_retries
    return outcome


def found(fake: FakeTelegram) -> list[str]:
    return [m.group(1) for text in fake.bot_texts(STAFF) for m in SUMMARY.finditer(text)]


async def main(people: int, kill: bool) -> None:
    with running_server() as server, tempfile.TemporaryDirectory(prefix="reachable-instances-") as folder:
        outcome = await run(server, Path(folder), people, kill_at=0.5 if kill else None, step_timeout=3600)
    killed = f", the first killed with SIGKILL after {outcome.killed_at_s:.0f} s" if outcome.killed_at_s else ""
    print(f"Two instances behind one webhook address on PostgreSQL{killed}: {people} people x {len(FLOW)} messages.")
    print(f"  finished: {outcome.finished}; stuck (no reply within the hour): {len(outcome.stuck)}")
    print(f"  distinct transcripts (codes aside): {len(outcome.transcripts)} (1: every chat alike, in order, once)")
    print(f"  messages a person was shown twice: {outcome.repeated}")
    print(
        f"  summaries in the staff chat: {len(outcome.summaries)} distinct, {outcome.twice} twice "
        f"({outcome.marked_repeats} marked as a possible repeat)"
    )
    print(f"  429s: {outcome.too_many}; webhook POSTs {outcome.webhook_posts}, sent again {outcome.webhook_retries}")
    print(f"  POSTs answered by each instance: {outcome.by_instance}")
    print(f"  all summaries delivered after {outcome.all_delivered_s:.0f} s; the run took {outcome.seconds:.0f} s")
    print(outcome.line())


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=1000)
    parser.add_argument("--kill", action="store_true", help="SIGKILL the first instance halfway")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.people, arguments.kill))
