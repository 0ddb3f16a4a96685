"""One conformance suite: the same scripted conversations give the same transcript through the
console, aiogram and python-telegram-bot (over HTTP against the fake Bot API) and a Rasa
assistant (the JSON Rasa sends, over HTTP to the rasa-sdk action server).

A new adapter joins by adding one driver: something that says, taps, and reports what the
person saw, in order."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import json
import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Protocol

import pytest

from bot.channels.console.adapter import ConsoleTransport
from bot.core.app import App, create_app
from bot.core.channel import Channel
from bot.core.settings import Settings
from bot.core.transport import Button
from fakes.harness import MODEL_CACHE, Person, polling_bot, ptb_polling_bot, rasa_bot, settings_for, web_chat
from fakes.rasa import FakeRasa
from fakes.telegram import FakeTelegram
from fakes.web import WebPerson
from flows.events import Resume, parse_typed
from flows.replies import Reply
from responses import Renderer, Responses
from responses.hours import LONDON
from storage import Keyring

CHAT = 7_400_500_600
RASA_SENDER = "whatsapp:+447700900456"
STAFF = -1002223334
FIXED = dt.datetime(2026, 11, 21, 22, 30, tzinfo=LONDON)
REFERENCE = re.compile(r"\b[0-9A-Z]{4}-[0-9A-Z]{4}\b")
CODE = re.compile(r"Secret code: ([0-9A-Z]{4}(?:-[0-9A-Z]{4}){3})")


class Driver(Protocol):
    app: App

    async def say(self, text: str) -> None: ...
    async def tap(self, label: str) -> None: ...
    def transcript(self) -> list[str]: ...


class RecordingTransport(ConsoleTransport):
    """The console's transport, remembering what it printed as the transcript."""

    def __init__(self) -> None:
        super().__init__(io.StringIO())
        self.seen: list[str] = []

    async def send(self, chat_id: str, text: str, buttons: Sequence[Button] = ()) -> int:
        self.seen.append(entry(text, [b.text for b in buttons]))
        return await super().send(chat_id, text, buttons)

    async def delete(self, chat_id: str, message_ids: Sequence[int]) -> None:
        self.seen.append(CLEARED)


def entry(text: str, buttons: Sequence[str]) -> str:
    return text + ("\n  [" + " | ".join(buttons) + "]" if buttons else "")


class ConsoleDriver:
    def __init__(self, app: App) -> None:
        self.app = app
        self.transport = RecordingTransport()
        self.core = Channel(self.transport, replace(app.ports(), staff_chats={}))
        self.core.attach()

    async def say(self, text: str) -> None:
        await self.core.private("local", parse_typed(text), incoming=self.transport.incoming())

    async def tap(self, label: str) -> None:
        await self.say(label)  # at a console, options are typed

    def transcript(self) -> list[str]:
        return self.transport.seen


class TelegramDriver:
    def __init__(self, app: App, fake: FakeTelegram) -> None:
        self.app = app
        self.fake = fake
        self.person = Person(fake, CHAT)

    async def say(self, text: str) -> None:
        await self.person.says(text)

    async def tap(self, label: str) -> None:
        await self.person.taps(label)

    def transcript(self) -> list[str]:
        seen = []
        for method, params in self.fake.calls:
            if str(params.get("chat_id")) != str(CHAT):
                continue
            if method == "sendMessage":
                markup = params.get("reply_markup")
                rows = json.loads(markup) if isinstance(markup, str) else markup or {}
                labels = [b["text"] for row in rows.get("inline_keyboard", []) for b in row]
                seen.append(entry(str(params["text"]), labels))
            elif method == "deleteMessages" and (not seen or seen[-1] != CLEARED):
                seen.append(CLEARED)
        return seen


class RasaDriver:
    """A person on a Rasa channel: a fake Rasa server calls the action server for each message
    and presses buttons by sending their payloads back, as Rasa does."""

    def __init__(self, app: App, rasa: FakeRasa) -> None:
        self.app = app
        self.rasa = rasa

    async def say(self, text: str) -> None:
        await self.rasa.say(RASA_SENDER, text)

    async def tap(self, label: str) -> None:
        await self.rasa.tap(RASA_SENDER, label)

    def transcript(self) -> list[str]:
        shown = self.rasa.seen.get(RASA_SENDER, [])
        return [entry(m.get("text") or "", [b["title"] for b in m.get("buttons") or []]) for m in shown]


