"""The bot dies at every durable boundary, on every channel, and the person still ends with
exactly one kept report, learns its code exactly once, and gets each answer they are owed; each
summary reaches staff once, and staff relay links match what was consented to.

Deterministic: each process kills itself at a named point (``bot/core/crashpoints.py``) and the
next one starts armed for the next point. The one window no software can close is a part that
left (Telegram or the terminal took it) just before it was written down as out: it is sent
again, so there the code may show twice, never not at all.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fakes.smtp import SMTPServer
from fakes.telegram import FakeTelegram
from storage import ChatKey, Keyring, SQLiteStore
from tests.crash_people import ConsolePerson, RasaPerson, Someone, TelegramPerson, WebPagePerson, environ_for

pytestmark = pytest.mark.slow
CODE = re.compile(r"Secret code: ([0-9A-Z]{4}(?:-[0-9A-Z]{4}){3})")
STAFF = -1002001
STAFF_SUMMARY = re.compile(r"New confidential summary ([0-9A-Z]{4}-[0-9A-Z]{4})")
EMERGENCY = "If you or someone else is in danger, call 999 now."
# A shorter report (one question) keeps each of the many crashes quick: a charity may turn off
# questions, and the consent steps stay.
ONE_QUESTION = "off: [when, where, substances, account, app, elsewhere, wants]\n"

# What a person answers on each screen, found by the start of its text; always in words.
ANSWERS = [
    ("Before you start", "1"),
    ("You have a report you have not finished", "1"),
    ("What happened?", "3, 5"),
    ("Is this right?", "1"),
    ("Shall we keep this summary?", "1"),
    ("Shall we send it to someone who can help?", "1"),
    ("May they reply", "1"),
]


def answer_for(shown: list[str]) -> str | None:
    """The answer to whatever was asked last; None if nothing of the report is asked."""
    text = "\n\n".join(shown)
    at, answer = max(((text.rfind(prompt), answer) for prompt, answer in ANSWERS), key=lambda found: found[0])
    return answer if at >= 0 else None


def codes(shown: list[str]) -> list[str]:
    return [m.group(1) for text in shown for m in CODE.finditer(text)]


@dataclass
class Run:
    """One person's way through every crash, and what the data folder must hold after each."""

    person: Someone
    data: Path
    key: str
    staff: Callable[[], list[str]]  # what staff received, in order
    kept: list[str] = field(default_factory=list)  # codes of the reports that must exist now
    started: int = 0  # where in the transcript the current step began
    last_seen: int = 0  # on Telegram: the chat's last message id before the current step

    def count(self, query: str) -> int:
        with sqlite3.connect(self.data / "reachable.sqlite3") as db:
            return int(db.execute(query).fetchone()[0])

    def since(self) -> list[str]:
        return self.person.transcript[self.started :]

    def begin(self) -> None:
        self.started = len(self.person.transcript)
        if isinstance(self.person, TelegramPerson):
            self.last_seen = self.person.last_message_id()

    async def owed(self) -> list[bytes]:
        async with SQLiteStore(self.data / "reachable.sqlite3", Keyring([self.key.encode()])) as store:
            return [a.body[:300] for a in await store.unsent_answers()]

    async def check_store(self) -> None:
        """Exactly the reports the person kept, each opened by the code they were shown, each
        with its relay link (every one allowed replies); nothing left owed."""
        assert self.count("SELECT count(*) FROM reports") == len(self.kept), f"{len(self.kept)} kept"
        assert self.count("SELECT count(*) FROM relays") == len(self.kept), "a relay link per report"
        async with SQLiteStore(self.data / "reachable.sqlite3", Keyring([self.key.encode()])) as store:
            for code in self.kept:
                assert await store.find_by_code(code) is not None, "the code shown opens the report"
        # Forgotten once what holds it was written: a moment after the person has it.
        deadline = time.monotonic() + 30
        while self.count("SELECT count(*) FROM answers"):
            assert time.monotonic() < deadline, f"still owed: {await self.owed()}"
            await asyncio.sleep(0.05)
        # And staff have everything owed to them (a send a crash cut short goes again, marked),
        # before the next step: it is not left for a later start to send.
        unsent = "SELECT count(*) FROM deliveries WHERE status IN ('pending', 'sending')"
        while self.count(unsent):
            assert time.monotonic() < deadline, f"still owed to staff, after 30 s\n{self.person.tail()}"
            await asyncio.sleep(0.05)


