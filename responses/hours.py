"""Opening hours from the services directory, so "open now" is computed, not guessed.

A service's ``open:`` is a list of rules, each ``always`` or ``<days> <HH:MM>-<HH:MM>`` in
London time (``mon-fri 09:00-17:00``, ``sat,sun 10:00-14:00``, ``mon-sun 18:00-02:00`` runs past
midnight). ``closed_on:`` lists dates it is shut (bank holidays, where the data says so). A
service with no rules is never called open: its hours are unknown.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RULE = re.compile(r"^(?P<days>[a-z,\-]+)\s+(?P<start>\d{2}:\d{2})-(?P<end>\d{2}:\d{2})$")


def _days(text: str) -> set[int] | None:
    found: set[int] = set()
    for part in text.split(","):
        if "-" in part:
            first, _, last = part.partition("-")
            if first not in DAYS or last not in DAYS:
                return None
            a, b = DAYS.index(first), DAYS.index(last)
            found.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
        elif part in DAYS:
            found.add(DAYS.index(part))
        else:
            return None
    return found


def _minutes(text: str) -> int | None:
    hours, _, minutes = text.partition(":")
    value = int(hours) * 60 + int(minutes)
    return value if 0 <= int(minutes) < 60 and 0 <= value <= 24 * 60 else None


def rule_problem(rule: str) -> str | None:
    """What is wrong with an ``open:`` rule, or None."""
    if rule.strip().casefold() == "always":
        return None
    match = _RULE.match(rule.strip().casefold())
    if match is None or _days(match["days"]) is None:
        return f"{rule!r} is not an opening rule: write 'always' or days and hours like 'mon-fri 09:00-17:00'"
    if _minutes(match["start"]) is None or _minutes(match["end"]) is None:
        return f"{rule!r}: hours run from 00:00 to 24:00"
    return None


def open_at(rules: Iterable[str], closed_on: Iterable[dt.date], moment: dt.datetime) -> bool:
    """Whether a service with these rules is open at ``moment`` (any time zone; read in London)."""
    local = moment.astimezone(LONDON)
    if local.date() in set(closed_on):
        return False
    now = local.hour * 60 + local.minute
    today = local.weekday()
    for rule in rules:
        text = rule.strip().casefold()
        if text == "always":
            return True
        match = _RULE.match(text)
        if match is None:
            continue
        days = _days(match["days"]) or set()
        start, end = _minutes(match["start"]) or 0, _minutes(match["end"]) or 0
        if start < end and today in days and start <= now < end:
            return True
        # Past midnight: the evening of a listed day, or the morning after it.
        if start >= end and ((today in days and now >= start) or ((today - 1) % 7 in days and now < end)):
            return True
    return False
