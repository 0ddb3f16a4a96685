"""`make load`: 1,000 people complete and send reports at once, through the fake Bot API answering
429 as Telegram does past its flood limits (about 30 messages a second overall, 20 a minute to a
group, about one a second to one chat after a burst). At those limits it takes minutes by design.
Prints what it measured; asserts nothing."""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import Latencies, Replies, peak_rss_mb, rss_mb
from fakes.harness import settings_for, start_bot_process
from fakes.telegram import FakeTelegram
from storage import Keyring

STAFF = -1009999
# Typed answers: start, what, when, where, (skip drugs), own words, skip x3, right, don't keep,
# send to a support worker, no replies.
FLOW = ["/report", "1", "1, 2", "1", "2", "skip", "It happened at a party.", "skip", "skip", "skip", "1", "2", "1", "2"]
EMERGENCY_TEXT = "my mate has gone blue and wont respond"
EMERGENCY_EVERY = 10  # one person in ten
# They write at moments spread over the first five minutes, while everyone else's replies queue:
# a hundred emergencies at the same instant could not all go out within 2 s at 30 messages/s.
EMERGENCY_SPREAD_S = 300
SEED = 20261122
EMERGENCY = -1  # the tag of their first reply
SUMMARY = re.compile(r"^New confidential summary ([0-9A-Z]{4}-[0-9A-Z]{4})", re.MULTILINE)


async def main(people: int) -> None:
    fake = FakeTelegram()
    await fake.start()
    fake.enforce_flood_limits()
    fake.chat(STAFF, "supergroup")
    data = Path(tempfile.mkdtemp(prefix="reachable-load-"))
    settings = settings_for(fake, data, Keyring.new_key().decode(), REACHABLE_STAFF_CHAT_ID=str(STAFF))
    process = await start_bot_process(settings)
    replies = Replies(fake)
    moments = random.Random(SEED)  # noqa: S311 - when people write, not a secret
    peak = 0.0

    async def watch_memory() -> None:
        nonlocal peak
        while process.returncode is None:
            peak = max(peak, peak_rss_mb(process.pid))
            await asyncio.sleep(0.5)

    async def person(chat: int) -> None:
        fake.chat(chat)
        if chat % EMERGENCY_EVERY == 0:  # some begin in an emergency, before the report
            await asyncio.sleep(moments.uniform(0, EMERGENCY_SPREAD_S))
            answer = replies.expect(chat, tag=EMERGENCY)
            await fake.user_sends(chat, EMERGENCY_TEXT)
            await asyncio.wait_for(answer, 3600)
        for step, text in enumerate(FLOW):
            answer = replies.expect(chat, tag=step)
            await fake.user_sends(chat, text)
            await asyncio.wait_for(answer, 3600)

    watcher = asyncio.create_task(watch_memory())
    while not any(method == "getUpdates" for method, _ in fake.calls):  # noqa: ASYNC110 - the bot is starting
        await asyncio.sleep(0.05)  # measure replies, not the start-up
    started = time.perf_counter()
    await asyncio.gather(*(person(20_000 + n) for n in range(people)))
    conversations_done = time.perf_counter() - started
    # Each person sends one summary; a summary not kept leaves the database once delivered.
    references = range(people)
    while len({*found(fake)}) < len(references):  # noqa: ASYNC110 - polling another process's work
        await asyncio.sleep(1)
    all_delivered = time.perf_counter() - started
    await asyncio.sleep(5)
    delivered = found(fake)
    process.send_signal(signal.SIGTERM)
    await process.wait()
    watcher.cancel()
    idle_at_end = rss_mb()
    summaries = Summaries(len(references), delivered, all_delivered, len(fake.bot_texts(STAFF)))
    report(people, conversations_done, replies, summaries, fake, (peak, idle_at_end))
    await fake.stop()


@dataclass(frozen=True)
class Summaries:
    stored: int
    delivered: list[str]
    after_s: float
    staff_messages: int


def report(
    people: int,
    conversations_done: float,
    replies: Replies,
    summaries: Summaries,
    fake: FakeTelegram,
    memory: tuple[float, float],
) -> None:
    peak, idle_at_end = memory
    references, delivered, all_delivered = range(summaries.stored), summaries.delivered, summaries.after_s
    print(f"Load: {people} people x {len(FLOW)} messages, fake Bot API enforcing Telegram's flood limits.")
    rate = people * len(FLOW) / conversations_done
    print(f"  conversations finished in {conversations_done:.0f} s: {rate:.1f} updates/s")
    print(f"  reply latency (message sent to first reply): {replies.latencies.line()}")
    print(
        f"  summaries: {len(references)} stored, {len(set(delivered))} delivered, "
        f"{len(delivered) - len(set(delivered))} twice; all delivered after {all_delivered:.0f} s "
        f"in {summaries.staff_messages} staff messages"
    )
    by_limit = ", ".join(f"{limit} {count}" for limit, count in sorted(fake.too_many_by.items())) or "none"
    print(f"  429s received by the bot: {fake.too_many} ({by_limit}); protocol errors: {len(fake.refusals)}")
    print(f"  most messages arriving within one second: {fake.busiest_second} (Telegram's limit: 30)")
    print(f"  bot process peak memory: {peak:.0f} MiB (load generator: {idle_at_end:.0f} MiB)")
    pairs = zip(replies.latencies.values, replies.steps, strict=True)
    emergency = Latencies([v for v, step in pairs if step == EMERGENCY])
    print(
        f"  emergency guidance (first reply to {EMERGENCY_TEXT!r}, one person in {EMERGENCY_EVERY}, "
        f"at moments over the first {EMERGENCY_SPREAD_S} s): {emergency.line()}"
    )
    duplicates = len(delivered) - len(set(delivered))
    print(
        f"load: emergency_p99_ms={emergency.p99_ms():.0f} stored={len(references)} delivered={len(set(delivered))} "
        f"duplicates={duplicates} too_many={fake.too_many} peak_mib={peak:.0f}"
    )


def found(fake: FakeTelegram) -> list[str]:
    return [m.group(1) for text in fake.bot_texts(STAFF) for m in SUMMARY.finditer(text)]


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=1000)
    asyncio.run(main(parser.parse_args().people))
