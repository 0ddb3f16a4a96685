"""Things the engine asks to be done. Channels carry them out *before* sending the replies,
so a person is never shown a reference or a confirmation for something that failed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from flows.replies import Reply


@dataclass(frozen=True, slots=True)
class StoreReport:
    """Keep and/or forward a consented report.

    ``summary`` maps field names to option keys (a tuple) or the person's words (a str).
    ``code`` is shown to the person once and stored only as a slow hash.
    """

    reference: str
    code: str
    summary: Mapping[str, tuple[str, ...] | str]
    categories: tuple[str, ...]
    keep: bool
    send_to: str | None
    allow_reply: bool
    questionnaire_version: int


@dataclass(frozen=True, slots=True)
class EraseReport:
    """Erase the report that ``code`` unlocks (or ``reference``, already unlocked by its code in
    this conversation); say ``erased`` or ``not_found`` accordingly."""

    code: str
    erased: tuple[Reply, ...]
    not_found: tuple[Reply, ...]
    reference: str = ""


@dataclass(frozen=True, slots=True)
class CheckReport:
    """Tell the person how their report stands, if ``code`` unlocks one: a reply per status.
    Coming back with the code also releases whatever staff sent after a quick exit."""

    code: str
    by_status: Mapping[str, tuple[Reply, ...]]
    not_found: tuple[Reply, ...]
    # Said before the status when messages from staff, held since a quick exit, now follow
    # (the channel fills in {count}).
    released: Reply | None = None


@dataclass(frozen=True, slots=True)
class ChangeConsent:
    """A choice made later about a report already kept: send it to ``send_to`` and/or allow
    (True) or stop (False) replies. Recorded like the first consent; ``done`` or ``gone``."""

    reference: str
    send_to: str | None
    allow_reply: bool | None
    done: tuple[Reply, ...]
    gone: tuple[Reply, ...]


@dataclass(frozen=True, slots=True)
class RelayToStaff:
    """Pass the person's answer about ``reference`` to staff, if the relay is still open."""

    reference: str
    text: str
    sent: tuple[Reply, ...]
    closed: tuple[Reply, ...]


@dataclass(frozen=True, slots=True)
class NameOffender:
    """Add who hurt the person to their kept report ``reference``: ``kind`` and ``canonical``
    are compared (through a keyed digest only), ``shown`` goes to the matching contact if someone
    else names the same person. ``added`` or ``gone`` (the report is no longer there)."""

    reference: str
    kind: str
    canonical: str
    shown: str
    added: tuple[Reply, ...]
    gone: tuple[Reply, ...]


@dataclass(frozen=True, slots=True)
class ForgetNames:
    """Remove everyone the person named on their report ``reference``; ``done`` or ``gone``."""

    reference: str
    done: tuple[Reply, ...]
    gone: tuple[Reply, ...]


@dataclass(frozen=True, slots=True)
class MatchChoice:
    """After a match: the person's choice (talk, police) goes to the matching contact, if the
    relay about ``reference`` is still open; ``sent`` or ``closed``."""

    reference: str
    choice: str
    sent: tuple[Reply, ...]
    closed: tuple[Reply, ...]


@dataclass(frozen=True, slots=True)
class ForgetDraft:
    """Drop the unfinished answers held for this chat."""


@dataclass(frozen=True, slots=True)
class WipeChat:
    """Delete every message of the conversation that the channel can still delete."""


Effect = (
    StoreReport
    | EraseReport
    | CheckReport
    | ChangeConsent
    | RelayToStaff
    | NameOffender
    | ForgetNames
    | MatchChoice
    | ForgetDraft
    | WipeChat
)

SummaryData = Mapping[str, tuple[str, ...] | str]
__all__ = [
    "ChangeConsent",
    "CheckReport",
    "Effect",
    "EraseReport",
    "ForgetDraft",
    "ForgetNames",
    "MatchChoice",
    "NameOffender",
    "RelayToStaff",
    "StoreReport",
    "SummaryData",
    "WipeChat",
]
