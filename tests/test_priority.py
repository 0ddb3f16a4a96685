"""Nobody waits behind someone else: when sends must wait for the platform's rate, emergency
help goes first, one chat's messages keep their order, and someone keeping a report while
codes are being made is told so."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from bot.core.app import App, create_app
from bot.core.channel import Channel
from bot.core.delivery import REPLY, STAFF, URGENT, Pacer
from bot.core.settings import Settings
from bot.core.transport import UNLIMITED, Button, ChatInfo
from fakes.harness import MODEL_CACHE
from flows.definitions import URGENT_MESSAGES
from flows.events import parse_typed
from storage import Keyring
from storage.hashing import KEEP


class Recording:
    """A transport that notes what it sent, to whom, in order."""

    channel = "console"
    limits = UNLIMITED

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def send(self, chat_id: str, text: str, buttons: Sequence[Button] = ()) -> int:
        self.sent.append((chat_id, text))
        return len(self.sent)

    async def delete(self, chat_id: str, message_ids: Sequence[int]) -> None:
        """Nothing to clear in a recording."""

    async def answer_button(self, query_id: str) -> None:
        """No buttons to answer."""

    async def chat_info(self, chat_id: str) -> ChatInfo:
        return ChatInfo(public_name=None)

    def encode_button(self, step: str, option: str) -> str:
        return f"{step}|{option}"


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    environ = {
        "REACHABLE_DATA_DIR": str(tmp_path),
        "REACHABLE_CACHE_DIR": str(MODEL_CACHE),
        "REACHABLE_ENCRYPTION_KEY": Keyring.new_key().decode(),
    }
    async with create_app(Settings.from_environ(environ)) as running:
        yield running


def channel_for(app: App, rate: float) -> tuple[Channel, Recording]:
    transport = Recording()
    core = Channel(transport, replace(app.ports(), staff_chats={}))
    core.pacer = Pacer(rate, 1.0, burst=1)
    return core, transport


async def test_the_pacer_serves_by_priority_then_in_order() -> None:
    pacer = Pacer(50, 1.0, burst=1)
    await pacer.wait()  # the one token there was
    served: list[str] = []

    async def wait(name: str, priority: int) -> None:
        await pacer.wait(priority)
        served.append(name)

    waiting = [
        asyncio.create_task(wait("staff", STAFF)),
        asyncio.create_task(wait("reply 1", REPLY)),
        asyncio.create_task(wait("reply 2", REPLY)),
        asyncio.create_task(wait("emergency", URGENT)),
    ]
    await asyncio.sleep(0)  # all four are queued before the next token
    started = time.monotonic()
    await asyncio.gather(*waiting)
    assert served == ["emergency", "reply 1", "reply 2", "staff"]
    assert time.monotonic() - started >= 3 / 50 * 0.9, "still no faster than the rate"


async def test_sends_held_up_after_their_turn_still_never_bunch_past_the_limit() -> None:
    """A staff summary allowed by its group's limit a minute may then wait behind everyone's
    replies; the group limit must count it when it leaves, or several held-up summaries leave
    together and the platform answers 429."""
    group = Pacer(1, 0.2, burst=1)  # one every 0.2 s
    left: list[float] = []

    async def held_up_send(hold: float) -> None:
        await group.reserve()
        await asyncio.sleep(hold)  # waiting for the overall limit, behind replies
        group.leaving()
        left.append(time.monotonic())

    await asyncio.gather(held_up_send(0.3), held_up_send(0.0), held_up_send(0.0))
    gaps = [later - earlier for earlier, later in itertools.pairwise(left)]
    assert min(gaps) >= 0.2 * 0.95, f"sends left {min(gaps):.2f} s apart; the limit is one every 0.2 s"


async def test_a_place_not_used_goes_to_the_next_sender() -> None:
    group = Pacer(1, 60.0, burst=1)
    await group.reserve()
    waiting = asyncio.create_task(group.wait())
    await asyncio.sleep(0.01)
    assert not waiting.done()
    group.release()  # the send did not go (it failed before leaving)
    await asyncio.wait_for(waiting, 1)


async def test_emergency_help_overtakes_replies_waiting_for_the_rate(app: App) -> None:
    core, transport = channel_for(app, rate=10)
    busy = [asyncio.create_task(core.private(f"person{n}", parse_typed("/services"))) for n in range(12)]
    await asyncio.sleep(0.05)  # their replies are queued behind the rate
    await core.private("in danger", parse_typed("my mate has gone blue and wont respond"))
    await asyncio.gather(*busy)
    order = [chat for chat, _ in transport.sent]
    first_help = order.index("in danger")
    assert first_help <= 2, f"the emergency reply was number {first_help + 1} of {len(order)}"


async def test_one_chats_messages_keep_their_order_whatever_their_priority(app: App) -> None:
    core, transport = channel_for(app, rate=8)
    others = [asyncio.create_task(core.private(f"p{n}", parse_typed("/services"))) for n in range(6)]
    first = asyncio.create_task(core.private("me", parse_typed("/advice")))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(core.private("me", parse_typed("my mate has gone blue and wont respond")))
    await asyncio.gather(first, second, *others)
    mine = [text for chat, text in transport.sent if chat == "me"]
    advice_at = next(i for i, text in enumerate(mine) if "call 999 now" not in text)
    help_at = next(i for i, text in enumerate(mine) if "call 999 now" in text)
    assert advice_at < help_at, "the answer to the first message came first"


async def test_keeping_a_report_behind_other_codes_says_the_code_is_being_made(app: App) -> None:
    core, transport = channel_for(app, rate=1000)
    for text in ("/report", "Start", "Robbery or theft", "Done", *["Skip"] * 7):
        await core.private("me", parse_typed(text))
    assert transport.sent[-1][1] == "Is this right?"
    hashing = app.store._hashing  # type: ignore[attr-defined]
    blockers = [asyncio.create_task(hashing.run(KEEP, time.sleep, 1.5)) for _ in range(hashing.threads)]
    for text in ("Yes, it's right", "Yes, keep it", "Don't send it"):
        await core.private("me", parse_typed(text))
    await asyncio.gather(*blockers)
    said = [text for chat, text in transport.sent if chat == "me"]
    notice = next(i for i, t in enumerate(said) if t == "Making your secret code. This takes a moment.")
    code = next(i for i, t in enumerate(said) if "Secret code:" in t)
    assert notice < code


def test_the_urgent_messages_are_ones_the_bot_has(app: App) -> None:
    assert all(app.responses.has(message) for message in URGENT_MESSAGES)


async def test_the_code_notice_waits_for_replies_already_on_their_way_to_the_same_chat(app: App) -> None:
    core, transport = channel_for(app, rate=1000)
    for text in ("/report", "Start", "Robbery or theft", "Done", *["Skip"] * 6):
        await core.private("me", parse_typed(text))
    core.pacer = Pacer(1, 2.0, burst=1)  # one message every 2 s: replies wait their turn
    hashing = app.store._hashing  # type: ignore[attr-defined]
    blockers = [asyncio.create_task(hashing.run(KEEP, time.sleep, 3)) for _ in range(hashing.threads)]
    turns = []
    for text in ("Skip", "Yes, it's right", "Yes, keep it"):  # tapped quickly, one after another
        turns.append(asyncio.create_task(core.private("me", parse_typed(text))))
        await asyncio.sleep(0.05)
    await asyncio.gather(*turns)
    await asyncio.gather(*blockers)
    said = [text.split("\n")[0] for chat, text in transport.sent if chat == "me"]
    asked = said.index("Shall we keep this summary?")
    notice = said.index("Making your secret code. This takes a moment.")
    assert said[asked - 1 : notice + 1] == [
        "Is this right?",
        "Shall we keep this summary?",
        "Making your secret code. This takes a moment.",
    ], "the earlier turns' replies first, in order; then the notice"
    assert said[notice + 1] == "Your summary is kept."
