"""`make bench`: figures from one run on this machine, each channel beside what it would
otherwise be built with.

Telegram: a bare echo bot, Reachable's report flow and a peer doing the same job without
Reachable (bench/peers.py), each on aiogram and on python-telegram-bot, over real HTTP against
the same fake Bot API (no flood limits: this measures capacity); their ratios, what Reachable's
duties cost, and p50/p99 at 200 messages a second. Then the engine and the understanding step
alone; `reachable run`'s start and memory (bench/process.py); 10,000 open drafts; the web chat
under a surge (bench/web_surge.py); the Rasa action server (bench/rasa_actions.py); PostgreSQL
beside SQLite; the web chat under a flood and code guessing. It ends with one line for machines,
from which README's table is written (bench/readme.py).
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import process, rasa_actions, readme, web, web_surge
from bench.bots import BOTS, DUTIES, BotMaker
from bench.common import FLOW, Latencies, Replies, percentile, rss_mb
from bot.core.app import create_app, settle_heap
from bot.core.guards import FloodGuard
from fakes.harness import settings_for
from fakes.telegram import FakeTelegram
from flows import Engine, State
from flows.classifier import IntentClassifier
from flows.events import parse_typed
from responses import Responses
from storage import CodeHasher, Keyring

PEOPLE = 100
RATE = 200.0
CODE = "Secret code:"  # the reply to "keep" that gives the person their code
FRAMEWORKS = ("aiogram", "python-telegram-bot")
PEERS = {"aiogram": "peer aiogram FSM", "python-telegram-bot": "peer python-telegram-bot ConversationHandler"}


async def drive(fake: FakeTelegram, replies: Replies, people: int, rate: float | None) -> float:
    """Each person sends the flow, one message after the bot answered the last; ``rate`` caps
    messages a second overall. Returns messages handled a second."""
    gap = 1 / rate if rate else 0.0
    next_slot = [time.perf_counter()]

    async def person(chat: int) -> None:
        fake.chat(chat)
        for step, text in enumerate(FLOW):
            if gap:
                slot = max(next_slot[0], time.perf_counter())
                next_slot[0] = slot + gap
                await asyncio.sleep(max(0.0, slot - time.perf_counter()))
            answer = replies.expect(chat, tag=step, until=CODE if step == len(FLOW) - 1 else None)
            await fake.user_sends(chat, text)
            await asyncio.wait_for(answer, 60)
            await asyncio.sleep(0.05 if chat % 2 else 0.0)  # both bots see the same gaps

    started = time.perf_counter()
    await asyncio.gather(*(person(10_000 + n) for n in range(people)))
    return people * len(FLOW) / (time.perf_counter() - started)


@dataclass
class Run:
    throughput: float  # messages handled a second
    replies: Replies
    pause: float  # the bot's longest garbage-collection pause, seconds
    bot_cpu: float  # the bot process's CPU, as a share of one core, while it worked
    api_cpu: float  # the same for this process: the fake Bot API and the people


async def with_bot(name: str, rate: float | None) -> Run:
    """The bot called ``name`` in a process of its own (bench/serve.py), the people and the fake
    Bot API in this one: the bot's event loop carries only its own work, as in production."""
    fake = FakeTelegram()
    await fake.start()
    replies = Replies(fake)
    bot = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.serve", name, fake.url, stdout=subprocess.PIPE, env=dict(os.environ)
    )
    try:
        while not any(method == "getUpdates" for method, _ in fake.calls):
            if bot.returncode is not None:
                raise RuntimeError(f"{name} did not start")
            await asyncio.sleep(0.01)
        started, cpu = time.perf_counter(), time.process_time()
        throughput = await drive(fake, replies, PEOPLE, rate)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        # Every person's code before the bot is stopped: over capacity a code comes late (5-20 s
        # on python-telegram-bot at 200 a second), and 'keep' until the code must count it.
        for _ in range(1200):  # a minute at most
            if len(replies.until.values) >= PEOPLE:
                break
            await asyncio.sleep(0.05)
    finally:
        if bot.returncode is None:
            bot.send_signal(signal.SIGTERM)
        out, _ = await bot.communicate()
        await fake.stop()
    figures = dict(pair.split("=") for pair in out.decode().split())
    return Run(throughput, replies, float(figures["pause_s"]), float(figures["cpu_s"]) / elapsed, cpu / elapsed)


