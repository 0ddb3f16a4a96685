"""Guards of the conversation service, in memory: against one chat flooding the bot, and against
wrong codes typed in bulk."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from enum import Enum


class CodeGuard:
    """Wrong secret codes, limited per chat (a few, then one every few minutes) and for everyone
    together, in memory. A code is 80 random bits, so this is not what keeps codes secret: it
    keeps people typing wrong codes in bulk from costing the slow hashes that keeping reports
    needs."""

    def __init__(
        self,
        burst: int = 5,
        every: float = 120.0,
        overall_burst: int = 200,
        overall_rate: float = 5.0,
        limit: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst = float(burst)
        self.rate = 1 / every
        self.clock = clock
        self.limit = limit
        self._chats: OrderedDict[bytes, tuple[float, float]] = OrderedDict()
        self._overall = (float(overall_burst), clock())
        self.overall_burst = float(overall_burst)
        self.overall_rate = overall_rate

    def _left(self, chat: bytes) -> tuple[float, float]:
        now = self.clock()
        tokens, stamp = self._chats.get(chat, (self.burst, now))
        every, at = self._overall
        return (
            min(self.burst, tokens + (now - stamp) * self.rate),
            min(self.overall_burst, every + (now - at) * self.overall_rate),
        )

    def may_try(self, chat: bytes) -> bool:
        mine, everyone = self._left(chat)
        return mine >= 1 and everyone >= 1

    def missed(self, chat: bytes) -> None:
        mine, everyone = self._left(chat)
        now = self.clock()
        self._chats[chat] = (max(0.0, mine - 1), now)
        self._chats.move_to_end(chat)
        self._overall = (max(0.0, everyone - 1), now)
        while len(self._chats) > self.limit:
            self._chats.popitem(last=False)


class Flood(Enum):
    ALLOW = 1
    WARN = 2  # over the limit: say so, once
    DROP = 3  # still over the limit: ignore quietly


class FloodGuard:
    """A token bucket per chat: a burst of ``burst`` messages, then ``rate`` a second. A chat over
    it is told once, kindly, and its messages are ignored until it slows down. The check is
    synchronous and cheap, so a flood costs the bot almost nothing."""

    def __init__(
        self,
        burst: int = 20,
        rate: float = 1.0,
        limit: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst = float(burst)
        self.rate = rate
        self.limit = limit
        self.clock = clock
        self._buckets: OrderedDict[bytes, tuple[float, float, bool]] = OrderedDict()

    def check(self, chat: bytes) -> Flood:
        now = self.clock()
        tokens, stamp, warned = self._buckets.get(chat, (self.burst, now, False))
        tokens = min(self.burst, tokens + (now - stamp) * self.rate)
        if tokens >= 1:
            # Told once per flood: the warning is forgotten only once the chat has calmed down
            # enough to fill its bucket again, not at each token that trickles back.
            verdict, warned = Flood.ALLOW, warned and tokens < self.burst
            tokens -= 1
        else:
            verdict, warned = (Flood.DROP if warned else Flood.WARN), True
        self._buckets[chat] = (tokens, now, warned)
        self._buckets.move_to_end(chat)
        if len(self._buckets) > self.limit:
            self._buckets.popitem(last=False)
        return verdict
