"""Matching on every channel: someone else has already named a person; the person here keeps a
report that may be replied to, names the same profile spelled their own way, and is told through
their channel that someone else named the same person, with the choice of what happens next. The
matching contact gets one email about the match, and one with the person's choice."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.core.guards import FloodGuard
from fakes.smtp import SMTPServer
from fakes.telegram import FakeTelegram
from storage import ChatKey, NewReport
from storage.base import Naming
from tests.test_conformance import CHANNELS, CODE, Driver, WebDriver, driving, to_the_review

CASEWORKER = "caseworker@charity.example"
FOUND = "Someone else has named the same person"


async def until(check: object, what: str, seconds: float = 60.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never: {what}")


async def someone_else_named_him(driver: Driver) -> None:
    """Another person's report, naming the profile their way (kept through the store itself)."""
    other = ChatKey(b"o" * 32)
    report = NewReport("SAMX-0001", "C0DE-0THR-AAAA-AAAA", {"what": ("drugged",)}, ("drugged",), True, None, False, 1)
    await driver.app.store.commit_turn(other, report=report)
    naming = Naming("SAMX-0001", "app", "grindr:tom88", "tom 88 on grindr", ("matching:email",))
    await driver.app.store.commit_turn(other, naming=naming)


def mails(smtp: SMTPServer, words: str) -> list[str]:
    bodies = []
    for message, to in zip(smtp.mailbox.messages, smtp.mailbox.recipients, strict=True):
        body = message.get_payload(decode=True)
        text = body.decode() if isinstance(body, bytes) else str(message.get_payload())
        if CASEWORKER in to and words in f"{message['Subject']}\n{text}":
            bodies.append(text)
    return bodies


@pytest.mark.parametrize("channel", CHANNELS)
async def test_two_people_naming_one_profile_on_every_channel(
    channel: str, tmp_path: Path, unused_tcp_port: int
) -> None:
    smtp = SMTPServer(tmp_path, unused_tcp_port)
    smtp.start()
    fake = FakeTelegram()
    await fake.start()
    more = {**smtp.settings(), "REACHABLE_MATCHING_EMAIL": CASEWORKER}
    try:
        async with driving(channel, fake, tmp_path / channel, more) as driver:
            driver.app.conversations.flood = FloodGuard(burst=10_000)  # a script taps faster than anyone
            await someone_else_named_him(driver)
            await to_the_review(driver)
            await driver.tap("Yes, it's right")
            await driver.tap("Yes, keep it")
            await driver.tap("To the support team")
            await driver.tap("Yes, they may reply")
            assert "Add who did it (optional)" in driver.transcript()[-1], "offered right after the code"
            await driver.tap("Add who did it (optional)")
            await driver.tap("An app and profile name")
            await driver.say("Grindr: Tom_88")
            driver.app.delivery.wake()
            if channel == "web":  # a page cannot be reached unasked: it comes with the code
                code = CODE.findall("\n".join(driver.transcript()))[-1]
                await until(lambda: mails(smtp, "name the same person"), "the match notice was sent")
                await driver.say(f"/check {code}")
                assert isinstance(driver, WebDriver)
                for _ in range(100):  # "Check for new messages"
                    if any(FOUND in line for line in driver.transcript()):
                        break
                    await asyncio.sleep(0.1)
                    await driver.person.open()
                    await driver._note()
            await until(lambda: any(FOUND in line for line in driver.transcript()), "the person was told")
            [notice] = mails(smtp, "name the same person")
            assert "SAMX-0001" in notice and "tom 88 on grindr" in notice and "Grindr: Tom_88" in notice
            assert sum(FOUND in line for line in driver.transcript()) == 1
            await driver.tap("Talk to the caseworker")
            driver.app.delivery.wake()
            await until(
                lambda: mails(smtp, "would like to talk"),
                f"the choice reached the caseworker: {driver.transcript()[-3:]}",
            )
            assert len(mails(smtp, "name the same person")) == 1, "one notice, exactly once"
    finally:
        await fake.stop()
        smtp.stop()
