"""README's table of figures, written from the machine-readable line `make bench` ends with.

python -m bench.readme "bench: peer_ratio=0.71 ..."   # or: python -m bench.readme < bench-output.txt

The table sits between two markers in README.md and is replaced whole; each figure is said with
its goal and whether this run met it. A figure the line lacks (PostgreSQL not installed) is shown
as not measured.
"""

from __future__ import annotations

import math
import operator
import sys
from collections.abc import Callable
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- figures: written by make bench (bench/readme.py) -->", "<!-- end of figures -->"
AT_MOST, AT_LEAST, BELOW = operator.le, operator.ge, operator.lt
# What the machine-readable line carries, in order, and how each is written (enough digits that
# a goal is judged on the figure, not on its rounding).
LINE = (
    ("peer_ratio", ".2f"),
    ("peer_p99_ratio", ".2f"),
    ("peer_ptb_ratio", ".2f"),
    ("web_ratio", ".3f"),
    ("web_p99_ms", ".1f"),
    ("web_mib_per_1000", ".0f"),
    ("rasa_ratio", ".3f"),
    ("rasa_p99_ms", ".1f"),
    ("idle_mib", ".1f"),
    ("cold_s", ".2f"),
    ("ratio", ".2f"),
    ("answers_p99_ms", ".0f"),
    ("keep_p99_ms", ".0f"),
    ("rasa_keep_p99_ms", ".0f"),
    ("cold_trained_s", ".2f"),
    ("pg_capacity_ratio", ".2f"),
    ("pg_answers_p99_ms", ".0f"),
)
# A goal: how it is said, the test of the figure against it, and its value.
Goal = tuple[str, Callable[[float, float], bool], float]
TELEGRAM, ON_PTB = "Telegram, on aiogram:", "Telegram, on python-telegram-bot:"
RUN = "`reachable run` (python-telegram-bot):"
# (figure in the line, what it is, how it is written, its goal if it has one)
ROWS: tuple[tuple[str, str, str, Goal | None], ...] = (
    (
        "peer_ratio",
        f"{TELEGRAM} capacity against the faster peer (aiogram's FSM)",
        "{:.2f}x",
        (">= 1.0x", AT_LEAST, 1.0),
    ),
    ("peer_p99_ratio", f"{TELEGRAM} p99 at 200 messages/s against that peer", "{:.2f}x", ("< 1.0x", BELOW, 1.0)),
    ("peer_ptb_ratio", f"{ON_PTB} capacity against its peer (ConversationHandler)", "{:.2f}x", None),
    ("web_ratio", "Web chat: messages a CPU second against a bare aiohttp app", "{:.2f}x", (">= 0.5x", AT_LEAST, 0.5)),
    ("web_p99_ms", "Web chat: p99 of an answer, 1,000 people at once", "{:.0f} ms", ("<= 100 ms", AT_MOST, 100)),
    ("web_mib_per_1000", "Web chat: memory per 1,000 open conversations", "{:.0f} MiB", None),
    ("rasa_ratio", "Rasa: calls a CPU second against rasa-sdk's minimal action", "{:.2f}x", (">= 0.7x", AT_LEAST, 0.7)),
    ("rasa_p99_ms", "Rasa: p99 of an answer at 100 calls/s", "{:.0f} ms", None),
    ("idle_mib", f"{RUN} memory once idle", "{:.1f} MiB", ("<= 120 MiB", AT_MOST, 120)),
    ("cold_s", f"{RUN} start to first Bot API call, model saved", "{:.2f} s", ("<= 1.5 s", AT_MOST, 1.5)),
    ("cold_trained_s", f"{RUN} first start, training the model", "{:.2f} s", None),
    ("ratio", f"{TELEGRAM} capacity against a bare echo bot", "{:.2f}x", None),
    ("answers_p99_ms", f"{TELEGRAM} p99 of an answer at 200 messages/s", "{:.0f} ms", None),
    ("keep_p99_ms", f"{TELEGRAM} p99 of 'keep' until the code is shown", "{:.0f} ms", None),
    ("pg_capacity_ratio", f"{TELEGRAM} capacity on PostgreSQL against SQLite", "{:.2f}x", None),
)


def line(figures: dict[str, float]) -> str:
    """The machine-readable line: each of LINE's figures, "nan" for one not measured."""
    return "bench: " + " ".join(f"{name}={figures.get(name, math.nan):{form}}" for name, form in LINE)


def parse(line: str) -> dict[str, float]:
    """The figures of the last ``bench:`` line in ``line`` (one line, or a whole bench output)."""
    found = [text for text in line.splitlines() if text.startswith("bench: ")]
    if not found:
        raise ValueError("no line starting 'bench: '")
    return {name: float(value) for name, _, value in (pair.partition("=") for pair in found[-1].split()[1:])}


def table(figures: dict[str, float], commit: str) -> str:
    lines = [
        f"Measured by `make bench` on this project's 2-core test machine{commit}; the commands and the"
        " full output are in `docs/benchmarks.md`.",
        "",
        "| Figure | This run | Goal | Met |",
        "|---|---|---|---|",
    ]
    for name, what, form, goal in ROWS:
        value = figures.get(name, math.nan)
        shown = "not measured" if math.isnan(value) else form.format(value)
        met = (
            "" if goal is None else "not measured" if math.isnan(value) else "yes" if goal[1](value, goal[2]) else "no"
        )
        lines.append(f"| {what} | {shown} | {'' if goal is None else goal[0]} | {met} |")
    return "\n".join(lines)


def update(figures: dict[str, float], readme: Path = README, commit: str = "") -> None:
    text = readme.read_text(encoding="utf-8")
    before, start, rest = text.partition(START)
    _, end, after = rest.partition(END)
    if not start or not end:
        raise ValueError(f"{readme.name} has no place for the figures ({START} ... {END})")
    readme.write_text(f"{before}{START}\n{table(figures, commit)}\n{END}{after}", encoding="utf-8")


def main() -> None:
    line = sys.argv[1] if len(sys.argv) > 1 else sys.stdin.read()
    update(parse(line))
    print(f"{README.name}: figures table written")


if __name__ == "__main__":
    main()