class WebDriver:
    """A person on the web chat with JavaScript off: forms posted over HTTP, the page read back."""

    def __init__(self, app: App, person: WebPerson) -> None:
        self.app = app
        self.person = person
        self.seen: list[str] = []
        self._known = 0

    async def _note(self) -> None:
        """What the bot said since the last look: each message has a number on the page (older
        ones drop off a page, so counting them would not do)."""
        labels = [label.strip() for label, _ in self.person.page.buttons]
        fresh = [i for i in self.person.page.items if not i.mine and int(i.id[1:]) > self._known]
        for n, item in enumerate(fresh):
            self.seen.append(entry(item.text, labels if n == len(fresh) - 1 else item.offered))
        if self.person.page.items:
            self._known = max(self._known, *(int(i.id[1:]) for i in self.person.page.items))

    async def say(self, text: str) -> None:
        await self._back_if_left()
        await self.person.say(text)
        await self._refresh()

    async def tap(self, label: str) -> None:
        await self._back_if_left()
        await self.person.tap(label)
        await self._refresh()

    async def _back_if_left(self) -> None:
        """After leaving, the person comes back to the page: a new chat."""
        if self.seen and self.seen[-1] == CLEARED:
            await self.person.open("/?new")  # for a while after leaving, "/" sends the browser on
            await self._note()

    async def _refresh(self) -> None:
        assert self.person.status in (200, 303), f"the page answered {self.person.status}"
        if not self.person.location.startswith(self.person.base):
            self.seen.append(CLEARED)  # "Leave now": the browser went to the neutral site
            self._known = 0
            return
        await self._note()

    def transcript(self) -> list[str]:
        return self.seen


def as_elsewhere(transcript: list[str], channel: str = "rasa") -> list[str]:
    """A transcript with each of a channel's own wordings (``id@rasa``, ``id@web``: what is true
    there) replaced by the general wording of the same message."""
    responses = Responses.load()
    renderer = Renderer(responses, retention_days=90, draft_hours=24)
    pairs = [
        (renderer.render(Reply(m), "en", channel).text, renderer.render(Reply(m), "en").text)
        for m in responses.variants(channel)
    ]
    # A wording with variables (a code, a reference) differs only in some lines: those, one by one.
    pairs += [
        (own_line, general_line)
        for own, general in list(pairs)
        if own.count("\n") == general.count("\n")
        for own_line, general_line in zip(own.splitlines(), general.splitlines(), strict=True)
        if own_line != general_line and "{" not in own_line
    ]
    out = []
    for line in transcript:
        for own, general in pairs:
            line = line.replace(own, general)
        out.append(line)
    return out


@contextlib.asynccontextmanager
async def driving(
    name: str, fake: FakeTelegram, data: Path, more: dict[str, str] | None = None
) -> AsyncIterator[Driver]:
    fake.chat(STAFF, "supergroup")
    extra = {"REACHABLE_STAFF_CHAT_ID": str(STAFF), "REACHABLE_STAFF_USER_IDS": "1", **(more or {})}
    key = Keyring.new_key().decode()
    settings = settings_for(fake, data, key, **extra)
    if name == "console":
        environ = {"REACHABLE_DATA_DIR": str(data), "REACHABLE_CACHE_DIR": str(MODEL_CACHE), **extra}
        async with create_app(Settings.from_environ(environ)) as app:
            app.renderer.clock = lambda: FIXED
            yield ConsoleDriver(app)
        return
    if name == "web":
        async with web_chat(data, key, fake.url, extra) as (app, base):
            app.renderer.clock = lambda: FIXED
            app.delivery.backoff = 0.05
            person = WebPerson(base)
            try:
                await person.open()  # the page greets as Telegram's Start button does: not in the script
                driver = WebDriver(app, person)
                driver._known = len(person.page.items)
                yield driver
            finally:
                await person.close()
        return
    if name == "rasa":
        async with rasa_bot(data, key, fake.url, **extra) as (app, rasa):
            app.renderer.clock = lambda: FIXED
            app.delivery.backoff = 0.05
            yield RasaDriver(app, rasa)
        return
    running = polling_bot(settings) if name == "aiogram" else ptb_polling_bot(settings)
    async with running as started:
        app = started if isinstance(started, App) else started.app
        app.renderer.clock = lambda: FIXED
        app.delivery.backoff = 0.05
        yield TelegramDriver(app, fake)