async def report(run: Run, from_the_start: bool = True) -> None:
    """Keep a report, answering whatever is asked, until its code is shown or the bot dies."""
    person = run.person
    if from_the_start:
        await person.say("/report")
    for _ in range(12):
        if codes(run.since()) or not person.alive:
            return
        answer = answer_for(person.transcript[-2:])
        assert answer is not None, f"{person.channel}: nothing to answer in {person.transcript[-2:]}"
        await person.say(answer)
    raise AssertionError(f"{person.channel}: no code after twelve answers: {person.transcript[-3:]}\n{person.tail()}")


def one_new_code(run: Run, most: int = 1) -> str:
    shown = codes(run.since())
    assert shown, f"{run.person.channel}: no code shown in {run.since()}"
    assert len(set(shown)) == 1, f"one report, one code: {shown}"
    assert len(shown) <= most, f"the code shown {len(shown)} times"
    return shown[0]


async def staff_got_one(run: Run) -> None:
    """The kept report's summary reached staff; never twice without "Possible repeat"."""
    reference = re.findall(r"Reference: ([0-9A-Z]{4}-[0-9A-Z]{4})", "\n".join(run.since()))[-1]
    deadline = time.monotonic() + 60
    while not any(reference in text for text in run.staff()):
        assert time.monotonic() < deadline, f"the summary of {reference} never reached staff"
        await asyncio.sleep(0.1)
    plain = [t for t in run.staff() if reference in t and "Possible repeat" not in t]
    assert len(plain) <= 1, f"the summary of {reference} reached staff twice unmarked"


# ---------------------------------------------------------------- the steps, and what is owed
Owed = Callable[[list[str]], bool]


@dataclass(frozen=True)
class Crash:
    at: str
    act: Callable[[Run], Awaitable[None]]
    owed: Callable[[Run], Owed]  # what the person must be shown on coming back
    check: Callable[[Run], Awaitable[None]]
    pull: bool = True  # also on channels people fetch from (the web page, Rasa)


async def keep(run: Run) -> None:
    run.begin()
    await report(run)


def code_unless_shown(run: Run) -> Owed:
    """The code, unless it was shown before the crash. On Telegram it comes unasked: the answer
    kept is sent, or the update never taken is sent again by Telegram and taken now. Elsewhere,
    whatever comes when the person is back (they may have to answer the last question again)."""
    if codes(run.since()) or not isinstance(run.person, TelegramPerson):
        return lambda shown: True
    return lambda shown: bool(codes(shown))


def code_now(run: Run) -> Owed:
    return lambda shown: bool(codes(shown))


def kept(most: int = 1) -> Callable[[Run], Awaitable[None]]:
    async def check(run: Run) -> None:
        if not codes(run.since()):
            await report(run, from_the_start=False)  # nothing was kept before: they answer again
        run.kept.append(one_new_code(run, most))
        await staff_got_one(run)
        await run.check_store()

    return check


async def erase(run: Run) -> None:
    run.begin()
    await run.person.say(f"/delete {run.kept[-1]}")


def erased_now(run: Run) -> Owed:
    return lambda shown: "The report is erased." in "\n".join(shown) and "What would you like to do?" in shown[-1]


def rest_now(run: Run) -> Owed:
    """What followed the part that went out before the crash: the menu."""
    return lambda shown: bool(shown) and "What would you like to do?" in shown[-1]


async def erased(run: Run) -> None:
    said = "\n".join(run.since())
    assert said.count("The report is erased.") == 1, said
    assert "No report matches" not in said, "told a report that was erased was not found"
    run.kept.pop()
    await run.check_store()


