"""One event being handled: the replies and effects gathered, and what it ends as."""

from __future__ import annotations

from dataclasses import dataclass, field

from flows.effects import Effect
from flows.events import Hint
from flows.replies import Reply, Summary
from flows.state import State
from flows.understanding import Understanding


@dataclass(frozen=True, slots=True)
class Outcome:
    replies: tuple[Reply, ...]
    state: State
    effects: tuple[Effect, ...] = ()
    understood: str = ""  # "intent/band" when free text was understood: all a log may say of it


@dataclass(slots=True)
class Turn:
    """Replies and effects gathered while one event is handled."""

    state: State
    replies: list[Reply] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
    understood: str = ""
    hint: Hint | None = None  # another assistant's reading of the typed text, if any
    classified: tuple[str, Understanding] | None = None  # the typed text, understood once a turn

    def say(self, message: str, **variables: str | int | Summary) -> None:
        self.replies.append(Reply(message=message, variables=variables))

    def outcome(self) -> Outcome:
        return Outcome(tuple(self.replies), self.state, tuple(self.effects), self.understood)
