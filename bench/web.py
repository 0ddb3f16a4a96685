"""The web chat under a flood and under bulk code guessing (``make bench`` prints these; the
tests check the same scenarios for behaviour, ``fakes/web_load.py``)."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import aiohttp

from bot.channels.web.adapter import MEMORY_BOUND
from bot.core.delivery import TokenBucket
from fakes.harness import web_chat_served
from fakes.web_load import flood_while_a_person_talks, guess_while_a_person_keeps
from storage import Keyring, crypto


async def flood(seconds: float = 30.0) -> str:
    key = Keyring.new_key().decode()
    async with web_chat_served(Path(tempfile.mkdtemp()), key, real_rate_limits=True) as (_, base, _chat):
        flooded = await flood_while_a_person_talks(base, seconds)
    total = sum(flooded.counts.values())
    return (
        f"Web chat, one client making sessions for {seconds:.0f} s ({total / seconds:.0f} requests/s, "
        f"{flooded.counts.get('200', 0)} given a chat): the person's {len(flooded.took)} messages p99 "
        f"{flooded.p99 * 1000:.0f} ms (target <= 200 ms), {flooded.answered} answered, none refused; "
        f"memory +{flooded.grown / 2**20:.0f} MiB (bound {MEMORY_BOUND / 2**20:.0f} MiB)"
    )


async def guessing(guessers: int = 1000) -> str:
    saved = crypto.TAG_BYTES
    crypto.TAG_BYTES = 1  # codes sharing a tag found quickly: the worst case, guessers who know it
    try:
        key = Keyring.new_key().decode()
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client:
            async with web_chat_served(Path(tempfile.mkdtemp()), key) as (app, base, chat):
                chat.everyone_new = TokenBucket(1e6, 1e6)
                guessed = await guess_while_a_person_keeps(app, base, client, guessers)
                stopping = time.perf_counter()
            stopped = time.perf_counter() - stopping
            await asyncio.gather(*guessed.guessing, return_exceptions=True)
    finally:
        crypto.TAG_BYTES = saved
    return (
        f"Web chat, {guessers} sessions sending wrong codes that share a report's tag: a person's keep took "
        f"{guessed.took * 1000:.0f} ms with {guessed.waiting} verifications waiting (target <= 2 s); "
        f"stopped in {stopped:.1f} s"
    )


async def main() -> None:
    print(await flood())
    print(await guessing())


if __name__ == "__main__":
    asyncio.run(main())