async def emergency(run: Run) -> None:
    await run.person.say("/report")
    await run.person.say("1")
    run.begin()
    await run.person.say("my mate has gone blue and wont respond")


def help_now(run: Run) -> Owed:
    return lambda shown: EMERGENCY in "\n".join(shown)


async def helped(run: Run) -> None:
    said = "\n".join(run.since())
    assert said.count(EMERGENCY) == 1, f"emergency help given {said.count(EMERGENCY)} times"
    await run.check_store()


async def start_report(run: Run) -> None:
    await run.person.say("/report")
    run.begin()
    await run.person.say("1")  # "Start": the first answer is kept, as a draft


def question_now(run: Run) -> Owed:
    return lambda shown: "What happened?" in "\n".join(shown)


async def asked_once(run: Run) -> None:
    said = "\n".join(run.since())
    # On Rasa the person comes back by writing again, and that message is answered too (at this
    # question: by asking it again).
    most = 2 if isinstance(run.person, RasaPerson) else 1
    assert 1 <= said.count("What happened?") <= most, said
    await run.check_store()


async def cancel(run: Run) -> None:
    await run.person.say("/report")
    run.begin()
    await run.person.say("/cancel")


def cancelled_now(run: Run) -> Owed:
    return lambda shown: "Your unfinished answers are deleted." in "\n".join(shown)


async def cancelled(run: Run) -> None:
    said = "\n".join(run.since())
    assert said.count("Your unfinished answers are deleted.") == 1, said
    assert run.count("SELECT count(*) FROM drafts") == 0, "the unfinished answers are forgotten"
    await run.check_store()


async def leave(run: Run) -> None:
    await run.person.say("/report")
    await run.person.say("1")
    run.begin()
    await run.person.say("/exit")


def left_now(run: Run) -> Owed:
    person = run.person
    if isinstance(person, TelegramPerson):
        # Everything the bot said since the report began is deleted; one neutral line is left.
        first = run.last_seen
        return lambda shown: "Done." in shown and person.visible_after(first) == ["Done."]
    if isinstance(person, WebPagePerson):
        return lambda shown: person.browser.location == "https://example.org/"  # the page replaced
    return lambda shown: any(line.startswith(("Done.", "Stopped.")) for line in shown)


async def gone(run: Run) -> None:
    assert run.count("SELECT count(*) FROM drafts") == 0, "the unfinished answers are forgotten"
    await run.check_store()


# A crash during a keep is followed by one that is not: coming back from the first must not pass
# the second's point (it would die while recovering).
CRASHES = [
    Crash("before_commit:report", keep, code_unless_shown, kept()),
    Crash("after_commit:urgent", emergency, help_now, helped),
    Crash("after_commit:report", keep, code_now, kept()),
    Crash("after_commit:erase", erase, erased_now, erased),
    Crash("part_out:report", keep, code_now, kept(most=2)),
    Crash("after_commit:exit", leave, left_now, gone),
    # The delivery outbox dies while the person's answer may be on its way: that part may have
    # left unrecorded (the one window), so here the code may show twice, never not at all.
    Crash("delivery_claimed:summary", keep, code_unless_shown, kept(most=2)),
    Crash("after_commit:draft", start_report, question_now, asked_once),
    Crash("delivery_out:summary", keep, code_unless_shown, kept(most=2)),
    Crash("part_recorded:erase", erase, rest_now, erased),  # between "erased" and the menu
    Crash("part_recorded:report", keep, code_unless_shown, kept()),  # between the code and the menu
    Crash("after_commit:forget", cancel, cancelled_now, cancelled),
    Crash("part_recorded:report#2", keep, code_unless_shown, kept(), pull=False),  # after the last part
]


async def crash_everywhere(run: Run, pull: bool) -> None:
    crashes = [c for c in CRASHES if c.pull or not pull]
    person = run.person
    await person.start(crashes[0].at)
    for number, crash in enumerate(crashes):
        try:
            await crash.act(run)
            assert await person.crashed(), f"never reached\n{person.tail()}"
            owed = crash.owed(run)
            await person.start(crashes[number + 1].at if number + 1 < len(crashes) else None)
            await person.come_back(owed)
            await crash.check(run)
        except AssertionError as failed:
            raise AssertionError(f"{person.channel}, killed at {crash.at}: {failed}") from failed
    await person.stop()