async def in_this_process(make: BotMaker) -> float:
    """Messages handled a second with the bot, the fake Bot API and the people in one process
    (`make profile` samples this one process)."""
    fake = FakeTelegram()
    await fake.start()
    polling, close = await make(fake.url)
    settle_heap()
    task = asyncio.create_task(polling.run())
    try:
        return await drive(fake, Replies(fake), PEOPLE, None)
    finally:
        polling.stop()
        await task
        await close()
        await fake.stop()


def hash_cpu_ms() -> float:
    """Median CPU milliseconds of one Argon2id hash of a secret code, as the store makes it."""
    hasher, timings = CodeHasher(), []
    for n in range(23):
        started = time.process_time()
        hasher.hash(f"BENC-H{n:03d}-CODE-0000")
        timings.append((time.process_time() - started) * 1000)
    return percentile(timings[3:], 50)  # the first few warm up


def ceiling(bare: Run) -> tuple[float, float]:
    """The most the report flow could handle a second on this machine if everything it does
    cost nothing but the hash of each report's code, on top of what the bare echo costs a
    message (its process and the fake Bot API's); and the hash's CPU milliseconds."""
    hash_ms = hash_cpu_ms()
    bare_ms = (bare.bot_cpu + bare.api_cpu) * 1000 / bare.throughput
    return (os.cpu_count() or 1) * 1000 / (bare_ms + hash_ms / len(FLOW)), hash_ms


def engine_steps_per_second() -> float:
    engine = Engine(Responses.load())
    events = [parse_typed(text) for text in FLOW]
    rounds, started = 2000, time.perf_counter()
    for _ in range(rounds):
        state = State()
        for event in events:
            state = engine.handle(state, event).state
    return rounds * len(events) / (time.perf_counter() - started)


def understanding_ms() -> tuple[float, float, float]:
    """p50, p99 and worst milliseconds the understanding step adds to a turn, over every shipped
    example as a message."""
    responses = Responses.load()
    classifier = IntentClassifier.train(responses.examples(), dict(responses.language_samples()))
    timings = []
    for example in responses.examples():
        started = time.perf_counter()
        classifier.understand(example.text)
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    return timings[len(timings) // 2], timings[int(len(timings) * 0.99)], timings[-1]


async def memory_with_drafts(count: int = 10_000) -> tuple[float, float]:
    folder = Path(tempfile.mkdtemp(prefix="reachable-mem-"))
    fake_stub = type("F", (), {"url": "http://127.0.0.1:9"})()
    settings = settings_for(fake_stub, folder, Keyring.new_key().decode())
    async with create_app(settings) as app:
        app.conversations.flood = FloodGuard(burst=10_000)
        gc.collect()
        idle = rss_mb()
        for n in range(count):
            for text in ("/report", "1", "1, 2"):
                await app.conversations.handle("telegram", 50_000 + n, parse_typed(text))
        gc.collect()
        return idle, rss_mb()


def drafts_process_mb() -> tuple[float, float]:
    """``memory_with_drafts`` in a fresh process, so memory the bots above freed is not reused."""
    code = "import asyncio, bench.run as b; print(*asyncio.run(b.memory_with_drafts()))"
    out = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=dict(os.environ)
    )
    idle, loaded = out.stdout.split()
    return float(idle), float(loaded)


def split_keep(replies: Replies) -> tuple[Latencies, Latencies]:
    """The flow's latencies without its last message, and its last ('keep', hashing the code)."""
    pairs = list(zip(replies.latencies.values, replies.steps, strict=True))
    last = len(FLOW) - 1
    return Latencies([v for v, i in pairs if i != last]), Latencies([v for v, i in pairs if i == last])


