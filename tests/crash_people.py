"""One person on each channel, for the crash tests: the bot as a real process (started, killed
by its own crash point, started again) and everything it has shown this person, in order.

Every person types their answers (the words work on every channel, as they must for a screen
reader, SMS or WhatsApp); each channel's own way of coming back after a crash is its own:
Telegram sends again what it was not told was handled, the console starts again in the same
terminal, a browser reloads the page with its cookie, a Rasa user writes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from fakes.harness import MODEL_CACHE, bot_process_env, free_port, settings_for
from fakes.rasa import TOKEN as RASA_TOKEN
from fakes.rasa import FakeRasa
from fakes.telegram import FakeTelegram
from fakes.web import WebPerson

QUIET = 0.4  # the bot has said all it will say in answer, when it has been quiet this long
TIMEOUT = 60.0  # generous: these run on a busy machine too
CRASHED = -signal.SIGKILL


class Someone:
    """What every channel's person does. ``transcript``: each message the bot has shown them."""

    channel = ""
    command = ""

    def __init__(self, data: Path, environ: dict[str, str]) -> None:
        self.data = data
        self.environ = environ
        self.process: asyncio.subprocess.Process | None = None
        self.mark = 0
        self.log = data.parent / f"{data.name}-{self.channel}.log"

    # ------------------------------------------------------------------ the process
    async def start(self, crash_at: str | None) -> None:
        self.mark = len(self.transcript)  # what the person saw before this start
        environ = {k: v for k, v in os.environ.items() if not k.startswith("REACHABLE_")}
        environ.update(self.environ)
        environ["PYTHONUNBUFFERED"] = "1"
        if crash_at:
            environ["REACHABLE_CRASH_AT"] = crash_at
        with self.log.open("ab") as stderr:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                *self.command.split(),
                env=environ,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )
        await self.ready()

    async def ready(self) -> None:
        """Wait until the process takes what a person does."""

    async def listening(self, url: str) -> None:
        """Wait until ``url`` answers 200 (the process serves HTTP)."""

        async def answers() -> bool:
            try:
                async with aiohttp.ClientSession() as probe, probe.get(url) as answer:
                    return answer.status == 200
            except aiohttp.ClientError:
                return False

        deadline = time.monotonic() + TIMEOUT
        while not await answers():
            assert self.alive and time.monotonic() < deadline, f"{self.channel}: never listened\n{self.tail()}"
            await asyncio.sleep(0.05)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def crashed(self, within: float = TIMEOUT) -> bool:
        """Whether the process died at its crash point (and not of anything else) ``within``
        seconds."""
        assert self.process is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.process.wait(), within)
        if self.process.returncode is None:
            return False
        assert self.process.returncode == CRASHED, f"the bot died of something else: {self.tail()}"
        return True

    async def dead(self) -> None:
        """The connection broke: the process is going; wait until it has gone."""
        assert self.process is not None
        await asyncio.wait_for(self.process.wait(), TIMEOUT)

    async def stop(self) -> None:
        if self.alive and self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    # ------------------------------------------------------------------ what the person does
    async def say(self, text: str) -> None:
        """Type ``text``; return once the bot has answered, or died."""
        raise NotImplementedError

    async def come_back(self, expect: Callable[[list[str]], bool]) -> None:
        """After a restart, do what a person on this channel does to get back to the chat, and
        wait until what they see satisfies ``expect`` (given what was shown since)."""
        raise NotImplementedError

    @property
    def transcript(self) -> list[str]:
        raise NotImplementedError

    async def _until(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while not done():
            assert time.monotonic() < deadline, f"{self.channel}: {what} never came\n{self.transcript[-6:]}"
            await asyncio.sleep(0.05)


class ConsolePerson(Someone):
    """``reachable console`` in a terminal: it starts again in the same one."""

    channel = "console"
    command = "console --chat crash-tests"
    PROMPT = "\n> "

    def __init__(self, data: Path, environ: dict[str, str]) -> None:
        super().__init__(data, environ)
        self.screens: list[str] = []

    async def ready(self) -> None:
        await self._read_screen()

    async def _read_screen(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        buffer = ""
        deadline = time.monotonic() + TIMEOUT
        while not buffer.endswith(self.PROMPT):
            try:
                chunk = await asyncio.wait_for(self.process.stdout.read(4096), max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                raise AssertionError(f"console: no prompt\n{buffer}\n{self.tail()}") from None
            if not chunk:  # it died
                await asyncio.wait_for(self.process.wait(), TIMEOUT)
                break
            buffer += chunk.decode()
        if buffer:
            self.screens.append(buffer)

    async def say(self, text: str) -> None:
        assert self.process is not None and self.process.stdin is not None
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.process.stdin.write((text + "\n").encode())
            await self.process.stdin.drain()
        await self._read_screen()

    async def come_back(self, expect: Callable[[list[str]], bool]) -> None:
        shown = self.screens[self.mark :]  # the screen it started with
        assert expect(shown), f"console, on coming back: {shown}"

    @property
    def transcript(self) -> list[str]:
        return self.screens

    async def stop(self) -> None:
        if self.alive and self.process is not None and self.process.stdin is not None:
            self.process.stdin.close()
            await asyncio.wait_for(self.process.wait(), 30)


class TelegramPerson(Someone):
    """``reachable run`` on aiogram (or python-telegram-bot), against the fake Bot API: after a
    restart, Telegram sends again what it was not told was handled."""

    channel = "telegram"
    command = "run"
    CHAT = 7_770_001

    def __init__(self, data: Path, environ: dict[str, str], fake: FakeTelegram) -> None:
        super().__init__(data, environ)
        self.fake = fake
        fake.chat(self.CHAT)

    async def ready(self) -> None:
        polls = self._polls()
        await self._until(lambda: self._polls() > polls or not self.alive, "the bot's first getUpdates")

    def _polls(self) -> int:
        return sum(1 for method, _ in self.fake.calls if method.casefold() == "getupdates")

    def _said(self) -> int:
        return len(self.transcript)

    async def say(self, text: str) -> None:
        before = self._said()
        await self.fake.user_sends(self.CHAT, text)
        await self._until(lambda: (self._said() > before and self._whole()) or not self.alive, "an answer")
        await self._quiet()

    def _whole(self) -> bool:
        """Whether the bot's last message ends an answer: every answer here ends with buttons,
        but for the quick exit's one neutral line. (A busy machine may space an answer's
        messages further apart than any quiet spell a test could wait for.)"""
        sent = [
            p for m, p in self.fake.calls if m.casefold() == "sendmessage" and str(p.get("chat_id")) == str(self.CHAT)
        ]
        return bool(sent) and (bool(sent[-1].get("reply_markup")) or str(sent[-1].get("text", "")) == "Done.")

    async def _quiet(self) -> None:
        while self.alive:
            since = time.monotonic() - self.fake.last_spoke.get(self.CHAT, 0.0)
            if since >= QUIET:
                return
            await asyncio.sleep(QUIET - since)

    async def come_back(self, expect: Callable[[list[str]], bool]) -> None:
        def arrived() -> bool:
            shown = self.transcript[self.mark :]
            return expect(shown) and (not shown or self._whole())

        await self._until(arrived, "what was owed")
        await self._quiet()

    @property
    def transcript(self) -> list[str]:
        """Every message sent to this chat, deleted ones too (the fake's record of calls)."""
        return [
            str(params.get("text", ""))
            for method, params in self.fake.calls
            if method.casefold() == "sendmessage" and str(params.get("chat_id")) == str(self.CHAT)
        ]

    def last_message_id(self) -> int:
        return max(self.fake.chat(self.CHAT).messages, default=0)

    def visible_after(self, message_id: int) -> list[str]:
        """What the bot said after ``message_id`` that is still in the chat (not deleted)."""
        messages = self.fake.chat(self.CHAT).messages.items()
        return [m.text or "" for number, m in messages if number > message_id and m.from_bot]


class WebPagePerson(Someone):
    """``reachable web`` in a browser without JavaScript: after a restart, the person reloads
    the page, and their cookie finds their conversation again."""

    channel = "web"
    command = "web"

    def __init__(self, data: Path, environ: dict[str, str]) -> None:
        port = free_port()
        listen = {"REACHABLE_WEB_LISTEN": f"127.0.0.1:{port}", "REACHABLE_WEB_EXIT_URL": "https://example.org/"}
        super().__init__(data, {**environ, **listen})
        self.base = f"http://127.0.0.1:{port}"
        self.browser = WebPerson(self.base)
        self.shown: dict[tuple[int, str], str] = {}  # (visit, message id on the page) -> text
        self.visit = 0

    async def ready(self) -> None:
        await self.listening(f"{self.base}/healthz")
        if not self.shown:
            await self.browser.open()
            self._note()

    def _note(self) -> None:
        for item in self.browser.page.items:
            if not item.mine:
                self.shown.setdefault((self.visit, item.id), item.text)

    async def say(self, text: str) -> None:
        if self.browser.location.startswith("https://example.org"):  # they left: a new visit
            self.browser.location = ""
            self.visit += 1
            await self.browser.open("/?new")  # for a while after leaving, "/" sends the browser on
            self._note()
        try:
            await self.browser.say(text)
        except aiohttp.ClientError:  # it died while answering: the browser shows an error
            await self.dead()
            return
        self._note()

    async def come_back(self, expect: Callable[[list[str]], bool]) -> None:
        self.visit += 1  # the page is made anew: its numbering starts again
        await self.browser.open()
        self._note()
        shown = self.transcript[self.mark :]
        assert expect(shown), f"web, on coming back: {shown}\n{self.tail()}"

    @property
    def transcript(self) -> list[str]:
        return list(self.shown.values())

    async def stop(self) -> None:
        await super().stop()
        await self.browser.close()


class RasaPerson(Someone):
    """``reachable rasa-actions`` called by a Rasa server (here, a stand-in): after a restart,
    the person simply writes again."""

    channel = "rasa"
    command = "rasa-actions"
    SENDER = "whatsapp:+447700900777"

    def __init__(self, data: Path, environ: dict[str, str]) -> None:
        port = free_port()
        super().__init__(data, {**environ, "REACHABLE_RASA_ACTIONS_LISTEN": f"127.0.0.1:{port}"})
        self.rasa = FakeRasa(f"http://127.0.0.1:{port}")
        self.environ["REACHABLE_RASA_TOKEN"] = RASA_TOKEN

    async def open(self) -> None:
        await self.rasa.start()
        self.environ["REACHABLE_RASA_URL"] = self.rasa.url

    async def ready(self) -> None:
        await self.listening(f"{self.rasa.actions_url}/health")

    async def say(self, text: str) -> None:
        latest: dict[str, Any] = {"intent": {"name": None, "confidence": 0.0}, "text": text}
        latest.update(entities=[], message_id=uuid.uuid4().hex)
        try:
            await self.rasa.run_action(self.SENDER, latest)
        except aiohttp.ClientError:  # it died while answering: Rasa says nothing
            await self.dead()

    async def come_back(self, expect: Callable[[list[str]], bool]) -> None:
        await self.say("hello?")
        shown = self.transcript[self.mark :]
        assert expect(shown), f"rasa, on coming back: {shown}\n{self.tail()}"

    @property
    def transcript(self) -> list[str]:
        return self.rasa.texts(self.SENDER)

    async def stop(self) -> None:
        await super().stop()
        await self.rasa.stop()


def environ_for(fake: FakeTelegram, data: Path, key: str, **extra: str) -> dict[str, str]:
    """The process environment of a bot on ``data`` with the fake Bot API (the staff chat is
    there), as the harness builds it."""
    settings = settings_for(fake, data, key, REACHABLE_CACHE_DIR=str(MODEL_CACHE), **extra)
    return {k: v for k, v in bot_process_env(settings).items() if k.startswith("REACHABLE_")}
