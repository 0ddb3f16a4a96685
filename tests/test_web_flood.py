"""The web chat when someone floods it: one client making sessions as fast as it can, in a
process of its own, while a person goes on with their conversation; and memory, measured."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
from markupsafe import escape

from bot.channels.web.adapter import MAX_SESSIONS, MEMORY_BOUND, SESSION_BYTES, Sessions
from bot.core.transport import Button
from fakes.harness import web_chat_served
from fakes.web_load import flood_while_a_person_talks
from storage import Keyring

SECONDS = 30.0


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads /proc")
async def test_a_client_making_sessions_for_30_seconds_never_ends_a_persons_chat(tmp_path: Path) -> None:
    key = Keyring.new_key().decode()
    async with web_chat_served(tmp_path / "data", key, real_rate_limits=True) as (_, base, chat):
        flooded = await flood_while_a_person_talks(base, SECONDS)
        sessions = len(chat.sessions)
        held = sum(s.size for s in chat.sessions._fresh.values()) + sum(s.size for s in chat.sessions._used.values())
    assert flooded.statuses == {200}, "every message answered: never refused, never ended"
    assert flooded.answered == len(flooded.took) >= 15
    assert sum(flooded.counts.values()) > 500, "the flood really was one"
    assert int(flooded.counts.get("200", 0)) <= 20 + SECONDS * 0.2 + 1, "the flooder got a few new chats, then waited"
    assert sessions <= 30
    assert held <= sessions * SESSION_BYTES, "what the pages hold stays within their bound"


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


def test_a_message_too_long_for_the_page_as_html_is_shown_shortened_and_the_page_stays_within_its_bound() -> None:
    session = Sessions(Keyring([Keyring.new_key()]).session_ids).new()
    assert session is not None
    session.show("😀" * 4000, "en", mine=True)
    assert session.shown[-1].html == "😀" * 4000, "the longest message of emoji fits whole"
    # Each quotation mark or ampersand is five characters as HTML, and one emoji makes every
    # character four bytes: as HTML these would be 80 KB and 1.3 MB.
    for typed in ('"' * 3999 + "😀", "&" * 60_000 + "😀"):
        session.show(typed, "en", mine=True)
        shown = session.shown[-1].html
        assert session.size <= SESSION_BYTES, f"{session.size} bytes held, bound {SESSION_BYTES}"
        assert shown.startswith(escape(typed[:100])) and shown.endswith("…"), "shortened, and it says so"