async def duties(runs: dict[str, Run]) -> None:
    """The bot process's CPU a message, and Reachable's capacity with its duties taken away in turn."""
    print("  the bot process's CPU a message, and what Reachable's duties cost, each taken away in turn (best of two):")
    for name in ("Reachable on aiogram", *PEERS.values(), *DUTIES):
        # Two runs of each, the faster kept: one run varies by a fifth or more on this machine.
        tries = [runs[name] if name in runs else await with_bot(name, None), await with_bot(name, None)]
        run = max(tries, key=lambda run: run.throughput)
        cpu_ms = run.bot_cpu * 1000 / run.throughput
        print(f"    {name + ':':62} {run.throughput:5.0f}/s, {cpu_ms:.2f} ms of CPU a message")


async def capacity_and_latency() -> dict[str, float]:
    """Prints the table; returns the figures the machine-readable line carries."""
    figures: dict[str, float] = {}
    runs = {name: await with_bot(name, None) for name in BOTS}
    capacity = {name: run.throughput for name, run in runs.items()}
    print("Capacity over HTTP against the fake Bot API (no flood limits), messages handled a second:")
    for framework in FRAMEWORKS:
        bare, flow = capacity[f"bare {framework} echo"], capacity[f"Reachable on {framework}"]
        print(f"  {framework + ':':21} bare echo {bare:5.0f}/s, Reachable {flow:5.0f}/s ({flow / bare:.0%} of bare)")
    ratio = capacity["bare aiogram echo"] / capacity["bare python-telegram-bot echo"]
    flows = capacity["Reachable on aiogram"] / capacity["Reachable on python-telegram-bot"]
    print(f"  aiogram against python-telegram-bot: {ratio:.2f}x bare, {flows:.2f}x with Reachable")
    print("  CPU while at capacity, in cores (bot process; fake Bot API and people):")
    for name, run in runs.items():
        print(f"    {name + ':':34} {run.bot_cpu:.2f}; {run.api_cpu:.2f}")
    most, hash_ms = ceiling(runs["bare aiogram echo"])
    print(
        f"  Ceiling: one Argon2id hash per report takes {hash_ms:.1f} ms of CPU ({hash_ms / len(FLOW):.2f} ms a message"
        f" of the flow); with only that added to the bare echo's cost, {os.cpu_count()} cores handle at most"
        f" {most:.0f}/s ({most / capacity['bare aiogram echo']:.0%} of bare aiogram)"
    )
    print("  against the same questions and report built without Reachable (bench/peers.py):")
    for framework, peer in PEERS.items():
        mine = capacity[f"Reachable on {framework}"]
        print(
            f"    Reachable on {framework + ':':20} {mine / capacity[peer]:.2f}x the capacity of {peer}"
            f" ({capacity[peer]:.0f}/s)"
        )
    await duties(runs)
    faster = max(PEERS.values(), key=lambda peer: capacity[peer])
    figures["peer_ratio"] = capacity["Reachable on aiogram"] / capacity[faster]
    figures["peer_ptb_ratio"] = capacity["Reachable on python-telegram-bot"] / capacity[PEERS["python-telegram-bot"]]
    figures["ratio"] = capacity["Reachable on aiogram"] / capacity["bare aiogram echo"]
    figures["capacity"] = capacity["Reachable on aiogram"]
    print("Latency from a message reaching the Bot API to the bot's reply, at 200 messages a second:")
    p99s: dict[str, float] = {}
    for name in BOTS:
        run = await with_bot(name, RATE)
        print(f"  {name + ':':34} {run.replies.latencies.line()}")
        if name.startswith(("Reachable", "peer")):
            answers, keep = split_keep(run.replies)
            print(f"      answers only:                  {answers.line()}")
            print(f"      'keep', first reply:           {keep.line()}")
            print(f"      'keep', until the code:        {run.replies.until.line()}")
            p99s[name] = run.replies.latencies.p99_ms()
            if name == "Reachable on aiogram":
                figures["answers_p99_ms"] = answers.p99_ms()
                figures["answers_p50_ms"] = answers.p50_ms()
                figures["keep_p99_ms"] = run.replies.until.p99_ms()
        print(f"      longest garbage-collection pause in the bot: {run.pause * 1000:.1f} ms")
    for framework, peer in PEERS.items():
        mine = p99s[f"Reachable on {framework}"]
        print(f"  p99, Reachable on {framework} against {peer}: {mine:.0f} ms against {p99s[peer]:.0f} ms")
    figures["peer_p99_ratio"] = p99s["Reachable on aiogram"] / p99s[faster]
    return figures


