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
AT_MOST, AT_LEAST = operator.le, operator.ge
# (name in the line, what it is, how it is written, the goal as words, the test of the goal or None)
Row = tuple[str, str, str, str, Callable[[float, float], bool] | None, float]
ROWS: tuple[Row, ...] = (
    (
        "peer_ratio",
        "Telegram: capacity against the faster peer bot doing the same job",
        "{:.2f}x",
        ">= 1.0x",
        AT_LEAST,
        1.0,
    ),
    ("peer_p99_ratio", "Telegram: p99 at 200 messages/s against that peer", "{:.2f}x", "< 1.0x", operator.lt, 1.0),
    ("web_ratio", "Web chat: capacity against a bare aiohttp app", "{:.2f}x", ">= 0.5x", AT_LEAST, 0.5),
    ("web_p99_ms", "Web chat: p99 of an answer, 1,000 people at once", "{:.0f} ms", "<= 100 ms", AT_MOST, 100),
    ("web_mib_per_1000", "Web chat: memory per 1,000 open conversations", "{:.0f} MiB", "", None, 0),
    ("rasa_ratio", "Rasa: action calls/s against rasa-sdk's minimal action", "{:.2f}x", ">= 0.7x", AT_LEAST, 0.7),
    ("rasa_p99_ms", "Rasa: p99 of an answer at 100 calls/s", "{:.0f} ms", "", None, 0),
    ("idle_mib", "`reachable run`: memory once idle (python-telegram-bot)", "{:.0f} MiB", "<= 120 MiB", AT_MOST, 120),
    ("cold_s", "`reachable run`: start to first Bot API call, saved model", "{:.2f} s", "<= 1.5 s", AT_MOST, 1.5),
    ("cold_trained_s", "`reachable run`: first start, training the model", "{:.2f} s", "", None, 0),
    ("ratio", "Telegram: capacity against a bare echo bot", "{:.2f}x", "", None, 0),
    ("answers_p99_ms", "Telegram: p99 of an answer at 200 messages/s", "{:.0f} ms", "", None, 0),
    ("keep_p99_ms", "Telegram: p99 of 'keep' until the code is shown", "{:.0f} ms", "", None, 0),
    ("pg_capacity_ratio", "PostgreSQL: capacity against SQLite", "{:.2f}x", "", None, 0),
)


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
    for name, what, form, goal, test, target in ROWS:
        value = figures.get(name, math.nan)
        shown = "not measured" if math.isnan(value) else form.format(value)
        met = "" if test is None else ("not measured" if math.isnan(value) else "yes" if test(value, target) else "no")
        lines.append(f"| {what} | {shown} | {goal} | {met} |")
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
