"""What a person did, as the engine sees it.

Adapters turn framework updates into one of these; the engine never sees a framework object.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Hint:
    """Another assistant's reading of a message (a Rasa assistant's intent and confidence)."""

    intent: str
    confidence: float


@dataclass(frozen=True, slots=True)
class Text:
    """Something typed, with another assistant's reading of it if the channel has one."""

    text: str
    hint: Hint | None = None


@dataclass(frozen=True, slots=True)
class Choice:
    """A button pressed: the step it was shown for and the option's key."""

    step: str
    option: str


@dataclass(frozen=True, slots=True)
class Command:
    """A slash command, without the slash, with whatever followed it."""

    name: str
    argument: str = ""


@dataclass(frozen=True, slots=True)
class Unsupported:
    """Content the bot cannot read here: a sticker, photo, voice note, location..."""

    kind: str


@dataclass(frozen=True, slots=True)
class Relayed:
    """Support staff wrote to this person about their report ``reference``."""

    reference: str
    kind: str  # relay | ack | closed | matched (someone else named the same person)
    text: str = ""


@dataclass(frozen=True, slots=True)
class Unlocked:
    """The person's code opened their report (the channel looked it up): how it stands."""

    reference: str
    status: str
    what: tuple[str, ...] = ()
    send_to: str | None = None
    allow_reply: bool = False
    released: int = 0  # messages from staff held since a quick exit, now on their way
    named: int = 0  # people the person named on this report (for matching)


@dataclass(frozen=True, slots=True)
class Resume:
    """The channel (re)opened: the console started, or a conversation came back after a restart."""


Event = Text | Choice | Command | Unsupported | Relayed | Resume | Unlocked


def parse_typed(raw: str) -> Text | Command:
    """Read a typed line: ``/name argument`` is a command, anything else is text.

    Telegram appends ``@botname`` to commands in groups; that part is dropped.
    """
    stripped = raw.strip()
    if stripped.startswith("/") and len(stripped) > 1 and not stripped[1].isspace():
        head, _, rest = stripped[1:].partition(" ")
        name = head.split("@", 1)[0].casefold()
        if name.replace("_", "").isalnum():
            return Command(name=name, argument=rest.strip())
    return Text(text=raw)
