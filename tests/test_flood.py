"""One account sending a thousand messages fast is told once to slow down, and does not hold
anyone else up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.core.guards import Flood, FloodGuard
from fakes.harness import Person, Running, polling_bot, settings_for
from fakes.telegram import FakeTelegram
from storage import Keyring

FLOODER = 111000111
OTHER = 222000222


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[FakeTelegram, Running]]:
    fake = FakeTelegram()
    await fake.start()
    fake.enforce_flood_limits()  # 429 past Telegram's limits, one chat's included
    settings = settings_for(fake, tmp_path / "data", Keyring.new_key().decode())
    async with polling_bot(settings, real_flood_limit=True) as bot:
        yield fake, bot
    await fake.stop()


async def test_a_flood_is_told_once_and_someone_else_is_answered_meanwhile(
    running: tuple[FakeTelegram, Running],
) -> None:
    fake, _ = running
    fake.chat(FLOODER)
    other = Person(fake, OTHER)
    started = asyncio.get_running_loop().time()
    for _n in range(500):
        await fake.user_sends(FLOODER, "/help")
    replies = await other.says("/start")  # arrives in the middle of the flood
    for _n in range(500, 1000):
        await fake.user_sends(FLOODER, "/help")
    flood_seconds = asyncio.get_running_loop().time() - started
    assert "not anonymous" in replies[0]
    assert (await other.taps("Who can help"))[0].startswith("These services can help.")
    # The flooder's answers go out at about one a second after a burst, as Telegram asks of one
    # chat: wait until they stop coming.
    seen = -1
    while len(fake.bot_texts(FLOODER)) != seen:
        seen = len(fake.bot_texts(FLOODER))
        await asyncio.sleep(2.5)
    flooder_saw = fake.bot_texts(FLOODER)
    slow_downs = [t for t in flooder_saw if t.startswith("You are sending messages very fast")]
    assert len(slow_downs) == 1
    # A burst of 20 is answered (2 messages a turn), then one a second as the bucket refills;
    # the rest of the thousand are not read.
    answered_turns = (len(flooder_saw) - 1) / 2
    assert 20 <= answered_turns <= 20 + flood_seconds + 1
    assert fake.refusals == []
    assert fake.too_many == 0, f"past Telegram's limits: {fake.too_many_by}"


async def test_exit_still_works_while_a_chat_is_over_its_limit(running: tuple[FakeTelegram, Running]) -> None:
    fake, _ = running
    fake.chat(FLOODER)
    for _n in range(40):
        await fake.user_sends(FLOODER, "/help")
    await asyncio.sleep(1.0)  # twenty answers are out, twenty more wait for the chat's limit
    await fake.user_sends(FLOODER, "/exit")
    for _ in range(30):
        left = [m.text for m in fake.chat(FLOODER).messages.values()]
        if left == ["Done."]:
            break
        await asyncio.sleep(0.1)
    assert left == ["Done."]  # every message, answered or ignored, was deleted
    await asyncio.sleep(2.0)
    assert [m.text for m in fake.chat(FLOODER).messages.values()] == ["Done."], "nothing waiting came after"


def test_the_flood_guard_refills_over_time() -> None:
    now = [0.0]
    guard = FloodGuard(burst=3, rate=1.0, clock=lambda: now[0])
    assert [guard.check(b"a") for _ in range(5)] == [Flood.ALLOW] * 3 + [Flood.WARN, Flood.DROP]
    assert guard.check(b"b") is Flood.ALLOW  # another chat is untouched
    now[0] += 2.0
    assert [guard.check(b"a") for _ in range(3)] == [Flood.ALLOW, Flood.ALLOW, Flood.DROP]  # told once per flood
    now[0] += 10.0  # calm again: a later flood is told again
    assert [guard.check(b"a") for _ in range(4)] == [Flood.ALLOW] * 3 + [Flood.WARN]
