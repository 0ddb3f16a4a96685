"""Button data: short, versioned, checked.

``1|<step>|<option>``: the version lets a future format refuse today's buttons gently. Anything
that does not parse becomes a choice no step has, so the engine answers "that button is out of
date" and asks the current question again; nothing else is trusted.
"""

from __future__ import annotations

from flows.events import Choice

VERSION = "1"
LIMIT = 64  # bytes: Telegram's limit for callback data
STALE = Choice(step="", option="")


def encode(step: str, option: str) -> str:
    data = f"{VERSION}|{step}|{option}"
    if len(data.encode()) > LIMIT:
        raise ValueError(f"button data for {step}/{option} is over {LIMIT} bytes")
    return data


def decode(data: str | None) -> Choice:
    if not data or len(data.encode()) > LIMIT:
        return STALE
    parts = data.split("|")
    if len(parts) != 3 or parts[0] != VERSION or not all(parts[1:]):
        return STALE
    return Choice(step=parts[1], option=parts[2])