def normalised(transcript: list[str]) -> list[str]:
    return [CODE.sub("Secret code: <code>", REFERENCE.sub("<ref>", line)) for line in transcript]


async def staff_replies(driver: Driver, text: str) -> None:
    """A support worker answers the latest report; the person sees it arrive."""
    reference = re.findall(r"Reference: ([0-9A-Z]{4}-[0-9A-Z]{4})", "\n".join(driver.transcript()))[-1]
    before = len(driver.transcript())
    await driver.app.desk.command("reply", f"{reference} {text}", frozenset({"support"}))
    driver.app.delivery.wake()
    for _ in range(200):
        if len(driver.transcript()) > before:
            await asyncio.sleep(0.3)
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the staff reply never reached the person")


async def to_the_review(driver: Driver, what: str = "Robbery or theft") -> None:
    await driver.say("/report")
    await driver.tap("Start")
    await driver.tap(what)
    await driver.tap("Done")
    await driver.tap("This week")
    await driver.tap("In London")
    await driver.say("hackney")
    await driver.tap("Skip")
    await driver.say("He took my phone and my cards.")
    for _ in range(3):
        await driver.tap("Skip")


Script = Callable[[Driver], object]


async def disclosure_at_2am(driver: Driver) -> None:
    await driver.say("/start")
    await driver.say("I've been raped")
    await driver.tap("Who can help")
    await driver.say("menu")


async def whole_report_changed_removed_and_kept(driver: Driver) -> None:
    await to_the_review(driver)
    await driver.tap("Change an answer")
    await driver.tap("When")
    await driver.tap("Today")
    await driver.tap("Remove an answer")
    await driver.tap("Borough")
    await driver.tap("Yes, it's right")
    await driver.tap("Yes, keep it")
    await driver.tap("Don't send it")


async def sent_with_replies_then_a_staff_reply_and_an_answer(driver: Driver) -> None:
    await to_the_review(driver)
    await driver.tap("Yes, it's right")
    await driver.tap("No, don't keep it")
    await driver.tap("To the support team")
    await driver.tap("Yes, they may reply")
    await staff_replies(driver, "Are you somewhere safe?")
    await driver.say("Yes, thank you")
    await driver.tap("Send it")


async def declined(driver: Driver) -> None:
    await to_the_review(driver)
    await driver.tap("Yes, it's right")
    await driver.tap("No, don't keep it")
    await driver.tap("Don't send it")


async def emergency_interruption_and_resume(driver: Driver) -> None:
    await driver.say("/report")
    await driver.tap("Start")
    await driver.tap("Sexual assault or rape")
    await driver.tap("Robbery or theft")
    await driver.say("my mate has gone blue and wont respond")
    await driver.tap("Carry on where I was")
    await driver.tap("Done")


async def quick_exit(driver: Driver) -> None:
    await driver.say("/start")
    await driver.tap("Advice and staying safer")
    await driver.tap("Leave now")
    await driver.say("hello again")


async def deleted_by_code(driver: Driver) -> None:
    await to_the_review(driver)
    await driver.tap("Yes, it's right")
    await driver.tap("Yes, keep it")
    await driver.tap("Don't send it")
    code = CODE.findall("\n".join(driver.transcript()))[-1]
    await driver.say(f"/delete {code}")
    await driver.say(f"/delete {code}")


async def bad_input(driver: Driver) -> None:
    await driver.say("/start")
    await driver.say("x" * 5000)
    await driver.say("/nonsense")
    await driver.say("1, 2, 99")
    await driver.say("/report")
    await driver.tap("Start")
    await driver.say("9")
    await driver.say("yes")


