"""Where a message's time goes: reads a sampling profile (py-spy's raw output, one stack a line
ending in its sample count) of `bench.profile` and prints milliseconds of CPU a message by part.

    py-spy record -r 200 --format raw -o profile.txt -- python -m bench.profile
    python -m bench.where profile.txt 200

Each sample is put in the part of the deepest frame that names one (a JSON encoder called by
aiogram counts as JSON, aiogram's own code around it as aiogram). Start-up (imports, pydantic
building its models), the event loop waiting in select() and threads waiting for work are
counted apart and left out of the figures a message. Argon2id runs once a report, in a thread
of its own; its figure is spread over every message.
"""

from __future__ import annotations

import sys
from collections import Counter

from bench.common import FLOW
from bench.run import PEOPLE

# (part, what in a frame marks it), most specific first: a frame is matched against each in turn.
STARTUP = ("start-up: imports, pydantic building models", ("<frozen importlib", "_model_construction", "_generics.py"))
WAITING = (
    "waiting (the loop idle, threads with no work)",
    ("aiosqlite/core.py:59)", "thread.py:81)", "select (", "HashingPool._work (storage/hashing.py:54)"),
)
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Argon2id (its own thread)", ("argon2/",)),
    ("understanding step", ("flows/classifier.py", "flows/understanding.py", "sklearn/", "numpy/")),
    ("engine and flows", ("flows/",)),
    ("text and rendering", ("responses/",)),
    ("encryption (AES-GCM)", ("storage/crypto.py", "cryptography/")),
    ("SQLite: store and inbox", ("storage/", "aiosqlite/", "sqlite3/")),
    ("pydantic: aiogram's models", ("pydantic/", "pydantic_core/")),
    ("JSON", ("json/",)),
    ("aiogram: dispatch, methods, session", ("aiogram/",)),
    ("HTTP: aiohttp, both ends", ("aiohttp/", "multidict/", "yarl/")),
    ("pacing and delivery", ("bot/core/delivery.py",)),
    ("channel core, conversations, ledger", ("bot/",)),
    ("fake Bot API (test side)", ("fakes/",)),
    ("people sending (test side)", ("bench/",)),
    ("asyncio loop and sockets", ("asyncio/", "selectors.py", "socket.py", "ssl.py")),
)
APART = (STARTUP[0], WAITING[0])


def part_of(stack: str) -> str:
    frames = stack.split(";")
    if any(mark in stack for mark in STARTUP[1]):
        return STARTUP[0]
    if any(mark in frame for frame in frames[-3:] for mark in WAITING[1]):  # in a wait, or getting work
        return WAITING[0]
    for frame in reversed(frames):  # the deepest frame first
        for part, marks in PARTS:
            if any(mark in frame for mark in marks):
                return part
    return "other (the interpreter, typing, contextlib...)"


def main(path: str, rate: float, messages: int) -> None:
    loop: Counter[str] = Counter()  # samples on the event loop's thread
    threads: Counter[str] = Counter()  # samples on other threads (SQLite's, Argon2's)
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if stack:
                where = threads if stack.startswith("Thread._bootstrap") else loop
                where[part_of(stack)] += int(count)
    every = loop + threads
    counted = sum(n for part, n in every.items() if part not in APART)

    def ms(samples: int) -> float:
        return samples / rate / messages * 1000

    print(f"{messages} messages, {sum(every.values())} samples at {rate:.0f}/s; CPU milliseconds a message:")
    print(f"  {'':44} {'loop':>7} {'threads':>8} {'share':>7}")
    for part, n in every.most_common():
        if part not in APART:
            print(f"  {part:44} {ms(loop[part]):7.2f} {ms(threads[part]):8.2f} {n / counted:7.1%}")
    on_loop = sum(n for part, n in loop.items() if part not in APART)
    print(f"  {'all of it':44} {ms(on_loop):7.2f} {ms(counted - on_loop):8.2f}")
    for part in APART:
        print(f"  (apart: {part}: {every[part] / rate:.2f} s)")


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), PEOPLE * len(FLOW))  # the messages bench.profile sends
