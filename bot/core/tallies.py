"""What people look at, counted for the figures without anyone in it: emergency and crisis
screens shown and advice topics opened, a count per month in memory, written to storage every
minute (and at a stop). No chat, no reference, no day: a crash loses at most a minute of counts."""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Callable, Iterable

from flows.definitions import ADVICE_TOPICS
from flows.replies import Reply

SCREENS = frozenset({"emergency", "crisis"})
TOPICS = frozenset(f"advice.{topic}" for topic in ADVICE_TOPICS)


class Browsing:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._counts: Counter[tuple[str, str, str]] = Counter()

    def note(self, replies: Iterable[Reply]) -> None:
        month = dt.datetime.fromtimestamp(self.clock(), dt.UTC).strftime("%Y-%m")
        for reply in replies:
            if reply.step in SCREENS:
                self._counts[("screen", reply.step, month)] += 1
            elif reply.step in TOPICS:
                self._counts[("advice", reply.step.removeprefix("advice."), month)] += 1

    def take(self) -> dict[tuple[str, str, str], int]:
        taken, self._counts = dict(self._counts), Counter()
        return taken

    def give_back(self, counts: dict[tuple[str, str, str], int]) -> None:
        """Counts that could not be written: kept for the next try."""
        self._counts.update(counts)