async def main() -> None:
    python = sys.version.split()[0]
    print(f"Benchmark on {os.cpu_count()} cores, Python {python}; {PEOPLE} people x {len(FLOW)} messages.\n")
    figures = await capacity_and_latency()
    print(f"Engine alone, in-process:           {engine_steps_per_second():7.0f} steps/s")
    p50, p99, worst = understanding_ms()
    print(
        f"Understanding step, per message: p50 {p50:.2f} ms, p99 {p99:.2f} ms, worst {worst:.2f} ms "
        "(target p99 <= 2 ms)"
    )
    text, started = await process.measure()
    print(text)
    figures |= started
    idle, loaded = drafts_process_mb()
    print(f"Memory: 10,000 open drafts add {loaded - idle:.1f} MiB ({idle:.0f} -> {loaded:.0f} MiB; target <= 50 MiB)")
    text, surged = await web_surge.compare()
    print(text)
    figures |= surged
    text, called = await rasa_actions.compare(hash_cpu_ms())
    print(text)
    figures |= called
    figures |= await on_postgres(figures)
    print(await web.flood())
    print(await web.guessing())
    # One line for machines (CI dashboards, comparisons between runs; README's table: bench/readme.py).
    line = readme.line(figures)
    print(line)
    readme.update(readme.parse(line), commit=commit())
    print("README.md: the figures table written from the line above")


def commit() -> str:
    """ ", at commit …" for the commit measured, when this is a git checkout."""
    found = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH, a read-only question
        capture_output=True,
        text=True,
        check=False,
    )
    return f", at commit {found.stdout.strip()}" if found.returncode == 0 else ""


async def on_postgres(sqlite: dict[str, float]) -> dict[str, float]:
    """Reachable on aiogram with its data in PostgreSQL, beside the same on SQLite above."""
    from bench import postgres

    if not postgres.available():
        print("PostgreSQL: not installed here (Debian's postgresql): skipped")
        return {}
    with postgres.running_server() as server:
        with postgres.database_for_the_bot(server.new_database()):
            capacity = (await with_bot("Reachable on aiogram", None)).throughput
        with postgres.database_for_the_bot(server.new_database()):
            run = await with_bot("Reachable on aiogram", RATE)
        answers, _ = split_keep(run.replies)
        print("Reachable on aiogram, data in PostgreSQL (a local cluster) beside the SQLite file:")
        print(f"  capacity: {capacity:5.0f}/s on PostgreSQL, {sqlite['capacity']:5.0f}/s on SQLite")
        print(
            f"  answers at {RATE:.0f} messages a second: PostgreSQL {answers.line()}; "
            f"SQLite p50 {sqlite['answers_p50_ms']:.1f} ms, p99 {sqlite['answers_p99_ms']:.1f} ms"
        )
        print(f"  'keep', until the code, on PostgreSQL: {run.replies.until.line()}")
        print(await postgres.drivers(server))
    return {"pg_capacity_ratio": capacity / sqlite["capacity"], "pg_answers_p99_ms": answers.p99_ms()}


if __name__ == "__main__":
    asyncio.run(main())