async def typed_as_people_type(driver: Driver) -> None:
    """The whole report in words, as on the web, SMS, WhatsApp or with a screen reader."""
    for typed in (
        "/report",
        "yes go on",
        "i was robbed",
        "thats all",
        "a few days ago",
        "a flat in vauxhall",
        "g and a bit of tina",
        "He took my phone and my cards.",
        "back",
        "He took my phone and my cards while I was out of it.",
        "grindr",
        "nobody yet",
        "someone to talk to",
        "thats all",
        "yes thats right",
        "yes keep it",
        "dont send it",
    ):
        await driver.say(typed)


async def after_emergency_help(driver: Driver) -> None:
    await driver.say("my mate took too much g and wont wake up")
    await driver.say("hes not breathing now what do i do")
    await driver.say("ive called 999. will the police come too? im scared")
    await driver.say("ambulance is here. who can i talk to tomorrow")


SCRIPTS: dict[str, Script] = {
    "disclosure at 2am": disclosure_at_2am,
    "whole report, changed, removed, kept": whole_report_changed_removed_and_kept,
    "sent, staff reply, answer": sent_with_replies_then_a_staff_reply_and_an_answer,
    "declined": declined,
    "emergency and resume": emergency_interruption_and_resume,
    "quick exit": quick_exit,
    "deleted by code": deleted_by_code,
    "bad input": bad_input,
    "typed as people type": typed_as_people_type,
    "after emergency help": after_emergency_help,
}
CHANNELS = ("console", "aiogram", "ptb", "rasa", "web")
CLEARED = "[the chat was cleared]"


async def transcript_of(name: str, script: Script, tmp_path: Path) -> list[str]:
    fake = FakeTelegram()
    await fake.start()
    try:
        async with driving(name, fake, tmp_path / name) as driver:
            await script(driver)  # type: ignore[misc]
            return normalised(driver.transcript())
    finally:
        await fake.stop()


@pytest.mark.parametrize("script", SCRIPTS)
async def test_every_channel_gives_the_same_transcript(script: str, tmp_path: Path) -> None:
    channels = [c for c in CHANNELS if not (c == "web" and script == "sent, staff reply, answer")]
    transcripts = {name: await transcript_of(name, SCRIPTS[script], tmp_path) for name in channels}
    assert transcripts["console"], "the script produced nothing"
    if script in ("typed as people type", "after emergency help"):
        # Every typed answer understood: no "didn't catch that", no block said twice.
        assert not any("didn't catch that" in line for line in transcripts["console"])
        firsts = [line.split("\n")[0] for line in transcripts["console"] if len(line) > 200]
        assert len(firsts) == len(set(firsts)), firsts
    # Each channel speaks of itself ("Telegram can see who writes here" on Telegram only): the
    # same conversation once each channel's own wordings read as the general ones.
    assert as_elsewhere(transcripts["aiogram"], "telegram") == transcripts["console"]
    assert as_elsewhere(transcripts["ptb"], "telegram") == transcripts["console"]
    # Rasa's channels cannot delete: the same conversation, with words that say so; and an SMS
    # carries at most 1,600 characters, so long messages come in more parts.
    assert all(len(line.split("\n  [")[0]) <= 1600 for line in transcripts["rasa"])
    elsewhere = [line for line in transcripts["console"] if line != CLEARED]
    assert words(as_elsewhere(transcripts["rasa"])) == words(elsewhere)
    # The web page is replaced when the person leaves, and a page has no push: up to leaving,
    # the same conversation; a staff reply waits for the person's code (tests/test_web.py).
    if script != "sent, staff reply, answer":
        web = as_elsewhere(transcripts["web"], "web")
        assert words(until_left(web)) == words(until_left(transcripts["console"]))
        if CLEARED in web:
            assert web[web.index(CLEARED) + 1].startswith("Hi."), "coming back starts a new chat"


def until_left(transcript: list[str]) -> list[str]:
    return transcript[: transcript.index(CLEARED) + 1] if CLEARED in transcript else transcript


def words(transcript: list[str]) -> list[str]:
    """Every word and button of a transcript in order, wherever its messages were cut."""
    return " ".join(transcript).split()


async def test_the_console_starts_with_the_welcome_like_any_first_contact(tmp_path: Path) -> None:
    fake = FakeTelegram()
    async with driving("console", fake, tmp_path) as driver:
        assert isinstance(driver, ConsoleDriver)
        await driver.core.private("local", Resume())
        assert driver.transcript()[0].startswith("Hi. This is a confidential chat")
