"""Named points at the durable boundaries, where a test can make this process die at once.

A crash can come at any instant; the ones that matter are the boundaries where something is
written or sent. Each is named here, with the kind of step it guards (``report``, ``erase``,
``consent``, ``answer`` for words passed to staff, ``exit``, ``urgent`` for emergency help,
``draft``, ``forget``; for the delivery outbox, the kind of delivery: ``summary``, ``relay``...)::

    before_commit:<step>    a turn's writes are about to be committed
    after_commit:<step>     committed; nothing of the turn's answer has gone out
    part_out:<step>         one part of the answer went out, and that is not yet written down
    part_recorded:<step>    that part is written down as out (for the last part: the answer is
                            forgotten)
    delivery_claimed:<kind> a delivery is marked "sending", not yet handed to its destination
    delivery_out:<kind>     its destination took it, and that is not yet written down

Off unless armed. ``reachable`` arms it from ``REACHABLE_CRASH_AT`` (``part_recorded:report``,
or ``part_recorded:report#2`` for the second time that point is reached), and then the process
kills itself with SIGKILL there: nothing is flushed, closed or confirmed, as in a real crash.
Never set it on a service people use: it is for tests, and the bot warns at start while it is.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable, Mapping

log = logging.getLogger("reachable.crashpoints")
VARIABLE = "REACHABLE_CRASH_AT"


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class _Armed:
    def __init__(self, point: str, times: int, action: Callable[[], None]) -> None:
        self.point, self.times, self.action = point, times, action
        self.seen = 0


_armed: _Armed | None = None


def arm(point: str, action: Callable[[], None] = _die) -> None:
    """Carry out ``action`` (by default: die at once) the nth time ``point`` (``name:step#n``) is
    reached; the first time without ``#n``."""
    global _armed
    name, _, times = point.strip().partition("#")
    _armed = _Armed(name, int(times) if times.isdecimal() and int(times) > 0 else 1, action)


def arm_from(environ: Mapping[str, str]) -> None:
    """Arm the point ``REACHABLE_CRASH_AT`` names, if it names one, and say so loudly."""
    point = environ.get(VARIABLE, "").strip()
    if point:
        arm(point)
        log.warning("%s is set: this process will kill itself at %s (for tests only)", VARIABLE, point)


def disarm() -> None:
    global _armed
    _armed = None


def reached(point: str) -> None:
    """A boundary is reached: die here if armed for it."""
    armed = _armed
    if armed is None or armed.point != point:
        return
    armed.seen += 1
    if armed.seen == armed.times:
        armed.action()
