"""``reachable console``: the real engine, storage and channel core in a terminal.

An adapter like the Telegram ones: typed lines become calls to the channel core, and the core's
sends are printed, options numbered (type a number, an option's words, a command, or anything
else). Output stays readable in an 80-column terminal. A quick exit clears the screen.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import textwrap
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TextIO

from bot.core import callbacks
from bot.core.channel import Channel, Ports
from bot.core.staff import StaffDesk
from bot.core.transport import UNLIMITED, Button, ChatInfo
from flows.events import Resume, parse_typed
from storage import Outgoing

CHANNEL = "console"
WIDTH = 80
PROMPT = "> "
CLEAR_SCREEN = "\033[2J\033[3J\033[H"
DEMO_DESTINATION = "support:demo"


def _wrap(line: str, width: int) -> list[str]:
    if not line.strip():
        return [""]
    indent = len(line) - len(line.lstrip(" "))
    body = line.lstrip(" ")
    hanging = indent + (2 if body[:2] in ("• ", "■ ", "- ") else 0)
    return textwrap.wrap(
        line,
        width=width,
        subsequent_indent=" " * hanging,
        break_on_hyphens=False,
        drop_whitespace=True,
    ) or [""]


def format_message(text: str, options: Sequence[str], width: int = WIDTH) -> str:
    """A message as terminal text: wrapped paragraphs, then numbered options."""
    lines: list[str] = []
    for line in text.split("\n"):
        lines.extend(_wrap(line, width))
    for number, option in enumerate(options, start=1):
        lines.extend(_wrap(f"  {number}. {option}", width))
    return "\n".join(lines)


class ConsoleTransport:
    channel = CHANNEL
    limits = UNLIMITED

    def __init__(self, stdout: TextIO) -> None:
        self.stdout = stdout
        self.interactive = stdout.isatty()
        self.waiting = False  # at the prompt: what arrives unasked (a staff message) shows it again
        self._ids = itertools.count(1)

    async def send(self, chat_id: str, text: str, buttons: Sequence[Button] = ()) -> int:
        lead = "\n" if self.waiting else ""
        self.stdout.write(
            lead + format_message(text, [b.text for b in buttons]) + "\n\n" + (PROMPT if self.waiting else "")
        )
        self.stdout.flush()
        return next(self._ids)

    async def delete(self, chat_id: str, message_ids: Sequence[int]) -> None:
        if self.interactive:
            self.stdout.write(CLEAR_SCREEN)

    async def answer_button(self, query_id: str) -> None:
        """Options are typed here: nothing to answer."""

    async def chat_info(self, chat_id: str) -> ChatInfo:
        return ChatInfo(public_name=None)

    def encode_button(self, step: str, option: str) -> str:
        return callbacks.encode(step, option)

    def incoming(self) -> int:
        return next(self._ids)


async def _read_line(stream: TextIO) -> str:
    # A daemon thread: Ctrl-C (or the end of the program) never waits for a line.
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def read() -> None:
        line = stream.readline()
        if not future.done():
            future.get_loop().call_soon_threadsafe(future.set_result, line)

    threading.Thread(target=read, daemon=True).start()
    return await future


class DemoInbox:
    """`make demo`: what the support team would receive, printed in the console between rules
    that say it is a demo, so a newcomer sees the whole path (and answers as staff with
    /staff). Never configured outside the console."""

    destination = DEMO_DESTINATION

    def __init__(self, desk: StaffDesk, transport: ConsoleTransport, texts: Callable[[str], str]) -> None:
        self.desk = desk
        self.transport = transport
        self.stdout = transport.stdout
        self.texts = texts

    async def send(self, item: Outgoing) -> None:
        composed = await self.desk.compose(item)
        if composed is None:
            return
        top, bottom = self.texts("staff.demo.inbox.top"), self.texts("staff.demo.inbox.bottom")
        self.stdout.write(f"\n{top}\n{composed.body}\n{bottom}\n" + (PROMPT if self.transport.waiting else ""))
        self.stdout.flush()


async def _as_staff(desk: StaffDesk, line: str, stdout: TextIO, texts: Callable[[str], str]) -> None:
    """A /staff command typed in the demo: the support worker's side, answered as staff see it
    (the demo inbox is the support team's)."""
    name, _, argument = line.removeprefix("/staff").strip().partition(" ")
    told = await desk.command(name.lstrip("/"), argument.strip(), frozenset({"support"}))
    said = told or texts("staff.demo.unknown")
    stdout.write(f"{texts('staff.demo.said')} {said}\n")


async def run_console(
    ports: Ports,
    chat: str,
    stdin: TextIO = sys.stdin,
    stdout: TextIO = sys.stdout,
    demo: Callable[[str], str] | None = None,
) -> None:
    """The console. ``demo``: the support team's inbox is shown here (``make demo``), its words
    from this function (a message id in, the text out)."""
    transport = ConsoleTransport(stdout)
    core = Channel(transport, replace(ports, staff_chats={}))  # staff chats are not on the console
    core.attach()
    if demo is not None:
        ports.delivery.add(DemoInbox(ports.desk, transport, demo))
        stdout.write(demo("staff.demo.intro") + "\n\n")

    def prompt() -> None:
        stdout.write(PROMPT)
        stdout.flush()

    try:
        await core.private(chat, Resume())
        prompt()
        while True:
            transport.waiting = True
            line = await _read_line(stdin)
            transport.waiting = False
            if not line:
                stdout.write("\n")
                return
            if not line.strip():
                prompt()
                continue
            stdout.write("\n")
            if demo is not None and line.startswith("/staff"):
                await _as_staff(ports.desk, line.rstrip("\n"), stdout, demo)
            else:
                await core.private(chat, parse_typed(line.rstrip("\n")), incoming=transport.incoming())
            prompt()
    finally:
        await core.close()
