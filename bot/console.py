"""``reachable console``: the real engine and storage in a terminal.

Options are numbered; type a number, an option's words, a command, or anything else.
Output stays readable in an 80-column terminal.
"""

from __future__ import annotations

import asyncio
import sys
import textwrap
from typing import TextIO

from bot.app import App
from flows.events import Resume, parse_typed
from responses import Rendered

CHANNEL = "console"
WIDTH = 80
PROMPT = "> "
CLEAR_SCREEN = "\033[2J\033[3J\033[H"


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


def format_message(message: Rendered, width: int = WIDTH) -> str:
    """A rendered message as terminal text: wrapped paragraphs, then numbered options."""
    lines: list[str] = []
    for line in message.text.split("\n"):
        lines.extend(_wrap(line, width))
    for number, option in enumerate(message.options, start=1):
        lines.extend(_wrap(f"  {number}. {option.text}", width))
    return "\n".join(lines)


async def _read_line(stream: TextIO) -> str:
    return await asyncio.get_running_loop().run_in_executor(None, stream.readline)


async def run_console(app: App, chat: str, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> None:
    interactive = stdout.isatty()

    def show(messages: tuple[Rendered, ...], wipe: bool = False) -> None:
        if wipe and interactive:
            stdout.write(CLEAR_SCREEN)
        for message in messages:
            stdout.write(format_message(message) + "\n\n")
        stdout.write(PROMPT)
        stdout.flush()

    delivery = await app.conversations.handle(CHANNEL, chat, Resume())
    show(delivery.messages)
    while True:
        line = await _read_line(stdin)
        if not line:
            stdout.write("\n")
            return
        if not line.strip():
            stdout.write(PROMPT)
            stdout.flush()
            continue
        delivery = await app.conversations.handle(CHANNEL, chat, parse_typed(line.rstrip("\n")))
        stdout.write("\n")
        show(delivery.messages, delivery.wipe)