# ---------------------------------------------------------------- on every channel
@pytest.fixture
def key() -> str:
    return Keyring.new_key().decode()


def overlay(tmp_path: Path) -> str:
    folder = tmp_path / "responses"
    folder.mkdir()
    (folder / "questions.yaml").write_text(ONE_QUESTION)
    return str(folder)


def staffed(fake: FakeTelegram, tmp_path: Path, key: str, **extra: str) -> dict[str, str]:
    fake.chat(STAFF, "supergroup")
    return environ_for(
        fake,
        tmp_path / "data",
        key,
        REACHABLE_STAFF_CHAT_ID=str(STAFF),
        REACHABLE_RESPONSES_DIR=overlay(tmp_path),
        **extra,
    )


def staff_chat(fake: FakeTelegram) -> Callable[[], list[str]]:
    return lambda: [
        str(p.get("text", ""))
        for m, p in fake.calls
        if m.casefold() == "sendmessage" and p.get("chat_id") == str(STAFF)
    ]


@pytest.mark.parametrize("framework", ["aiogram", "ptb"])
async def test_telegram_killed_at_every_durable_boundary(
    fake: FakeTelegram, tmp_path: Path, key: str, framework: str
) -> None:
    environ = staffed(fake, tmp_path, key, REACHABLE_FRAMEWORK=framework)
    person = TelegramPerson(tmp_path / "data", environ, fake)
    try:
        await crash_everywhere(Run(person, tmp_path / "data", key, staff_chat(fake)), pull=False)
    finally:
        await person.stop()


async def test_the_web_chat_killed_at_every_durable_boundary(fake: FakeTelegram, tmp_path: Path, key: str) -> None:
    environ = staffed(fake, tmp_path, key)
    person = WebPagePerson(tmp_path / "data", environ)
    try:
        await crash_everywhere(Run(person, tmp_path / "data", key, staff_chat(fake)), pull=True)
    finally:
        await person.stop()


async def test_rasa_actions_killed_at_every_durable_boundary(fake: FakeTelegram, tmp_path: Path, key: str) -> None:
    environ = staffed(fake, tmp_path, key)
    person = RasaPerson(tmp_path / "data", environ)
    await person.open()
    try:
        await crash_everywhere(Run(person, tmp_path / "data", key, staff_chat(fake)), pull=True)
    finally:
        await person.stop()


async def test_the_console_killed_at_every_durable_boundary(
    fake: FakeTelegram, tmp_path: Path, key: str, unused_tcp_port: int
) -> None:
    smtp = SMTPServer(tmp_path, unused_tcp_port)
    smtp.start()
    environ = environ_for(fake, tmp_path / "data", key, REACHABLE_RESPONSES_DIR=overlay(tmp_path), **smtp.settings())
    environ.pop("REACHABLE_TELEGRAM_TOKEN")  # the console needs no token: summaries go by email
    person = ConsolePerson(tmp_path / "data", environ)

    def mailbox() -> list[str]:
        return [f"{m['Subject']}\n{m.get_payload()}" for m in smtp.mailbox.messages]

    try:
        await crash_everywhere(Run(person, tmp_path / "data", key, mailbox), pull=False)
    finally:
        await person.stop()
        smtp.stop()


async def test_no_draft_outlives_its_expiry(tmp_path: Path) -> None:
    keyring = Keyring([Keyring.new_key()])
    clock = [time.time()]
    async with SQLiteStore(tmp_path / "db.sqlite3", keyring, clock=lambda: clock[0]) as store:
        for n in range(20):
            await store.save_draft(ChatKey(bytes([n]) * 32), b"answers")
        clock[0] += 24 * 3600 + 1
        assert all([await store.load_draft(ChatKey(bytes([n]) * 32)) is None for n in range(20)])
        assert (await store.purge_expired()).drafts == 20
