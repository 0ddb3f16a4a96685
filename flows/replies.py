"""What the engine asks a channel to say: message ids, variables and options — never text."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class OptionRef:
    """One choice shown to the person: a stable key and the message id of its label."""

    key: str
    label: str
    selected: bool = False


@dataclass(frozen=True, slots=True)
class SummaryLine:
    """One line of a report summary.

    ``label`` is the message id of the field's name. The value is either message ids of the
    chosen options (``choices``) or the person's own words (``text``), never both.
    """

    field: str
    label: str
    choices: tuple[str, ...] = ()
    text: str | None = None


@dataclass(frozen=True, slots=True)
class Summary:
    """The exact summary that would be kept or sent."""

    lines: tuple[SummaryLine, ...]


@dataclass(frozen=True, slots=True)
class MessageRef:
    """A variable whose value is another message, in the reader's language."""

    id: str


Variable = str | int | Summary | MessageRef


@dataclass(frozen=True, slots=True)
class Reply:
    """A message to send: a message id from ``responses/``, its variables and its options.

    ``step`` names the step the options belong to, so a pressed button can be checked
    against the step the conversation is at. ``page`` picks one page of a long message.
    """

    message: str
    variables: Mapping[str, Variable] = field(default_factory=dict)
    options: tuple[OptionRef, ...] = ()
    step: str | None = None
    page: int | None = None
